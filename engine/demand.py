"""Period demand: hourly entry volumes and turning shares, turned into SUMO routes.

A demand file (YAML) gives, for each period of the day, the volume entering at each
source edge, the turning shares (left, through, right) of every approach of every
junction where routes branch, a peak-hour factor and a bus share. Routes chain the
turning shares downstream: a vehicle entering at the west end goes straight or
turns at each signal it reaches, a cross-street vehicle that turns onto the
arterial continues with the arterial's downstream shares. The same route
probabilities drive both the sampled vehicles (:func:`write_routes`) and the
analytic flows that timing heuristics use (:func:`movement_flows`), so the two
never disagree. The road graph and the signals come from the network model
(:mod:`engine.network`); flow ratios, lost time and v/c from :mod:`engine.webster`.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from engine.yamlfile import read_yaml
from engine.errors import ConfigError, NetworkError, listed
from engine.network import Network, load_network, read_intersections
from engine.webster import (SAT_THROUGH, SAT_TURN, TURN_SIDE, critical_vc as _critical_vc, intersection_flow_ratios,
                            lost_time)

PERIODS: tuple[str, ...] = ("am_peak", "midday", "pm_peak", "night", "holiday_evening")
TURNS: tuple[str, ...] = ("left", "through", "right")
PERIOD_KEYS: tuple[str, ...] = ("window", "phf", "peak_quarter", "bus_share", "entries", "turns")
VCLASS = "passenger"  # routes are drawn on the lanes and connections a car may use


@dataclass(frozen=True)
class Period:
    """One period of the day: window, hourly entry volumes and turning shares."""

    name: str
    window: tuple[int, int]  # seconds since midnight; end > 86400 if it runs past midnight
    phf: float               # peak-hour factor: hourly volume / (4 x busiest 15 min)
    peak_quarter: int        # which quarter of each hour (1-4) is the busiest
    bus_share: float
    entries: dict[str, float]                                 # source edge -> veh/h
    turns: dict[str, dict[str, tuple[float, float, float]]]   # junction -> approach -> (l, t, r)

    def quarter_weights(self) -> np.ndarray:
        """Share of the hourly volume in each 15-min quarter; the peak one gives the PHF."""
        peak = 1.0 / (4.0 * self.phf)
        weights = np.full(4, (1.0 - peak) / 3.0)
        weights[self.peak_quarter - 1] = peak
        return weights


@dataclass(frozen=True)
class Demand:
    """A validated demand file."""

    path: Path
    periods: dict[str, Period]

    def period(self, name: str) -> Period:
        """The period ``name``; ConfigError if the file does not define it."""
        if name not in self.periods:
            known = ", ".join(self.periods)
            raise ConfigError(f"{self.path}: unknown period {name!r}; known: {known}")
        return self.periods[name]


# ----------------------------------------------------------------------------- loading

def _clock(text: str, where: str) -> int:
    """Seconds since midnight of a period window's ``HH:MM`` (00:00 to 24:00, whole minutes)."""
    from engine.calibrate.counts import seconds_of

    value = seconds_of(text) if ":" in text else None
    if value is None:
        raise ConfigError(f"{where}: expected HH:MM, got {text!r}")
    if not 0 <= value <= 86400 or value % 60:
        raise ConfigError(f"{where}: {text!r} is not a time of day in whole minutes (00:00 to 24:00)")
    return int(value)


