"""The network model: the one place that reads a SUMO network.

:func:`load_network` reads a ``.net.xml`` once per process (and file version)
with sumolib, together with any additional files the scenario loads, into
typed objects that every feature asks:

* the signals (:class:`~engine.signals.Intersection`) with the program SUMO
  actually runs at the start: the last program loaded for that signal (the net
  file's, then each additional file's in order), or a WAUT's start program;
* which of them can be controlled (two or more green phases); a signal whose
  programs have no green (flashing, off) or a single green (a ramp meter)
  keeps running its own program;
* movements as approach x turn with their lanes, the junction's foe matrix
  with pedestrian crossings, and the intergreens the program uses;
* the road graph (``net``, a ``sumolib.net.Net``) for routing;
* the observation area of each approach lane up to a detector range.

Nothing else parses a ``.net.xml``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import sumolib

from engine.errors import NetworkError
from engine.signals import (
    CONTROLLED, GREEN, NO_GREEN, SINGLE_GREEN, Intersection, Movement, Phase, conflicts_of,
    green_phase_steps, program_timing,
)

DEFAULT_DETECTOR_RANGE_M = 150.0
COMPASS = ("E", "NE", "N", "NW", "W", "SW", "S", "SE")
TURN_WORDS = {"s": "through", "l": "left", "r": "right", "t": "U-turn", "T": "U-turn", "L": "half left",
              "R": "half right"}


@dataclass(frozen=True, eq=False)
class Network:
    """A network read once: its signals, road graph and observation areas.

    ``signals`` holds every traffic-light system (sorted by id);
    ``controllable`` the ids a controller may run; ``uncontrolled`` maps the
    others to a one-line reason (they keep their own program).
    """

    path: Path
    additional: tuple[Path, ...]
    net: sumolib.net.Net
    signals: dict[str, Intersection]
    uncontrolled: dict[str, str] = field(default_factory=dict)

    @property
    def controllable(self) -> tuple[str, ...]:
        return tuple(t for t in self.signals if t not in self.uncontrolled)

    def intersections(self) -> dict[str, Intersection]:
        """The signals a controller may run, by id."""
        return {t: ix for t, ix in self.signals.items() if t not in self.uncontrolled}

    def lane_length(self, lane_id: str) -> float:
        return float(self.net.getLane(lane_id).getLength())

    def approach_area(self, lane_id: str, range_m: float = DEFAULT_DETECTOR_RANGE_M,
                      upstream: bool = True) -> tuple[tuple[str, float, float], ...]:
        """Lanes seen from ``lane_id`` up to ``range_m`` metres, with their weights.

        The lane itself counts whole; lanes before it (``upstream``; after it
        otherwise) are followed across short edges until ``range_m`` of road is
        covered, stopping at another signal. A lane only partly inside the range
        counts with the covered fraction of its length, and a lane that feeds
        several lanes of the area is shared among them, so that summing over a
        signal's lanes counts each vehicle once. Like an E2 lane-area detector
        (SUMO) or RESCO's ``max_distance``. Returns ((lane id, share, covered
        fraction), ...): ``share`` is the part of the lane this area counts (1,
        or less where it feeds several lanes of the area), ``covered`` the part
        of its length inside the range (:meth:`engine.layout.Layout.aggregate`
        spreads moving vehicles evenly and queues halting ones from its
        downstream end).
        """
        if range_m < 0 or not math.isfinite(range_m):
            raise NetworkError(f"detector range must be a finite number >= 0 m, got {range_m}")
        start = self.net.getLane(lane_id)
        weights: dict[str, tuple[float, float]] = {lane_id: (1.0, 1.0)}
        frontier = [(start, float(start.getLength()), 1.0)]
        while frontier:
            lane, covered, share = frontier.pop()
            if covered >= range_m:
                continue
            node = lane.getEdge().getFromNode() if upstream else lane.getEdge().getToNode()
            if node.getType() in ("traffic_light", "traffic_light_unregulated", "traffic_light_right_on_red"):
                continue
            for nxt in _neighbours(lane, upstream):
                part = share / max(len(_neighbours(nxt, not upstream)), 1)  # shared by the lanes it feeds
                length = float(nxt.getLength())
                covered_here = min(length, range_m - covered)
                fraction = covered_here / length if length > 0 else 1.0
                if nxt.getID() in weights or part * fraction <= 1e-6:
                    continue
                weights[nxt.getID()] = (part, fraction)
                if covered_here >= length:
                    frontier.append((nxt, covered + length, part))
        return tuple((lane, share, fraction) for lane, (share, fraction) in weights.items())

    def describe_phase(self, ix: Intersection, k: int) -> str:
        """Phase ``k`` of ``ix`` as the movements it serves, e.g. "W through + right, W left (permissive)"."""
        return describe_state(ix, ix.phases[k].state)


def _neighbours(lane, upstream: bool) -> list:
    """Lanes that feed ``lane`` (or that it feeds), normal lanes only, each once."""
    if upstream:
        lanes = lane.getIncoming()
    else:
        lanes = [c.getToLane() for c in lane.getOutgoing()]
    return list({la.getID(): la for la in lanes if not la.getID().startswith(":")}.values())


def describe_state(ix: Intersection, state: str) -> str:
    """Movements green in ``state`` grouped by approach: "W through + right, W left (permissive)"."""
    groups: dict[tuple[str, bool], list[str]] = {}
    crossings = []
    for m in ix.movements:
        c = state[m.link] if m.link < len(state) else "r"
        if c not in GREEN:
            continue
        if m.crossing:
            crossings.append(m.approach)
            continue
        turn = TURN_WORDS.get(m.direction, m.direction)
        words = groups.setdefault((m.approach, c == "g"), [])
        if turn not in words:
            words.append(turn)
    parts = []
    order = {w: i for i, w in enumerate(("through", "right", "half right", "left", "half left", "U-turn"))}
    for (approach, permissive), turns in sorted(groups.items(), key=lambda g: (COMPASS.index(g[0][0])
                                                                               if g[0][0] in COMPASS else 9, g[0][1])):
        text = f"{approach} " + " + ".join(sorted(turns, key=lambda t: order.get(t, 9)))
        parts.append(text + (" (permissive)" if permissive else ""))
    if crossings:
        parts.append("crossing " + " + ".join(dict.fromkeys(crossings)))
    return ", ".join(parts) or "nothing green"


@lru_cache(maxsize=32)
def _load(net_file: Path, additional: tuple[Path, ...], stamp: tuple) -> Network:
    try:
        net = sumolib.net.readNet(str(net_file), withPrograms=True, withPedestrianConnections=True)
    except Exception as exc:  # sumolib raises many kinds on malformed XML
        raise NetworkError(f"{net_file}: not a readable SUMO network ({exc.__class__.__name__}: {exc})") from None
    programs, waut_start = _additional_programs(additional)
    signals: dict[str, Intersection] = {}
    uncontrolled: dict[str, str] = {}
    for tls in sorted(net.getTrafficLights(), key=lambda t: t.getID()):
        tid = tls.getID()
        loaded = list(tls.getPrograms().values()) + programs.get(tid, [])
        if not loaded:
            raise NetworkError(f"{net_file}: traffic light {tid} has no program")
        active = loaded[-1]
        if tid in waut_start:
            active = next((p for p in loaded if p._id == waut_start[tid]), active)
        ix = _intersection(net, tls, active)
        signals[tid] = ix
        if ix.kind == NO_GREEN:
            uncontrolled[tid] = (f"{tid}: program '{ix.program_id}' has no green phase (flashing or off); "
                                 "it keeps its own program")
        elif ix.kind == SINGLE_GREEN:
            uncontrolled[tid] = (f"{tid}: program '{ix.program_id}' has a single green phase "
                                 "(a ramp meter, or greens that are all alike); "
                                 "it keeps metering with its own program")
    return Network(net_file, additional, net, signals, uncontrolled)


def load_network(net_file: str | Path, additional: Sequence[str | Path] = ()) -> Network:
    """The network of ``net_file`` (with programs from ``additional`` files), read once per process.

    Raises :class:`~engine.errors.NetworkError` (one line) for a missing or
    unreadable file or a signal without any program.
    """
    path = Path(net_file).resolve()
    if not path.is_file():
        raise NetworkError(f"{net_file}: network file not found")
    extra = tuple(Path(a).resolve() for a in additional)
    stamp = tuple((p.stat().st_mtime_ns, p.stat().st_size) for p in (path, *extra) if p.is_file())
    return _load(path, extra, stamp)


def read_intersections(net_file: str | Path, additional: Sequence[str | Path] = ()) -> dict[str, Intersection]:
    """The signals of ``net_file`` that a controller may run, sorted by id."""
    return load_network(net_file, additional).intersections()


def _additional_programs(files: tuple[Path, ...]) -> tuple[dict[str, list], dict[str, str]]:
    """tlLogic programs and WAUT start programs from additional files, in load order."""
    programs: dict[str, list] = {}
    wauts: dict[str, str] = {}
    junctions: dict[str, str] = {}
    for path in files:
        if not path.is_file():
            raise NetworkError(f"{path}: additional file not found")
        try:
            for el in sumolib.xml.parse(str(path), ["tlLogic", "WAUT", "wautJunction"]):
                if el.name == "tlLogic":
                    prog = sumolib.net.TLSProgram(el.programID, float(el.getAttributeSecure("offset", 0) or 0),
                                                  el.getAttributeSecure("type", "static"))
                    for ph in el.getChild("phase") or []:
                        prog.addPhase(ph.state, float(ph.duration))
                    programs.setdefault(el.id, []).append(prog)
                elif el.name == "WAUT":
                    wauts[el.id] = el.startProg
                else:
                    junctions[el.junctionID] = el.wautID
        except NetworkError:
            raise
        except Exception as exc:
            raise NetworkError(f"{path}: not a readable additional file ({exc.__class__.__name__}: {exc})") from None
    return programs, {j: wauts[w] for j, w in junctions.items() if w in wauts}


def _intersection(net, tls, prog) -> Intersection:
    tid = tls.getID()
    program = tuple((ph.state, float(ph.duration)) for ph in prog.getPhases())
    if not program:
        raise NetworkError(f"traffic light {tid}: program {prog._id!r} has no phases")
    phases = tuple(
        Phase(i, program[i][0], program[i][1], tuple(L for L, c in enumerate(program[i][0]) if c in GREEN))
        for i in green_phase_steps(program)
    )
    movements = []
    nodes = {}
    for in_lane, out_lane, link in tls.getConnections():
        conn = next(
            (c for c in in_lane.getOutgoing() if c.getToLane() is out_lane and c.getTLLinkIndex() == link),
            None,
        )
        crossing = in_lane.getEdge().getFunction() in ("walkingarea", "crossing") or \
            out_lane.getEdge().getFunction() == "crossing"
        direction = conn.getDirection() if conn is not None else "s"
        if direction in ("t", "T") and out_lane.getEdge().getToNode() is not in_lane.getEdge().getFromNode():
            direction = "l" if direction == "t" else "r"  # a sharp turn onto another road, not a U-turn
        if conn is not None:
            nodes.setdefault(link, (conn.getJunction(), conn.getJunctionIndex()))
        movements.append(Movement(
            link, in_lane.getID(), out_lane.getID(), in_lane.getEdge().getID(), out_lane.getEdge().getID(),
            direction, _approach(out_lane if crossing else in_lane, crossing), crossing,
        ))
    movements.sort(key=lambda m: (m.link, m.from_lane, m.to_lane))
    foes = _foes(nodes)
    crossings = frozenset(m.link for m in movements if m.crossing)
    n_links = len(program[0][0])
    intergreens, yellows = program_timing(program, phases, n_links, foes, crossings)
    distinct = len({ph.state for ph in phases})  # two identical greens (netgenerate's corners) are one
    kind = CONTROLLED if distinct >= 2 else SINGLE_GREEN if phases else NO_GREEN
    vehicle = [m for m in movements if not m.crossing]
    return Intersection(
        id=tid,
        program_id=str(prog._id),
        program=program,
        offset=float(prog.getOffset() or 0),
        phases=phases,
        movements=tuple(movements),
        conflicts=conflicts_of(foes, phases),
        in_lanes=tuple(dict.fromkeys(m.from_lane for m in vehicle)),
        out_lanes=tuple(dict.fromkeys(m.to_lane for m in vehicle)),
        foes=foes,
        crossing_links=crossings,
        intergreens=intergreens,
        yellows=yellows,
        kind=kind,
    )


def _approach(lane, crossing: bool) -> str:
    """Compass side a lane's traffic comes from (N, NE, ...); for a crossing, the side it lies on.

    A lane's direction is its last shape segment of non-zero length (netconvert can repeat the
    final point), else its edge's from-node to to-node; a crossing lying over the junction's
    centre falls back to the side of the road it crosses. "?" only when no geometry says.
    """
    shape = lane.getShape()
    if crossing:
        (x0, y0), (x1, y1) = shape[0], shape[-1]
        from_node = lane.getEdge().getFromNode()
        centre = from_node.getCoord() if from_node else (x0, y0)
        dx, dy = (x0 + x1) / 2 - centre[0], (y0 + y1) / 2 - centre[1]
        crossed = lane.getEdge().getCrossingEdges()
        if dx == 0 and dy == 0 and crossed and from_node:  # the side of the road it crosses
            e = crossed[0]
            far = e.getToNode() if e.getFromNode().getID() == from_node.getID() else e.getFromNode()
            dx, dy = far.getCoord()[0] - centre[0], far.getCoord()[1] - centre[1]
    else:
        x1, y1 = shape[-1]
        earlier = [p for p in shape[-2::-1] if (p[0], p[1]) != (x1, y1)]
        if earlier:
            dx, dy = earlier[0][0] - x1, earlier[0][1] - y1  # towards where the traffic comes from
        else:
            (fx, fy), (tx, ty) = lane.getEdge().getFromNode().getCoord(), lane.getEdge().getToNode().getCoord()
            dx, dy = fx - tx, fy - ty
    if dx == 0 and dy == 0:
        return "?"
    sector = int(round(math.degrees(math.atan2(dy, dx)) / 45.0)) % 8
    return COMPASS[sector]


def _foes(nodes: dict) -> frozenset[tuple[int, int]]:
    """Link pairs whose paths cross or merge (the junction's right-of-way matrix, crossings included)."""
    out = set()
    links = sorted(nodes)
    for x, a in enumerate(links):
        na, ia = nodes[a]
        for b in links[x + 1:]:
            nb, ib = nodes[b]
            if na is nb and ia >= 0 and ib >= 0 and (na.areFoes(ia, ib) or na.areFoes(ib, ia)):
                out.add((a, b))
    return frozenset(out)
