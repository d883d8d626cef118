"""Per-approach measures an engineer reads (Synchro/Vistro style), from SUMO runs.

An approach is the chain of edges that ends at a signal's stop line, traced
upstream until the previous signal or a source. From one run:

* control delay [s/veh]: SUMO ``edgeData`` time loss summed over the chain's
  edges, per vehicle arriving on the approach (time lost decelerating,
  stopped and creeping in the queue; acceleration after the stop line is
  charged to the next approach downstream, and time inside the junction is
  not counted);
* 95th-percentile queue [veh]: halting vehicles on the chain, sampled every
  second; the largest of each cycle, and the 95th percentile over cycles
  (the back of queue exceeded in one cycle in twenty);
* v/c: the period's design demand over capacity, per lane group (the
  approach's movements served by the same phases, :func:`engine.webster.lane_groups`):
  saturation flow x lanes x green / cycle, a permissive left's green at the
  saturation flow left by its opposing traffic (:func:`engine.webster.lane_group_capacity`,
  HCM 2010 Chapter 31), with the critical (largest) group shown for the approach;
* level of service from the HCM thresholds for signalised intersections (A <= 10,
  B <= 20, C <= 35, D <= 55, E <= 80, F > 80 s/veh; F also when v/c > 1).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.etree.ElementTree import ParseError

import numpy as np
import sumolib

from engine.errors import SimulationError
from engine.loop import ControlLoop, LoopOptions
from engine.metrics import KPIs
from engine.network import load_network
from engine.plan.evaluate import plan_scenario
from engine.plan.export import write_text_atomic
from engine.plan.model import SignalTiming, program_of, signal_phases
from engine.scenario import Scenario
from engine.layout import VEHICLE_SPACE_M
from engine.signals import Intersection
from engine.webster import lane_group_vc, lane_groups

LOS_LIMITS = ((10.0, "A"), (20.0, "B"), (35.0, "C"), (55.0, "D"), (80.0, "E"))


def level_of_service(delay_s: float, vc: float | None = None) -> str:
    """HCM level of service of a signalised movement from its control delay (and v/c)."""
    if vc is not None and vc > 1.0:
        return "F"
    for limit, grade in LOS_LIMITS:
        if delay_s <= limit:
            return grade
    return "F"


@dataclass(frozen=True)
class Approach:
    signal: str
    stop_edge: str
    label: str  # compass side traffic arrives from
    edges: tuple[str, ...]  # upstream first, stop-line edge last
    lanes: int  # lanes at the stop line


@dataclass(frozen=True)
class ApproachResult:
    approach: Approach
    vehicles: int
    delay_s: float
    queue95_veh: float
    vc: float
    los: str

    @property
    def queue95_m_per_lane(self) -> float:
        return self.queue95_veh * VEHICLE_SPACE_M / max(self.approach.lanes, 1)


VCLASS = "passenger"  # approaches are chains of car edges (sidewalks and crossings are not)


def _car_predecessors(edge) -> list:
    """Normal edges from which a car may drive onto ``edge``."""
    return [e for e, conns in edge.getIncoming().items()
            if e.getFunction() == "" and any(c.getFromLane().allows(VCLASS) and c.getToLane().allows(VCLASS)
                                             for c in conns)]


def approaches(net_file: Path, intersections: Mapping[str, Intersection]) -> dict[str, list[Approach]]:
    """Every signal's approaches, traced upstream to the previous signal or a source.

    The network model (:func:`engine.network.load_network`) gives the road
    graph; an approach's label is the compass side of its movements
    (:attr:`engine.signals.Movement.approach`), its lanes the signal's vehicle
    lanes on the stop-line edge. Pedestrian crossings are no approach.
    """
    net = load_network(net_file).net
    signal_nodes = set()
    for ix in intersections.values():
        for m in ix.movements:
            if not m.crossing:
                signal_nodes.add(net.getEdge(m.from_edge).getToNode().getID())
    out: dict[str, list[Approach]] = {}
    for sid, ix in intersections.items():
        result = []
        vehicle = [m for m in ix.movements if not m.crossing]
        for stop in dict.fromkeys(m.from_edge for m in vehicle):
            chain = [stop]
            edge = net.getEdge(stop)
            while True:
                node = edge.getFromNode()
                preds = _car_predecessors(edge)
                if node.getID() in signal_nodes or len(preds) != 1 or preds[0].getID() in chain:
                    break
                edge = preds[0]
                chain.append(edge.getID())
            label = next(m.approach for m in vehicle if m.from_edge == stop)
            lanes = len({m.from_lane for m in vehicle if m.from_edge == stop})
            result.append(Approach(sid, stop, label, tuple(reversed(chain)), lanes))
        out[sid] = result
    return out


def default_timing(ix: Intersection) -> tuple[SignalTiming, float]:
    """The network's own program as a timing, and its cycle."""
    return SignalTiming(ix.id, ix.offset, tuple(p.duration for p in ix.phases)), sum(d for _, d in ix.program)


