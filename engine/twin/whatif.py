"""What-if runs: the next horizon under a candidate plan, from the current traffic state.

Demand for the horizon comes from the forecast: each count location's flow per
5-min interval (the forecast's mean, low or high) becomes edge counts that
calibrate's route sampling (:mod:`engine.calibrate.sampler`, SUMO's
``routeSampler.py``) turns into vehicles. The run starts from

* ``state``: SUMO's saved state of the field (every vehicle where it is), or
* counts only (``state`` None): an empty network loaded for ``warmup_s`` with the
  demand the loops counted in that time, under the plan that ran then — what a
  deployment without vehicle positions can do.

It then runs the candidate's programs for the horizon, SUMO's microscopic model
or, for screening, its mesoscopic one with junction control. The result is
the horizon's total delay: SUMO's ``timeLoss`` summed over every edge
(``edgeData``, internal edges included) plus the seconds vehicles waited to enter.
"""

from __future__ import annotations

import gzip
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.calibrate.counts import Count
from engine.twin.forecast import FlowForecast

COUNT_STEP_S = 300.0
LEVELS = ("low", "mean", "high")
MESO_OPTIONS = ("--meso-junction-control", "true")  # signals hold vehicles at red, as in the microscopic model


@dataclass(frozen=True)
class WhatIf:
    """One what-if run (picklable: it goes to a worker process)."""

    name: str
    net_file: Path
    routes: tuple[Path, ...]  # horizon demand (and, counts-only, the warm-up demand)
    programs: Path  # additional file: tlLogic programs of ``program`` (and ``warmup_program``)
    program: str
    begin: float  # s, the decision time
    end: float  # s, begin + horizon
    workdir: Path
    state: Path | None = None  # SUMO state of the field at ``begin``; None: counts-only warm-up
    warmup_s: float = 0.0
    warmup_program: str | None = None
    meso: bool = False
    seed: int = 0
    save_state: Path | None = None  # write SUMO's state at ``end`` here (a race continues from it)


@dataclass(frozen=True)
class WhatIfResult:
    name: str
    delay_veh_h: float  # time lost on the network plus waited to enter, over the horizon
    backlog_veh_h: float  # of which waiting to enter
    arrived: int  # vehicles that finished their trip in the horizon
    delay_at: tuple[float, ...] = ()  # veh·h so far at the end of each 300 s from ``begin``


def horizon_counts(forecasts: Mapping[str, FlowForecast], begin: float, horizon_s: float,
                   level: str = "mean") -> list[Count]:
    """Edge counts (vehicles per 5-min interval) from ``begin`` for ``horizon_s``, at a forecast level."""
    if level not in LEVELS:
        raise ValueError(f"level {level!r}: one of {LEVELS}")
    out = []
    for loc, f in sorted(forecasts.items()):
        values = {"low": f.low, "mean": f.mean, "high": f.high}[level]
        n = min(len(values), int(math.ceil(horizon_s / f.step_s - 1e-9)))
        for i in range(n):
            b = begin + i * f.step_s
            out.append(Count(b, b + f.step_s, loc, None, max(0.0, float(values[i])) * f.step_s / 3600.0,
                             "forecast"))
    return out


def sample_demand(counts: Sequence[Count], routes: Sequence[tuple[str, ...]], candidates: Path,
                  begin: float, end: float, out: Path, seed: int, prefix: str) -> Path:
    """Vehicles matching ``counts`` over [begin, end), drawn from the candidate ``routes`` (routeSampler).

    The counts are first made consistent with each other (:func:`engine.calibrate.reconcile.reconcile`),
    as ``calibrate`` does; ``candidates`` is the route file of ``routes``. Each entry location's
    vehicles then equal its counts exactly (:func:`_replace_entry_vehicles`). Vehicle ids start
    with ``prefix``.
    """
    from engine.calibrate.reconcile import reconcile
    from engine.calibrate.sampler import run_route_sampler, write_count_data

    counts = list(counts)
    work = out.parent
    edge_file, turn_file = work / f"{out.stem}.edgedata.xml", work / f"{out.stem}.turns.xml"
    write_count_data(counts, 0.0, edge_file, turn_file, reconcile(counts, routes))
    run_route_sampler(candidates, edge_file, None, begin, end, out, seed,
                      'type="car" departLane="best" departSpeed="max"', work / f"{out.stem}.log", prefix=prefix)
    _replace_entry_vehicles(out, counts, routes, seed, prefix)
    return out


RouteMix = Mapping[str, Sequence[tuple[str, float]]]  # entry location -> (route edges, share)