def _number(value: object, where: str, lo: float, hi: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
        raise ConfigError(f"{where}: expected a number in [{lo}, {hi}], got {value!r}")
    return float(value)


def _period(path: Path, name: str, raw: object) -> Period:
    where = f"{path}: periods.{name}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping")
    stray = [k for k in raw if k not in PERIOD_KEYS]
    if stray:
        raise ConfigError(f"{where}.{stray[0]}: unknown key (a period's keys: {', '.join(PERIOD_KEYS)})")
    for key in ("window", "phf", "bus_share", "entries", "turns"):
        if key not in raw:
            raise ConfigError(f"{where}.{key}: missing")
    parts = str(raw["window"]).split("-")
    if len(parts) != 2:
        raise ConfigError(f"{where}.window: expected 'HH:MM-HH:MM', got {raw['window']!r}")
    start, end = (_clock(p, f"{where}.window") for p in parts)
    if end == start:
        raise ConfigError(f"{where}.window: empty window")
    if end < start:  # runs past midnight, e.g. night 22:00-06:00
        end += 24 * 3600
    if not isinstance(raw["entries"], dict) or not raw["entries"]:
        raise ConfigError(f"{where}.entries: expected a mapping of source edge to veh/h")
    entries = {str(e): _number(v, f"{where}.entries.{e}", 0.0) for e, v in raw["entries"].items()}
    if not isinstance(raw["turns"], dict):
        raise ConfigError(f"{where}.turns: expected a mapping of junction to approaches")
    turns: dict[str, dict[str, tuple[float, float, float]]] = {}
    for node, approaches in raw["turns"].items():
        if not isinstance(approaches, dict):
            raise ConfigError(f"{where}.turns.{node}: expected approach: [left, through, right]")
        turns[str(node)] = {}
        for appr, shares in approaches.items():
            w = f"{where}.turns.{node}.{appr}"
            if not isinstance(shares, (list, tuple)) or len(shares) != 3:
                raise ConfigError(f"{w}: expected [left, through, right]")
            vals = tuple(_number(s, w, 0.0, 1.0) for s in shares)
            if abs(sum(vals) - 1.0) > 0.005:
                raise ConfigError(f"{w}: shares sum to {sum(vals):.3f}, not 1")
            turns[str(node)][str(appr)] = vals  # type: ignore[assignment]
    return Period(
        name=name,
        window=(start, end),
        phf=_number(raw["phf"], f"{where}.phf", 0.7, 1.0),
        peak_quarter=int(_number(raw.get("peak_quarter", 2), f"{where}.peak_quarter", 1, 4)),
        bus_share=_number(raw["bus_share"], f"{where}.bus_share", 0.0, 1.0),
        entries=entries,
        turns=turns,
    )


def load_demand(path: Path) -> Demand:
    """Read and validate a demand file; ConfigError naming file and field on any bad value.

    The file defines exactly the five periods of :data:`PERIODS`; every missing (or unknown)
    period is named in one line. Checks against a network: :func:`check_demand`."""
    path = Path(path)
    raw = read_yaml(path, "demand file")
    if not isinstance(raw, dict) or not isinstance(raw.get("periods"), dict):
        raise ConfigError(f"{path}: periods: missing or not a mapping")
    stray = [k for k in raw if k != "periods"]
    if stray:
        raise ConfigError(f"{path}: {stray[0]}: unknown key (a demand file has one key, periods)")
    allowed = ", ".join(PERIODS)
    unknown = [str(p) for p in raw["periods"] if p not in PERIODS]
    if unknown:
        raise ConfigError(f"{path}: {_fields('periods', unknown)}: unknown period{'s' * (len(unknown) > 1)}; "
                          f"a demand file defines exactly the five periods {allowed}")
    missing = [p for p in PERIODS if p not in raw["periods"]]
    if missing:
        raise ConfigError(f"{path}: {_fields('periods', missing)}: missing; a demand file must define all five "
                          f"periods ({allowed})")
    return Demand(path=path, periods={p: _period(path, p, raw["periods"][p]) for p in PERIODS})


def _fields(parent: str, names: list[str]) -> str:
    """``periods.a, periods.b`` for a message naming several fields."""
    return ", ".join(f"{parent}.{n}" for n in names)


def period_window(demand: Demand, period: str) -> tuple[int, int]:
    """Time-of-day window of ``period`` in seconds since midnight (start, end).

    A window past midnight (night, 22:00-06:00) ends after 86400 (here 108000).
    """
    return demand.period(period).window


