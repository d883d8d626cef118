"""Hourly flow of every (from_edge, to_edge) movement of a scenario's demand.

Timing heuristics (Webster, plans) need flows, not vehicles. For an embedded
network with a period-of-day demand they come from
:func:`engine.demand.movement_flows`; for a user's network they are counted from
the route files: ``<vehicle>`` and ``<trip>`` (a route, an inline route, a route
distribution, or from/to/via routed by shortest travel time) and ``<flow>``
(``vehsPerHour``, ``period``, ``probability`` or ``number``), averaged over the
scenario's window.
"""

from __future__ import annotations

import gzip
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from pathlib import Path

from engine.errors import ConfigError
from engine.network import load_network
from engine.scenario import Scenario

Flows = dict[tuple[str, str], float]
_VEHICLE_TAGS = ("vehicle", "trip", "flow")
_DEFAULT_FLOW_END = 86400.0  # SUMO's: a flow without an end runs for 24 h
VCLASS = "passenger"  # trips given by from/to are routed on the lanes a car may use


def scenario_flows(scenario: Scenario) -> Flows:
    """veh/h per (from_edge, to_edge) for ``scenario`` (its period demand or its route files)."""
    if scenario.demand_file is not None:
        from engine.demand import load_demand, movement_flows

        demand = load_demand(scenario.demand_file)
        return movement_flows(demand, scenario.net_file, scenario.period, scenario.scale)
    if not scenario.route_files:
        raise ConfigError(
            f"scenario {scenario.name}: no demand to time signals from (give route files)"
        )
    flows = route_file_flows(scenario.route_files, scenario.net_file, scenario.begin, scenario.end)
    return {k: v * scenario.scale for k, v in flows.items()}


def route_file_flows(
    route_files: Iterable[Path], net_file: Path, begin: float, end: float
) -> Flows:
    """Mean veh/h per movement over ``[begin, end)`` from SUMO route files."""
    if end <= begin:
        raise ConfigError(f"route_file_flows: empty window [{begin:g}, {end:g})")
    counter = _Counter(Path(net_file), begin, end)
    for path in route_files:
        counter.read(Path(path))
    hours = (end - begin) / 3600.0
    return {k: v / hours for k, v in sorted(counter.vehicles.items())}