def approach_vc(ix: Intersection, appr: Approach, timing: SignalTiming, cycle: float,
                flows: Mapping[tuple[str, str], float]) -> float:
    """Critical lane group v/c of one approach under ``timing`` (its phases, overlaps included)."""
    program = program_of(ix, timing)
    groups = [g for g in lane_groups(signal_phases(ix, timing)) if g.from_edge == appr.stop_edge]
    return max((lane_group_vc(ix, g, program, cycle, flows) for g in groups), default=0.0)


def measure_run(scenario: Scenario, intersections: Mapping[str, Intersection], cycles: Mapping[str, float],
                workdir: Path, extra_additional: Sequence[Path] = ()) -> tuple[dict, KPIs]:
    """Simulate once: per (signal, stop edge) (arrivals, control delay s/veh, 95th-pct queue veh), and KPIs.

    ``extra_additional`` holds the programs to run (none: the network's own).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    edge_out = workdir / "edgedata.xml"
    meandata = workdir / "edgedata.add.xml"
    write_text_atomic(meandata, f'<additional>\n    <edgeData id="cqplan" file="{edge_out}" begin="{scenario.begin:g}" '
                                f'end="{scenario.end:g}" excludeEmpty="true"/>\n</additional>\n')
    sc = plan_scenario(scenario, extra_additional, workdir) if extra_additional else scenario
    sc = sc.with_options(additional_files=sc.additional_files + (meandata,))
    appr = approaches(sc.net_file, intersections)
    flat = [a for sid in intersections for a in appr[sid]]
    chain_edges = sorted({e for a in flat for e in a.edges})
    loop = ControlLoop(sc, LoopOptions(adaptive=False), signals=tuple(intersections), workdir=workdir / "run")
    series = []
    try:
        loop.reset()
        edge_api = loop.sim.api.edge
        while not loop.done:
            loop.advance(seconds=1)
            series.append([edge_api.getLastStepHaltingNumber(e) for e in chain_edges])
        kpis = loop.finish()
    finally:
        loop.close()
    halting = np.asarray(series, dtype=float).reshape(len(series), len(chain_edges))
    col = {e: i for i, e in enumerate(chain_edges)}
    data = _edge_data(edge_out)
    out = {}
    for a in flat:
        q = halting[:, [col[e] for e in a.edges]].sum(axis=1)
        c = max(int(round(cycles.get(a.signal, 120.0))), 1)
        per_cycle = [q[i:i + c].max() for i in range(0, len(q), c) if len(q[i:i + c])]
        q95 = float(np.percentile(per_cycle, 95)) if per_cycle else 0.0
        loss = sum(data.get(e, {}).get("timeLoss", 0.0) for e in a.edges)
        arrivals = data.get(a.edges[0], {}).get("entered", 0.0) + sum(
            data.get(e, {}).get("departed", 0.0) for e in a.edges)
        out[(a.signal, a.stop_edge)] = (int(arrivals), loss / arrivals if arrivals else 0.0, q95)
    return out, kpis


def _edge_data(path: Path) -> dict[str, dict[str, float]]:
    """Totals per edge over every interval of an edgeData file (time loss as a total, not a mean)."""
    out: dict[str, dict[str, float]] = {}
    try:
        for interval in sumolib.xml.parse(str(path), "interval"):
            for e in interval.getChild("edge") or []:
                d = out.setdefault(e.id, {"timeLoss": 0.0, "entered": 0.0, "departed": 0.0, "left": 0.0})
                for k in d:
                    d[k] += float(e.getAttributeSecure(k, 0.0))
    except (ParseError, OSError) as exc:
        raise SimulationError(f"{path}: edge data unreadable ({exc})") from None
    return out


def approach_results(runs: Sequence[dict], intersections: Mapping[str, Intersection], net_file: Path,
                     timings: Mapping[str, tuple[SignalTiming, float]],
                     flows: Mapping[tuple[str, str], float]) -> dict[str, list[ApproachResult]]:
    """Seed-averaged per-approach results (delay weighted by arrivals) with v/c and LOS."""
    appr = approaches(net_file, intersections)
    out: dict[str, list[ApproachResult]] = {}
    for sid, ix in intersections.items():
        rows = []
        timing, cycle = timings[sid]
        for a in appr[sid]:
            vals = [r[(sid, a.stop_edge)] for r in runs]
            n = sum(v[0] for v in vals)
            delay = sum(v[0] * v[1] for v in vals) / n if n else 0.0
            q95 = float(np.mean([v[2] for v in vals]))
            vc = approach_vc(ix, a, timing, cycle, flows)
            rows.append(ApproachResult(a, int(round(n / len(vals))), delay, q95, vc, level_of_service(delay, vc)))
        out[sid] = rows
    return out


def intersection_delay(rows: Sequence[ApproachResult]) -> tuple[float, str]:
    """Arrival-weighted control delay of a signal and its LOS."""
    n = sum(r.vehicles for r in rows)
    d = sum(r.vehicles * r.delay_s for r in rows) / n if n else 0.0
    return d, level_of_service(d)