# ----------------------------------------------------------------------------- network

@dataclass(frozen=True)
class _Graph:
    """What routing needs from a net: successors, branch junctions and approach names."""

    successors: dict[str, dict[str, str]]   # edge -> {to_edge: turn}
    to_node: dict[str, str]
    approach: dict[str, str]                 # incoming edge -> compass (W/E/N/S) at its to-node
    edges: frozenset[str] = frozenset()      # every normal edge of the net (cars or not)
    name: str = "the network"                # the net file's name, for messages


@lru_cache(maxsize=8)
def _graph_of(network: Network) -> _Graph:
    """The car road graph of a network: normal edges a car may use and their car connections.

    Sidewalks, crossings and walking areas carry no routes: pedestrian-only
    edges, internal edges and connections a car may not take are left out, and so are
    U-turns (:func:`car_turns`).
    """
    net = network.net
    edges = [e for e in net.getEdges(withInternal=False) if e.allows(VCLASS)]
    successors: dict[str, dict[str, str]] = {}
    to_node, approach = {}, {}
    for e in edges:
        eid = e.getID()
        successors[eid] = car_turns(e)
        to_node[eid] = e.getToNode().getID()
        (jx, jy), (fx, fy) = e.getToNode().getCoord()[:2], e.getFromNode().getCoord()[:2]
        dx, dy = fx - jx, fy - jy
        approach[eid] = ("W" if dx < 0 else "E") if abs(dx) >= abs(dy) else ("S" if dy < 0 else "N")
    return _Graph(successors, to_node, approach, frozenset(e.getID() for e in net.getEdges(withInternal=False)),
                  Path(network.path).name)


def car_turns(edge) -> dict[str, str]:
    """The edges a car may drive on to from the sumolib ``edge``, each with its turn (left,
    through or right), sorted by id: normal edges a car may use, over connections it may
    take. U-turns, turns SUMO marks ``t`` (``T`` in a left-hand network) onto an edge back to
    the node ``edge`` comes from (netconvert adds them at every junction by default, the
    network's edge included), are left out: turning shares do not give them, a left share
    split with a U-turn would send half the left-turners back, and a U-turn at the fringe
    would make every exit lead back in (so no edge would be an entry). A sharp turn SUMO
    also marks ``t`` but that leads on to another road is a left (``T``: a right), and a
    right or left that happens to end where the edge began (a loop) is kept."""
    origin = edge.getFromNode().getID()
    out: dict[str, str] = {}
    for to, conns in sorted(edge.getAllowedOutgoing(VCLASS).items(), key=lambda kv: kv[0].getID()):
        turns = [c.getDirection() for c in conns]
        u_turn = to.getToNode().getID() == origin and all(t in ("t", "T") for t in turns)
        if to.getFunction() == "" and to.allows(VCLASS) and not u_turn:
            out[to.getID()] = TURN_SIDE.get(turns[-1], "through")
    return out


def _graph(net_file: Path) -> _Graph:
    return _graph_of(load_network(net_file))


Route = tuple[tuple[str, ...], float]  # edges, probability
# Routes rarer than this are not enumerated (a grid has thousands of turn sequences per entry);
# the entry's other routes keep their proportions.
MIN_ROUTE_P = 1e-4