def route_mix(route_files: Sequence[Path], locations: set[str], routes: Sequence[tuple[str, ...]]) -> dict:
    """Each entry location's routes and their shares, from a day's vehicles (``route_files``).

    The twin's knowledge of where traffic goes: the city's calibrated demand for the
    period (here the normal day's route file), as turning counts or an OD survey
    would give it. A vehicle belongs to the first count location on its route if that
    is an entry location (:func:`entry_locations` of ``routes``, the candidate routes).
    """
    from collections import Counter

    tally: dict[str, Counter] = {}
    for loc, edges, _ in _entry_vehicles(route_files, locations, routes):
        tally.setdefault(loc, Counter())[edges] += 1
    return {loc: [(e, n / sum(c.values())) for e, n in sorted(c.items())] for loc, c in sorted(tally.items())}


def entry_profile(route_files: Sequence[Path], locations: set[str], routes: Sequence[tuple[str, ...]],
                  begin: float, n: int, step_s: float = COUNT_STEP_S) -> dict[str, np.ndarray]:
    """Per entry location, the demand (veh/h) of each ``step_s`` interval from ``begin``: the day's
    departures there (``n`` intervals), what its entry loop counts unless a queue holds traffic back."""
    out: dict[str, np.ndarray] = {}
    for loc, _, depart in _entry_vehicles(route_files, locations, routes):
        i = int((depart - begin) // step_s)
        if 0 <= i < n:
            out.setdefault(loc, np.zeros(n))[i] += 3600.0 / step_s
    return out


def _entry_vehicles(route_files: Sequence[Path], locations: set[str], routes: Sequence[tuple[str, ...]]):
    """(entry location, route edges, departure s) of each vehicle of ``route_files`` that enters at one."""
    import xml.etree.ElementTree as ET

    entries = set(entry_locations(locations, routes).values())
    for f in route_files:
        root = ET.parse(f).getroot()
        named = {r.get("id"): r.get("edges") for r in root.iter("route") if r.get("id")}
        for v in root.iter("vehicle"):
            inner = v.find("route")
            edges = inner.get("edges") if inner is not None else named.get(v.get("route"))
            loc = next((e for e in (edges or "").split() if e in locations), None)
            if loc in entries:
                yield loc, edges, float(v.get("depart", "0"))


def entry_demand(counts: Sequence[Count], mix: RouteMix, out: Path, seed: int, prefix: str) -> Path:
    """Vehicles entering at each entry location as its counts say, on routes drawn from ``mix``.

    ``counts``: vehicles per interval at count locations (a forecast's, or counted);
    those at locations without a mix (interior loops) are not demand and are left
    out. Each interval's count (rounded) enters at uniform random times, each vehicle
    on a route drawn with the mix's shares. Written sorted by departure, ids ``prefix`` + n.
    """
    _write_vehicles(_entry_rows(counts, mix, np.random.default_rng(seed)), out, prefix)
    return out


def _entry_rows(counts: Sequence[Count], mix: RouteMix, rng) -> list[tuple[float, str]]:
    """(departure s, route edges) of the vehicles :func:`entry_demand` writes."""
    rows = []
    for c in counts:
        routes = mix.get(c.edge) if c.to_edge is None else None
        if not routes:
            continue
        n = int(round(c.value))
        edges = [e for e, _ in routes]
        p = np.array([w for _, w in routes], dtype=float)
        picks = rng.choice(len(edges), size=n, p=p / p.sum())
        rows += [(float(t), edges[int(k)]) for t, k in zip(rng.uniform(c.begin, c.end, size=n), picks)]
    return rows


def _write_vehicles(rows: Sequence[tuple[float, str]], out: Path, prefix: str) -> None:
    from engine.outputs import atomic_write_text

    lines = [f'    <vehicle id="{prefix}{i}" depart="{t:.2f}" type="car" departLane="best" departSpeed="max">'
             f'<route edges="{e}"/></vehicle>\n' for i, (t, e) in enumerate(sorted(rows))]
    atomic_write_text(out, "<routes>\n" + "".join(lines) + "</routes>\n")


def entry_locations(locations: set[str], routes: Sequence[tuple[str, ...]]) -> dict[tuple[str, ...], str]:
    """Route -> the count location where its vehicles enter the counted network.

    A location qualifies when it is the first counted edge of every route that
    passes it (a loop on an entry approach), so its count is the inflow of exactly
    those routes. Routes whose first counted edge is also downstream on other
    routes are left out (their inflow is not measured on its own).
    """
    first: dict[tuple[str, ...], str] = {}
    interior: set[str] = set()
    for r in routes:
        counted = [e for e in r if e in locations]
        if counted:
            first[r] = counted[0]
            interior.update(counted[1:])
    return {r: loc for r, loc in first.items() if loc not in interior}


def _replace_entry_vehicles(route_file: Path, counts: Sequence[Count], routes: Sequence[tuple[str, ...]],
                            seed: int, prefix: str) -> None:
    """Rewrite routeSampler's ``route_file`` so each entry's vehicles per interval equal its count.

    routeSampler fits every count at once and, with a route passing a dozen loops,
    leaves the long routes short wherever one loop downstream counts fewer (it
    never overshoots a count): on the corridor at a saturated 17:00 it wrote 53 %
    of the west entry's counted inflow. The inflow is what the entry loops measure:
    the vehicles of each entry are drawn again with :func:`entry_demand` on the
    route shares of the sampler's own output (:func:`route_mix`); vehicles entering
    where no loop counts are kept as sampled.
    """
    import xml.etree.ElementTree as ET

    locations = {c.edge for c in counts if c.to_edge is None}
    mix = route_mix([route_file], locations, routes)
    kept = []
    for v in ET.parse(route_file).getroot().iter("vehicle"):
        edges = v.find("route").get("edges")
        if next((e for e in edges.split() if e in locations), None) not in mix:
            kept.append((float(v.get("depart")), edges))
    _write_vehicles(kept + _entry_rows(counts, mix, np.random.default_rng(seed)), route_file, prefix)


def snapshot_routes(api, now: float, out: Path) -> Path:
    """The traffic on the network at ``now`` as vehicles that depart at ``now`` where they are.

    For the mesoscopic model, which cannot load the microscopic model's saved state:
    every vehicle on a road keeps its type, lane, position and speed and the rest of
    its route (one on a junction's internal lane starts at the beginning of its next
    edge); one waiting to enter starts at its route's beginning. ``api``: the
    running simulation (libsumo or TraCI).
    """
    from engine.outputs import atomic_write_text

    lines = []
    for vid in api.vehicle.getIDList():
        route = api.vehicle.getRoute(vid)
        k = api.vehicle.getRouteIndex(vid)
        road = api.vehicle.getRoadID(vid)
        kind = api.vehicle.getTypeID(vid)
        if road.startswith(":"):  # on a junction: it enters the next edge
            rest, where = route[k + 1:], 'departPos="base" departLane="best" departSpeed="max"'
        else:
            rest = route[k:]
            where = (f'departPos="{api.vehicle.getLanePosition(vid):.2f}" '
                     f'departLane="{api.vehicle.getLaneIndex(vid)}" departSpeed="{api.vehicle.getSpeed(vid):.2f}"')
        if rest:
            lines.append(f'    <vehicle id="{vid}" type="{kind}" depart="{now:g}" {where}>'
                         f'<route edges="{" ".join(rest)}"/></vehicle>\n')
    for vid in api.simulation.getPendingVehicles():
        lines.append(f'    <vehicle id="{vid}" type="{api.vehicle.getTypeID(vid)}" depart="{now:g}" '
                     f'departLane="best" departSpeed="max"><route edges="{" ".join(api.vehicle.getRoute(vid))}"/>'
                     '</vehicle>\n')
    atomic_write_text(out, "<routes>\n" + "".join(lines) + "</routes>\n")
    return out


def run_whatif(task: WhatIf, progress=None) -> WhatIfResult:
    """Run ``task`` in this process (libsumo: one per process; :func:`engine.runs.run_all` gives each its own)."""
    import libsumo as ls

    from engine.sim import sumo_binary

    task.workdir.mkdir(parents=True, exist_ok=True)
    edge_out = task.workdir / f"{task.name}.edgedata.xml"
    meandata = task.workdir / f"{task.name}.meandata.add.xml"
    meandata.write_text(
        f'<additional>\n    <edgeData id="whatif" file="{edge_out}" begin="{task.begin:g}" end="{task.end:g}" '
        f'period="{COUNT_STEP_S:g}" withInternal="true" excludeEmpty="true"/>\n</additional>\n', encoding="utf-8")
    start = task.begin - (task.warmup_s if task.state is None else 0.0)
    args = [sumo_binary(), "--net-file", str(task.net_file), "--begin", f"{start:g}", "--end", f"{task.end:g}",
            "--route-files", ",".join(str(r) for r in task.routes),
            "--additional-files", f"{task.programs},{meandata}",
            "--seed", str(task.seed), "--no-step-log", "true", "--no-warnings", "true",
            "--duration-log.disable", "true", "--time-to-teleport", "300",
            "--error-log", str(task.workdir / f"{task.name}.errors.log")]
    if task.state is not None:
        args += ["--load-state", str(task.state)]
    if task.save_state is not None:  # a continued run draws the same random numbers as one without a stop
        args += ["--save-state.rng", "true", "--save-state.precision", "8"]
    if task.meso:
        args += ["--mesosim", "true", *MESO_OPTIONS]
    try:
        ls.start(args)
    except Exception as exc:  # SUMO refused the inputs; libsumo only prints why: ask the binary
        raise _sumo_error(task, exc, args) from None
    try:
        signals = ls.trafficlight.getIDList()
        if task.state is None and task.warmup_program:
            _switch(ls, signals, task.warmup_program)
            ls.simulationStep(task.begin)
        _switch(ls, signals, task.program)
        backlog = 0.0
        waited: list[float] = []  # backlog so far at the end of each count interval
        arrived = 0
        t = ls.simulation.getTime()
        while t < task.end - 1e-9:
            ls.simulationStep()
            t = ls.simulation.getTime()
            backlog += len(ls.simulation.getPendingVehicles())
            arrived += ls.simulation.getArrivedNumber()
            if t > task.begin + 1e-9 and abs((t - task.begin) % COUNT_STEP_S) < 1e-9:
                waited.append(backlog)
        if task.save_state is not None:
            ls.simulation.saveState(str(task.save_state))
    except Exception as exc:
        ls.close()
        raise _sumo_error(task, exc) from None
    else:
        ls.close()
    if task.save_state is not None:
        strip_future(task.save_state, task.end)
    import xml.etree.ElementTree as ET

    lost_at, lost = [], 0.0
    for interval in ET.parse(edge_out).getroot().iter("interval"):
        lost += sum(float(e.get("timeLoss", 0.0)) for e in interval.iter("edge"))
        lost_at.append(lost)
    delay_at = tuple(round((a + b) / 3600.0, 3) for a, b in zip(lost_at, waited))
    return WhatIfResult(task.name, (lost + backlog) / 3600.0, backlog / 3600.0, arrived, delay_at)


_VEHICLE = re.compile(rb'<vehicle id="[^"]*"[^>]*?depart="([^"]+)".*?</vehicle>\s*', re.S)


def strip_future(state: Path, now: float) -> None:
    """Remove from a saved state (gzip XML) the vehicles SUMO had read ahead but not yet due (depart > now).

    SUMO loads route files some minutes ahead and saves those vehicles too: the twin
    must not see the field's future demand, and a run continued from the state reads
    them again from its route files.
    """
    raw = gzip.decompress(state.read_bytes())

    def keep(m: re.Match) -> bytes:
        return b"" if float(m.group(1)) > now + 1e-6 else m.group(0)

    state.write_bytes(gzip.compress(_VEHICLE.sub(keep, raw), compresslevel=1))


def _sumo_error(task: WhatIf, exc: BaseException, args: Sequence[str] | None = None):
    """A SimulationError with SUMO's own error line (not lost with the decision's folder).

    libsumo raises without the reason when loading fails; then the ``sumo`` binary
    loads the same inputs (``args``) once more to tell it.
    """
    import subprocess

    from engine.errors import SimulationError
    from engine.procs import child_kwargs

    lines: list[str] = []
    log = task.workdir / f"{task.name}.errors.log"
    if log.is_file():
        lines = log.read_text(errors="replace").splitlines()
    if args is not None and not any(ln.startswith("Error:") for ln in lines):
        try:
            proc = subprocess.run(list(args), capture_output=True, text=True, timeout=120, **child_kwargs())
            lines += (proc.stderr + proc.stdout).splitlines()
        except (OSError, subprocess.TimeoutExpired):
            pass
    errors = [ln.strip() for ln in lines if ln.startswith("Error:")]
    why = (errors or [ln.strip() for ln in lines if ln.strip()] or str(exc).strip().splitlines()
           or [exc.__class__.__name__])[0]
    return SimulationError(f"SUMO stopped: {why}")


def _switch(ls, signals: Sequence[str], program: str) -> None:
    """Every signal onto ``program`` (SUMO keeps the program's own offset: its position in the cycle)."""
    for tls in signals:
        if ls.trafficlight.getProgram(tls) == program:
            continue  # running already (a state carries its position in the cycle)
        if program in {lg.programID for lg in ls.trafficlight.getAllProgramLogics(tls)}:
            ls.trafficlight.setProgram(tls, program)