class _Counter:
    """Adds up expected vehicles per movement, file by file (routes may be defined earlier)."""

    def __init__(self, net_file: Path, begin: float, end: float) -> None:
        self.net_file = net_file
        self.begin, self.end = begin, end
        self.routes: dict[str, list[tuple[tuple[str, ...], float]]] = {}  # id -> [(edges, prob)]
        self.vehicles: Flows = {}

    # -- reading ---------------------------------------------------------------
    def read(self, path: Path) -> None:
        if not path.is_file():
            raise ConfigError(f"{path}: route file not found")
        try:
            with gzip.open(path) if path.suffix == ".gz" else open(path, "rb") as f:
                root = ET.parse(f).getroot()
        except (ET.ParseError, OSError, EOFError) as exc:
            raise ConfigError(f"{path}: not a readable route file ({exc})") from None
        for el in root:
            if el.tag == "route" and el.get("id"):
                self.routes[el.get("id")] = [(self._edges(el, path), 1.0)]
            elif el.tag == "routeDistribution" and el.get("id"):
                self.routes[el.get("id")] = self._distribution(el, path)
        for el in root:
            if el.tag in _VEHICLE_TAGS:
                self._vehicle(el, path)

    def _edges(self, route: ET.Element, path: Path) -> tuple[str, ...]:
        edges = tuple((route.get("edges") or "").split())
        if not edges:
            raise ConfigError(f"{path}: route {route.get('id', '(inline)')} has no edges")
        return edges

    def _distribution(self, el: ET.Element, path: Path) -> list[tuple[tuple[str, ...], float]]:
        out = []
        for r in el.findall("route"):
            prob = _float(r, "probability", path, 1.0)
            if r.get("refId"):
                out += [(e, p * prob) for e, p in self._route_ref(r.get("refId"), path)]
            else:
                out.append((self._edges(r, path), prob))
        total = sum(p for _, p in out)
        if total <= 0:
            raise ConfigError(
                f"{path}: routeDistribution {el.get('id')} has no route with probability > 0"
            )
        return [(e, p / total) for e, p in out]

    def _route_ref(self, rid: str, path: Path) -> list[tuple[tuple[str, ...], float]]:
        if rid not in self.routes:
            raise ConfigError(f"{path}: unknown route '{rid}'")
        return self.routes[rid]

    def _vehicle(self, el: ET.Element, path: Path) -> None:
        routes = self._routes_of(el, path)
        n = self._expected_count(el, path)
        if n <= 0:
            return
        for edges, prob in routes:
            for a, b in zip(edges, edges[1:]):
                self.vehicles[(a, b)] = self.vehicles.get((a, b), 0.0) + n * prob

    def _routes_of(self, el: ET.Element, path: Path) -> list[tuple[tuple[str, ...], float]]:
        who = f"{path}: {el.tag} {el.get('id', '?')}"
        if el.get("route"):
            return self._route_ref(el.get("route"), path)
        inline = el.find("route")
        if inline is not None:
            return [(self._edges(inline, path), 1.0)]
        dist = el.find("routeDistribution")
        if dist is not None:
            return self._distribution(dist, path)
        if el.get("from") and el.get("to"):
            stops = [el.get("from"), *(el.get("via") or "").split(), el.get("to")]
            return [(self._shortest(stops, who), 1.0)]
        raise ConfigError(f"{who}: no route, route distribution or from/to")

    def _expected_count(self, el: ET.Element, path: Path) -> float:
        """Vehicles this element puts into the window (expected value for probabilistic flows)."""
        if el.tag != "flow":
            depart = el.get("depart", "0")
            try:
                t = float(depart)
            except ValueError:  # "triggered", "containerTriggered", "now": count it
                return 1.0
            return 1.0 if self.begin <= t < self.end else 0.0
        f_begin = _float(el, "begin", path, 0.0)
        f_end = _float(el, "end", path, None)
        number = _float(el, "number", path, None)
        if el.get("vehsPerHour") is not None:
            rate = _float(el, "vehsPerHour", path, 0.0) / 3600.0
        elif el.get("period") is not None:
            raw = el.get("period", "")
            if raw.startswith("exp(") and raw.endswith(")"):  # Poisson arrivals at this rate
                rate = _number(raw[4:-1], el, "period", path)
            else:
                period = _number(raw, el, "period", path)
                rate = 1.0 / period if period > 0 else 0.0
        elif el.get("probability") is not None:
            rate = _float(el, "probability", path, 0.0)
        elif number is not None:  # equally spaced over [begin, end)
            f_end = f_end if f_end is not None else _DEFAULT_FLOW_END
            if f_end <= f_begin:
                return number if self.begin <= f_begin < self.end else 0.0
            return number * self._overlap(f_begin, f_end) / (f_end - f_begin)
        else:
            raise ConfigError(
                f"{path}: flow {el.get('id', '?')} has none of vehsPerHour, period, "
                "probability, number"
            )
        if f_end is None:  # a rate with a number runs until the number is reached
            f_end = (
                f_begin + number / rate if number is not None and rate > 0 else _DEFAULT_FLOW_END
            )
        return rate * self._overlap(f_begin, f_end)

    def _overlap(self, a: float, b: float) -> float:
        return max(0.0, min(b, self.end) - max(a, self.begin))

    def _shortest(self, stops: list[str], who: str) -> tuple[str, ...]:
        net = load_network(self.net_file).net
        out: list[str] = [stops[0]]
        for a, b in zip(stops, stops[1:]):
            try:
                ea, eb = net.getEdge(a), net.getEdge(b)
            except KeyError as exc:
                raise ConfigError(f"{who}: edge {exc} is not in {self.net_file.name}") from None
            path, _ = net.getShortestPath(ea, eb, vClass=VCLASS)
            if path is None:
                raise ConfigError(f"{who}: no path from {a} to {b} in {self.net_file.name}")
            out += [e.getID() for e in path[1:]]
        return tuple(out)


def _float(el: ET.Element, key: str, path: Path, default: float | None) -> float | None:
    raw = el.get(key)
    return default if raw is None else _number(raw, el, key, path)


def _number(raw: str, el: ET.Element, key: str, path: Path) -> float:
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(
            f"{path}: {el.tag} {el.get('id', '?')}: {key}={raw!r} is not a number"
        ) from None