def _routes(graph: _Graph, period: Period, source: Path, entry: str) -> list[Route]:
    """All routes from ``entry`` with their probabilities, chaining turning shares.

    Turns that would bring a vehicle back onto an edge of its route are dropped (their share
    goes to the branch's other turns), and routes below :data:`MIN_ROUTE_P` are not
    followed (the rest are scaled to sum to 1). Neither happens on a tree of roads such as
    the corridor; both make a grid routable. Raises ConfigError for a missing turn share.
    """
    where = f"{source}: periods.{period.name}.entries.{entry}"
    if entry not in graph.successors:
        if entry in graph.edges:
            raise ConfigError(f"{where}: edge {entry} of {graph.name} is closed to cars ({VCLASS}); "
                              f"an entry is an edge cars drive into the network on")
        raise ConfigError(f"{where}: no such edge in the network ({graph.name})")
    if not graph.successors[entry]:
        entries = listed(entry_edges(graph.successors), 12)
        raise ConfigError(f"{where}: edge {entry} leads out of the network at {graph.to_node[entry]} "
                          f"(no connection from it to another edge), so vehicles entering there go "
                          f"nowhere; an entry is an edge into the network (here: {entries})")
    done: list[Route] = []
    pruned: list[float] = []
    stack: list[Route] = [((entry,), 1.0)]
    while stack:
        path, prob = stack.pop()
        edge = path[-1]
        nexts = graph.successors[edge]
        if not nexts:
            done.append((path, prob))
            continue
        if len(nexts) == 1:
            branches = [(next(iter(nexts)), 1.0)]
        else:
            node, appr = graph.to_node[edge], graph.approach[edge]
            where = f"{source}: periods.{period.name}.turns.{node}.{appr}"
            shares = period.turns.get(node, {}).get(appr)
            if shares is None:
                raise ConfigError(f"{where}: missing (edge {edge} branches there)")
            by_turn: dict[str, list[str]] = {}
            for to, turn in sorted(nexts.items()):
                by_turn.setdefault(turn, []).append(to)
            branches = []
            for turn, share in zip(TURNS, shares):
                targets = by_turn.get(turn, [])
                if share > 0 and not targets:
                    raise ConfigError(f"{where}: {turn} share {share} but no {turn} turn there")
                branches += [(to, share / len(targets)) for to in targets]
        # a vehicle never drives an edge twice (on a grid, four rights make a loop): a turn
        # back onto the route is dropped and the branch's other turns share its probability
        ahead = [(to, p) for to, p in branches if p > 0 and to not in path]
        total = sum(p for _, p in ahead)
        if not ahead:
            raise NetworkError(f"{where}: a route from {entry}: every turn at edge {edge} leads back "
                               "onto the route")
        for to, p in ahead:
            share = prob * p / total
            if share >= MIN_ROUTE_P:
                stack.append((path + (to,), share))
            else:
                pruned.append(share)
    if pruned:  # the rare routes dropped: the others keep their proportions
        scale = 1.0 / sum(p for _, p in done)
        done = [(edges, p * scale) for edges, p in done]
    return sorted(done)


def _route_table(demand: Demand, net_file: Path,
                 period: str) -> list[tuple[str, float, list[Route]]]:
    """(entry, veh/h, routes) for every entry of ``period``, in sorted entry order."""
    p = demand.period(period)
    graph = _graph(net_file)
    return [(e, p.entries[e], _routes(graph, p, demand.path, e)) for e in sorted(p.entries)]


def entry_edges(successors: Mapping[str, Collection[str]]) -> list[str]:
    """Edges cars enter the network on, by id: no car edge leads into them (``successors``: each car
    edge's next edges, :func:`car_turns`), and they lead on. Demand's and calibrate's entries."""
    reached = {to for nexts in successors.values() for to in nexts}
    return sorted(e for e, nexts in successors.items() if nexts and e not in reached)


