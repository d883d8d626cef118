"""Routes that reproduce counts: candidate routes, then SUMO's ``routeSampler.py`` per interval.

routeSampler picks, for every counting interval, how many vehicles use each
candidate route so that the vehicles passing each counted edge or turning
movement match the counts. Candidates are every loop-free route (no junction
visited twice) from an entry edge of the network to an exit edge that a
passenger car may drive, or a route file the user gives. A count that no
candidate passes cannot be reproduced: it is reported, never dropped quietly.
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from engine.calibrate.counts import Count
from engine.calibrate.files import write_text_atomic
from engine.demand import VCLASS, car_turns, entry_edges
from engine.errors import ConfigError, SimulationError
from engine.network import load_network
from engine.procs import child_kwargs
from engine.sim import sumo_tool

MAX_CANDIDATES = 20000  # a corridor or a small grid has far fewer; a city needs --candidates
SAMPLER_TIMEOUT_S = 900

Route = tuple[str, ...]


@dataclass(frozen=True)
class RoadNet:
    """What calibration needs from a network: its edges and the car-drivable graph."""

    edges: frozenset[str]                 # every non-internal edge
    successors: dict[str, tuple[str, ...]]  # car-drivable edge -> car-drivable next edges
    to_node: dict[str, str]
    from_node: dict[str, str]
    signals: tuple[str, ...]              # traffic-light ids

    @property
    def sources(self) -> list[str]:
        """Car edges nothing drives into and that lead on: where trips enter the network."""
        return entry_edges(self.successors)

    @property
    def sinks(self) -> list[str]:
        return sorted(e for e, nexts in self.successors.items() if not nexts)


def read_net(net_file: Path) -> RoadNet:
    """Edges, car connections and signals of ``net_file``, from the network model.

    Sidewalks, crossings and walking areas are not roads: internal edges
    (``:``-prefixed: junction-internal, crossings, walking areas) are left out,
    and only connections a passenger car may take link two car edges, U-turns
    excepted (:func:`engine.demand.car_turns`).
    """
    network = load_network(net_file)
    normal = network.net.getEdges(withInternal=False)
    successors: dict[str, tuple[str, ...]] = {}
    for e in normal:
        if not e.allows(VCLASS):
            continue
        successors[e.getID()] = tuple(car_turns(e))
    return RoadNet(
        edges=frozenset(e.getID() for e in normal),
        successors=successors,
        to_node={e.getID(): e.getToNode().getID() for e in normal},
        from_node={e.getID(): e.getFromNode().getID() for e in normal},
        signals=tuple(network.signals),
    )


def enumerate_routes(net: RoadNet, limit: int = MAX_CANDIDATES) -> list[Route]:
    """Every route from a source to a sink edge that visits no junction twice.

    ConfigError when there are more than ``limit``: such a network needs a
    candidate route file (``--candidates``), e.g. from duarouter.
    """
    sinks = set(net.sinks)
    routes: list[Route] = []
    for source in net.sources:
        start = frozenset({net.from_node[source], net.to_node[source]})
        stack: list[tuple[Route, frozenset[str]]] = [((source,), start)]
        while stack:
            path, seen = stack.pop()
            last = path[-1]
            if last in sinks:
                routes.append(path)
                if len(routes) > limit:
                    raise ConfigError(
                        f"more than {limit} candidate routes in this network: give a route file of "
                        "plausible routes with --candidates (e.g. from duarouter)")
                continue
            for nxt in reversed(net.successors[last]):
                node = net.to_node[nxt]
                if node not in seen:
                    stack.append((path + (nxt,), seen | {node}))
    return routes


def read_candidates(path: Path, net: RoadNet) -> list[Route]:
    """Routes (``<route edges>``, also inside vehicles) from a SUMO route file."""
    try:
        root = ET.parse(path).getroot()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read candidate routes ({exc.strerror})") from None
    except ET.ParseError as exc:
        raise ConfigError(f"{path}: not valid XML ({exc})") from None
    routes = []
    for r in root.iter("route"):
        edges = tuple((r.get("edges") or "").split())
        unknown = [e for e in edges if e not in net.edges]
        if unknown:
            raise ConfigError(f"{path}: route {r.get('id', '?')!r}: edge {unknown[0]!r} not in the network")
        if edges:
            routes.append(edges)
    if not routes:
        raise ConfigError(f"{path}: no <route edges=...> in candidate route file")
    return sorted(set(routes))


def unroutable(counts: Iterable[Count], routes: Sequence[Route]) -> list[Count]:
    """Counts whose location no candidate route passes (edge on it, or turn as two consecutive edges)."""
    on_route = {e for r in routes for e in r}
    turns = {(a, b) for r in routes for a, b in zip(r, r[1:])}
    return [c for c in counts
            if (c.edge not in on_route if c.to_edge is None else (c.edge, c.to_edge) not in turns)]


def write_count_data(counts: Sequence[Count], offset: float, edge_file: Path, turn_file: Path,
                     values: Mapping[Count, float] | None = None, warmup: float = 0.0) -> tuple[bool, bool]:
    """routeSampler inputs (SUMO data files, attribute ``count``), times shifted by ``-offset``.

    ``values`` replaces the counts' own values (e.g. reconciled ones); counts are
    rounded to whole vehicles. With ``warmup`` > 0 an interval [0, warmup)
    repeats the first interval's counts (scaled to its length) so that the network
    is already loaded when the first count begins. Returns (has edge counts, has turn counts).
    """
    by_interval: dict[tuple[float, float], list[tuple[Count, float]]] = {}
    first = min(c.begin for c in counts)
    for c in counts:
        v = c.value if values is None else values[c]
        by_interval.setdefault((c.begin - offset, c.end - offset), []).append((c, v))
        if warmup > 0 and c.begin == first:
            by_interval.setdefault((0.0, warmup), []).append((c, v * warmup / c.length))
    edge_lines, turn_lines = ["<data>\n"], ["<data>\n"]
    for (b, e), rows in sorted(by_interval.items()):
        head = f'    <interval id="{b:g}" begin="{b:g}" end="{e:g}">\n'
        edges = [(c, v) for c, v in rows if c.to_edge is None]
        turns = [(c, v) for c, v in rows if c.to_edge is not None]
        if edges:
            edge_lines += [head, *(f'        <edge id="{c.edge}" count="{round(v)}"/>\n' for c, v in edges),
                           "    </interval>\n"]
        if turns:
            turn_lines += [head, *(f'        <edgeRelation from="{c.edge}" to="{c.to_edge}" count="{round(v)}"/>\n'
                                   for c, v in turns), "    </interval>\n"]
    has_edges, has_turns = len(edge_lines) > 1, len(turn_lines) > 1
    if has_edges:
        write_text_atomic(edge_file, "".join(edge_lines + ["</data>\n"]))
    if has_turns:
        write_text_atomic(turn_file, "".join(turn_lines + ["</data>\n"]))
    return has_edges, has_turns


def write_candidates(routes: Sequence[Route], path: Path) -> None:
    lines = [f'    <route id="c{i}" edges="{" ".join(r)}"/>\n' for i, r in enumerate(routes)]
    write_text_atomic(path, "".join(["<routes>\n", *lines, "</routes>\n"]))


def run_route_sampler(candidates: Path, edge_file: Path | None, turn_file: Path | None, begin: float,
                      end: float, out: Path, seed: int, vehicle_attributes: str, log: Path,
                      prefix: str = "cal") -> None:
    """Call ``routeSampler.py`` and write ``out`` (vehicles sorted by departure, ids ``prefix`` + n).

    SimulationError with routeSampler's own last error line if it fails.
    """
    cmd = [sys.executable, sumo_tool("routeSampler.py"), "-r", str(candidates), "-o", str(out),
           "-b", f"{begin:g}", "-e", f"{end:g}", "--seed", str(seed), "--attributes", vehicle_attributes,
           "--prefix", prefix, "--edgedata-attribute", "count", "--turn-attribute", "count"]
    if edge_file is not None:
        cmd += ["--edgedata-files", str(edge_file)]
    if turn_file is not None:
        cmd += ["--turn-files", str(turn_file)]
    env = dict(os.environ)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=SAMPLER_TIMEOUT_S, env=env,
                              **child_kwargs())  # dies with calibrate, kill -9 included
    except subprocess.TimeoutExpired:
        raise SimulationError(f"routeSampler.py took longer than {SAMPLER_TIMEOUT_S} s") from None
    write_text_atomic(log, proc.stdout + proc.stderr)
    if proc.returncode != 0 or not out.is_file():
        lines = [ln for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
        why = lines[-1] if lines else f"exit {proc.returncode}"
        raise SimulationError(f"routeSampler.py failed: {why}")