def check_demand(demand: Demand, net_file: Path, periods: tuple[str, ...] | list[str] | None = None) -> None:
    """Check ``demand`` against the network of ``net_file``, every period (or ``periods``), before any
    work: ConfigError (one line naming the file and ``periods.<p>.<field>``) for a junction or an
    approach under ``turns`` the network does not have, an entry that is no edge, is closed to cars or
    leads out of the network, and whatever routing from each entry finds (a missing turning share, a
    share for a turn that does not exist) -- the same checks :func:`write_routes` would make later."""
    graph = _graph(net_file)
    approaches: dict[str, set[str]] = {}
    for edge, node in graph.to_node.items():
        approaches.setdefault(node, set()).add(graph.approach[edge])
    branching = sorted({graph.to_node[e] for e, nexts in graph.successors.items() if len(nexts) > 1})
    for name in periods if periods is not None else demand.periods:
        period = demand.period(name)
        where = f"{demand.path}: periods.{name}.turns"
        for node, by_approach in period.turns.items():
            if node not in approaches:
                tls = _tls_junctions(net_file).get(node)
                hint = (f"{node!r} is a traffic light, of junction{'s' * (len(tls) > 1)} {', '.join(tls)}: "
                        "turns are given by junction"
                        if tls else f"junctions where routes branch: {listed(branching, 12)}")
                raise ConfigError(f"{where}.{node}: no junction {node!r} that cars reach in {graph.name} ({hint})")
            for appr in by_approach:
                if appr not in approaches[node]:
                    raise ConfigError(f"{where}.{node}.{appr}: no car approach from {appr} at {node} "
                                      f"(its approaches: {', '.join(sorted(approaches[node]))})")
        for entry in sorted(period.entries):
            _routes(graph, period, demand.path, entry)


def _tls_junctions(net_file: Path) -> dict[str, list[str]]:
    """Junctions of each traffic light of the net, by traffic-light id (a hint when one is mistaken for a junction)."""
    net = load_network(net_file).net
    return {t.getID(): sorted({c[0].getEdge().getToNode().getID() for c in t.getConnections()})
            for t in net.getTrafficLights()}


_CHECKED: set[tuple] = set()


def check_demand_file(demand_file: Path, net_file: Path) -> Demand:
    """The demand file loaded and checked whole against ``net_file`` (:func:`check_demand`), once per
    process and file state."""
    def stamp(p: Path) -> tuple:
        st = Path(p).stat()
        return (str(Path(p).resolve()), st.st_mtime_ns, st.st_size)

    demand = load_demand(demand_file)
    try:
        key = (stamp(demand_file), stamp(net_file))
    except OSError:
        key = None
    if key is None or key not in _CHECKED:
        check_demand(demand, net_file)
        if key is not None:
            _CHECKED.add(key)
    return demand


# ----------------------------------------------------------------------------- outputs

def movement_flows(demand: Demand, net_file: Path, period: str,
                   scale: float = 1.0) -> dict[tuple[str, str], float]:
    """Expected hourly flow (veh/h, peak-hour average) of every (from_edge, to_edge) movement.

    Computed from the same route probabilities the vehicles are drawn from.
    """
    flows: dict[tuple[str, str], float] = {}
    for _, volume, routes in _route_table(demand, net_file, period):
        for edges, prob in routes:
            for a, b in zip(edges, edges[1:]):
                flows[(a, b)] = flows.get((a, b), 0.0) + volume * scale * prob
    return dict(sorted(flows.items()))


VTYPES = (
    '    <vType id="car" vClass="passenger" length="5" minGap="2.5" accel="2.6" decel="4.5" '
    'sigma="0.5" carFollowModel="KraussPS"/>\n'
    '    <vType id="bus" vClass="bus" length="12" minGap="2.5" accel="1.2" decel="4.0" '
    'sigma="0.5" carFollowModel="KraussPS"/>\n'
)


def write_routes(demand: Demand, net_file: Path, period: str, seed: int, scale: float,
                 duration: float, out_path: Path, begin: float = 0.0,
                 factor: Callable[[np.ndarray, str], np.ndarray] | None = None, factor_max: float = 1.0) -> int:
    """Write a SUMO route file for ``duration`` s of ``period``; returns the vehicle count.

    Departures (from ``begin``, 0 by default) are Poisson arrivals per entry whose rate
    follows the period's 15-min profile (peak quarter from the PHF) times ``scale``; routes and
    buses are drawn with ``numpy.random.default_rng(seed)``, so a seed gives a
    byte-identical file. The file is written to a temp file and moved into place.

    ``factor`` (optional) multiplies that rate over time: it maps departure times (s since
    ``begin``, an array) and the entry edge to multipliers in ``[0, factor_max]``; departures are drawn at
    ``factor_max`` times the rate and each kept with probability ``factor(t) / factor_max``
    (thinning of a Poisson process, Lewis & Shedler 1979).
    """
    if scale < 0 or duration <= 0:
        raise ConfigError(f"write_routes: need scale >= 0 and duration > 0, "
                          f"not {scale} and {duration}")
    if factor is not None and not (0 < factor_max < math.inf):
        raise ConfigError(f"write_routes: factor_max must be positive and finite, not {factor_max}")
    p = demand.period(period)
    table = _route_table(demand, net_file, period)
    rng = np.random.default_rng(seed)
    weights = p.quarter_weights()
    n_quarters = int(math.ceil(duration / 900.0))
    starts = np.arange(n_quarters) * 900.0
    lengths = np.minimum(starts + 900.0, duration) - starts
    rate_share = weights[np.arange(n_quarters) % 4] / 900.0  # share of hourly volume per second

    times, route_ix, buses = [], [], []
    route_lines, offset = [], 0
    for entry, volume, routes in table:
        for j, (edges, _) in enumerate(routes):
            route_lines.append(f'    <route id="{entry}.r{j}" edges="{" ".join(edges)}"/>\n')
        peak = 1.0 if factor is None else factor_max
        counts = rng.poisson(volume * scale * peak * rate_share * lengths)
        t = np.concatenate([s + rng.random(c) * ln for s, c, ln in zip(starts, counts, lengths)])
        if factor is not None:
            keep = rng.random(len(t)) * factor_max < np.clip(factor(t, entry), 0.0, factor_max)
            t = t[keep]
        probs = np.array([pr for _, pr in routes])
        times.append(t)
        route_ix.append(offset + rng.choice(len(routes), size=len(t), p=probs / probs.sum()))
        buses.append(rng.random(len(t)) < p.bus_share)
        offset += len(routes)
    route_ids = [line.split('"')[1] for line in route_lines]
    t_all = np.concatenate(times) if times else np.zeros(0)
    order = np.argsort(t_all, kind="stable")
    r_all, b_all = np.concatenate(route_ix)[order], np.concatenate(buses)[order]
    vehicle_lines = [
        f'    <vehicle id="{i}" type="{"bus" if b else "car"}" route="{route_ids[r]}" '
        f'depart="{begin + t:.2f}" departLane="best" departSpeed="max"/>\n'
        for i, (t, r, b) in enumerate(zip(t_all[order], r_all, b_all))
    ]
    text = "".join([
        '<?xml version="1.0" encoding="UTF-8"?>\n',
        f"<!-- cqsignal synthetic demand: period={period} seed={seed} scale={scale} "
        f"duration={duration} -->\n",
        "<routes>\n", VTYPES, *route_lines, *vehicle_lines, "</routes>\n",
    ])
    _write_atomic(Path(out_path), text)
    return len(vehicle_lines)


def _write_atomic(path: Path, text: str) -> None:
    from engine.outputs import atomic_write_text

    atomic_write_text(path, text)


# ----------------------------------------------------------------------------- v/c

def phase_flow_ratios(demand: Demand, net_file: Path, period: str,
                      scale: float = 1.0) -> dict[str, tuple[list[float], float, float]]:
    """Per controllable signal: (critical flow ratio of each green phase, cycle C, lost time L).

    With the program SUMO runs (:func:`engine.network.read_intersections`), the
    flow ratios of :func:`engine.webster.intersection_flow_ratios` (HCM lane
    groups, s = 1600 veh/h/lane with a through movement and 1500 turn-only;
    pedestrian crossings carry no flow; a lane group's flow is counted once
    however many greens serve it) and the lost time of
    :func:`engine.webster.lost_time`. Right turns on red are ignored.
    """
    flows = movement_flows(demand, net_file, period, scale)
    return {tid: (intersection_flow_ratios(ix, flows), ix.cycle, lost_time(ix))
            for tid, ix in read_intersections(net_file).items()}


def critical_vc(demand: Demand, net_file: Path, period: str,
                scale: float = 1.0) -> dict[str, float]:
    """Critical v/c of every controllable signal, Xc = Y * C / (C - L), with the net's own programs."""
    return {tls: _critical_vc(r, c, lost)
            for tls, (r, c, lost) in phase_flow_ratios(demand, net_file, period, scale).items()}


# ----------------------------------------------------------------------------- report

def _sumo_check(demand: Demand, net_file: Path, period: str, seed: int) -> dict[str, float]:
    """Run the period's first hour (plus 15 min to drain) in SUMO with the net's programs."""
    import re
    import subprocess

    import sumolib

    from engine.procs import child_kwargs

    from networks.build import sumo_env, sumo_home

    with tempfile.TemporaryDirectory() as tmp:
        routes, trips = Path(tmp) / "r.rou.xml", Path(tmp) / "trips.xml"
        n = write_routes(demand, net_file, period, seed, 1.0, 3600.0, routes)
        res = subprocess.run(
            [str(sumo_home() / "bin" / "sumo"), "-n", str(net_file), "-r", str(routes),
             "--no-step-log", "--end", "4500", "--seed", str(seed),
             "--tripinfo-output", str(trips), "--duration-log.statistics"],
            capture_output=True, text=True, env=sumo_env(), **child_kwargs())
        if res.returncode != 0:
            raise NetworkError(f"sumo failed on {net_file}: {res.stderr.strip().splitlines()[-1:]}")
        done = [(float(t.timeLoss) + float(t.departDelay), float(t.routeLength), float(t.duration))
                for t in sumolib.xml.parse(str(trips), "tripinfo")]
    out = res.stdout + res.stderr
    teleports = re.search(r"Teleports: (\d+)", out)
    return {"vehicles": n, "arrived": len(done),
            "teleports": int(teleports.group(1)) if teleports else 0,
            "mean_delay_s": sum(d for d, _, _ in done) / max(len(done), 1),
            "mean_speed_kmh": 3.6 * sum(length for _, length, _ in done)
            / max(sum(t for _, _, t in done), 1.0)}


def main(argv: list[str] | None = None) -> int:
    """``python -m engine.demand [network] [--period P] [--sumo]``: v/c table (and a SUMO check)."""
    import argparse

    import networks

    parser = argparse.ArgumentParser(prog="python -m engine.demand", description=main.__doc__)
    parser.add_argument("network", nargs="?", default="chongqing")
    parser.add_argument("--period", default="am_peak", choices=PERIODS)
    parser.add_argument("--sumo", action="store_true", help="also simulate the first hour in SUMO")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    info = networks.manifest(args.network)
    demand, net = load_demand(Path(info["demand"])), Path(info["net"])
    print(f"{args.network} {args.period}: critical v/c with the net's programs "
          f"(s = {SAT_THROUGH:.0f} through, {SAT_TURN:.0f} turning veh/h/lane)")
    print("| signal | flow ratio per green phase | Y | C (s) | L (s) | Xc |")
    print("|---|---|---|---|---|---|")
    for tls, (ratios, cycle, lost) in phase_flow_ratios(demand, net, args.period).items():
        y = sum(ratios)
        per_phase = " / ".join(f"{r:.3f}" for r in ratios)
        print(f"| {tls} | {per_phase} | {y:.3f} | {cycle:.0f} | {lost:.0f} "
              f"| {_critical_vc(ratios, cycle, lost):.2f} |")
    if args.sumo:
        check = _sumo_check(demand, net, args.period, args.seed)
        print(" ".join(f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}"
                       for k, v in check.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
