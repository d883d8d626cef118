"""The signal model, read from a network's own ``tlLogic``.

An :class:`Intersection` knows its green phases, the clearance (yellow, all-red)
between any two of them, the lanes each phase serves and which pairs of links
conflict. Clearance phases in the file are kept exactly as written for the
transitions the file contains; other transitions get clearances of the same
shape and durations, derived link by link.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import sumolib

from engine.errors import NetworkError

GREEN = "Gg"
YELLOW = "yY"
RIGHT_TURN = "rR"  # SUMO's direction letters of right turns
DEFAULT_YELLOW_S = 3.0


def is_green_state(state: str) -> bool:
    """A green phase serves traffic and has no yellow (SUMO's own convention)."""
    return any(c in GREEN for c in state) and not any(c in YELLOW for c in state)


@dataclass(frozen=True)
class Movement:
    """One signal link: a connection from an incoming lane to an outgoing lane."""

    link: int
    from_lane: str
    to_lane: str
    from_edge: str
    to_edge: str
    direction: str  # SUMO's: s, l, r, t, L, R


@dataclass(frozen=True)
class Phase:
    """A green phase as written in the program."""

    program_index: int
    state: str
    duration: float
    green_links: tuple[int, ...]


@dataclass(frozen=True)
class Intersection:
    """A signalised intersection (one SUMO traffic-light system)."""

    id: str
    program_id: str
    program: tuple[tuple[str, float], ...]  # every phase (state, duration) in file order
    offset: float
    phases: tuple[Phase, ...]  # green phases, in cycle order
    movements: tuple[Movement, ...]
    conflicts: frozenset[tuple[int, int]]  # link pairs (a < b) that may never be green together
    in_lanes: tuple[str, ...] = field(default=())
    out_lanes: tuple[str, ...] = field(default=())
    foes: frozenset[tuple[int, int]] = field(default=frozenset())  # every foe pair of the junction (a < b)

    @property
    def n_links(self) -> int:
        return len(self.program[0][0])

    @property
    def n_phases(self) -> int:
        return len(self.phases)

    def next_phase(self, k: int) -> int:
        return (k + 1) % len(self.phases)

    def phase_lanes(self, k: int) -> tuple[str, ...]:
        """Incoming lanes with a green link in phase ``k``."""
        links = set(self.phases[k].green_links)
        return tuple(dict.fromkeys(m.from_lane for m in self.movements if m.link in links))

    def file_clearance(self, k: int) -> tuple[tuple[str, float], ...]:
        """The phases written between green ``k`` and the next green phase in the file."""
        n = len(self.program)
        i, end = (self.phases[k].program_index + 1) % n, self.phases[self.next_phase(k)].program_index
        steps: list[tuple[str, float]] = []
        while i != end:
            steps.append(self.program[i])
            i = (i + 1) % n
        return tuple(steps)

    def clearance(self, i: int, j: int) -> tuple[tuple[str, float], ...]:
        """States and durations to run when leaving green ``i`` for green ``j``."""
        return _clearance(self, i, j)

    @property
    def min_yellow(self) -> float:
        """Shortest yellow the network uses (the bound safety checks hold to)."""
        ys = [d for s, d in self.program if any(c in YELLOW for c in s)]
        return min(ys) if ys else 0.0

    @property
    def min_all_red(self) -> float:
        """Shortest all-red after a yellow (0 where the network has none)."""
        reds = []
        for k in range(self.n_phases):
            steps = self.file_clearance(k)
            reds.extend(d for s, d in steps if not any(c in YELLOW for c in s))
        return min(reds) if reds else 0.0


@lru_cache(maxsize=4096)
def _clearance_cached(ix: Intersection, i: int, j: int) -> tuple[tuple[str, float], ...]:
    if i == j:
        return ()
    template = ix.file_clearance(i)
    if j == ix.next_phase(i) and template:
        return template
    return derive_clearance(ix.phases[i].state, ix.phases[j].state, template)


def derive_clearance(a: str, b: str, template: tuple[tuple[str, float], ...] = ()) -> tuple[tuple[str, float], ...]:
    """Clearance from green state ``a`` to green state ``b`` in the shape and durations of ``template``.

    Links green in both stay green; links that end show yellow in the template's
    yellow steps and red (or the template's stop-and-go ``s``) in its all-red
    steps; the others keep their red. No template: one yellow of the default length.
    """
    ending = [a[L] in GREEN and b[L] not in GREEN for L in range(len(a))]
    if not any(ending):
        return ()
    if not template:
        template = ((a.replace("G", "y").replace("g", "y"), DEFAULT_YELLOW_S),)
    steps = []
    for state, dur in template:
        yellow_step = any(c in YELLOW for c in state)
        chars = []
        for L, c in enumerate(state):
            if a[L] in GREEN and b[L] in GREEN:
                chars.append(a[L])
            elif a[L] in GREEN:  # ends: yellow, then red (or the file's stop-and-go 's')
                chars.append("y" if yellow_step else (c if c in "rs" else "r"))
            else:
                chars.append(a[L] if a[L] in "rsoO" else "r")
        steps.append(("".join(chars), dur))
    return tuple(steps)


@lru_cache(maxsize=256)
def with_right_turn_overlaps(ix: Intersection) -> Intersection:
    """``ix`` with each right turn also green in every phase where none of its foes is (an overlap).

    A common NEMA/Synchro practice: e.g. the cross street's right turn runs with
    the arterial's protected lefts. A right turn is added only where it is no foe
    (in the junction's right-of-way matrix) of any of the phase's greens, so it
    never crosses or merges with a green and the conflicts stay as they are.
    Clearances keep the network's shape; an overlap green on both sides of a
    clearance stays green through it.
    """
    rights = [m.link for m in ix.movements if m.direction in RIGHT_TURN]
    blocked = ix.foes | ix.conflicts
    states = []
    for k, ph in enumerate(ix.phases):
        state = list(ph.state)
        for L in rights:
            if state[L] not in GREEN and not any((min(L, g), max(L, g)) in blocked for g in ph.green_links):
                state[L] = "G"
        states.append(("".join(state), k))
    return with_phases(ix, states)


def with_phases(ix: Intersection, phases: Sequence[tuple[str, int]]) -> Intersection:
    """``ix`` running other green states, in this order: (state, network phase whose clearance shape it takes).

    Each green's clearance to the next is derived link by link
    (:func:`derive_clearance`) in the shape and durations of that network
    phase's own; the conflicts are the network's.
    """
    program: list[tuple[str, float]] = []
    new = []
    for i, (state, k) in enumerate(phases):
        duration = ix.phases[k].duration
        new.append(Phase(len(program), state, duration, tuple(L for L, c in enumerate(state) if c in GREEN)))
        program.append((state, duration))
        program.extend(derive_clearance(state, phases[(i + 1) % len(phases)][0], ix.file_clearance(k)))
    return replace(ix, program=tuple(program), phases=tuple(new))


def _clearance(ix: Intersection, i: int, j: int) -> tuple[tuple[str, float], ...]:
    return _clearance_cached(ix, i, j)


def read_intersections(net_file: str | Path) -> dict[str, Intersection]:
    """Read every traffic-light system of ``net_file``, sorted by id."""
    net_file = Path(net_file)
    if not net_file.is_file():
        raise NetworkError(f"{net_file}: network file not found")
    try:
        net = sumolib.net.readNet(str(net_file), withPrograms=True, withInternal=False)
    except Exception as exc:  # sumolib raises many kinds on malformed XML
        raise NetworkError(f"{net_file}: not a readable SUMO network ({exc.__class__.__name__}: {exc})") from None
    result: dict[str, Intersection] = {}
    for tls in sorted(net.getTrafficLights(), key=lambda t: t.getID()):
        result[tls.getID()] = _intersection(net_file, tls)
    return result


def _intersection(net_file: Path, tls) -> Intersection:
    tid = tls.getID()
    programs = tls.getPrograms()
    if not programs:
        raise NetworkError(f"{net_file}: traffic light {tid} has no program")
    pid = sorted(programs)[0]
    prog = programs[pid]
    program = tuple((ph.state, float(ph.duration)) for ph in prog.getPhases())
    phases = tuple(
        Phase(i, s, d, tuple(L for L, c in enumerate(s) if c in GREEN))
        for i, (s, d) in enumerate(program)
        if is_green_state(s)
    )
    if not phases:
        raise NetworkError(f"{net_file}: traffic light {tid} has no green phase")
    movements = []
    nodes = {}
    for in_lane, out_lane, link in tls.getConnections():
        conn = next(
            (c for c in in_lane.getOutgoing() if c.getToLane() is out_lane and c.getTLLinkIndex() == link),
            None,
        )
        direction = conn.getDirection() if conn is not None else "s"
        if conn is not None:
            nodes[link] = (conn.getJunction(), conn.getJunctionIndex())
        movements.append(
            Movement(link, in_lane.getID(), out_lane.getID(), in_lane.getEdge().getID(),
                     out_lane.getEdge().getID(), direction)
        )
    movements.sort(key=lambda m: (m.link, m.from_lane, m.to_lane))
    foes = _foes(nodes)
    return Intersection(
        id=tid,
        program_id=pid,
        program=program,
        offset=float(prog.getOffset() or 0),
        phases=phases,
        movements=tuple(movements),
        conflicts=_conflicts(foes, phases),
        in_lanes=tuple(dict.fromkeys(m.from_lane for m in movements)),
        out_lanes=tuple(dict.fromkeys(m.to_lane for m in movements)),
        foes=foes,
    )


def _foes(nodes: dict) -> frozenset[tuple[int, int]]:
    """Link pairs whose paths cross or merge (the junction's right-of-way matrix)."""
    out = set()
    links = sorted(nodes)
    for x, a in enumerate(links):
        na, ia = nodes[a]
        for b in links[x + 1:]:
            nb, ib = nodes[b]
            if na is nb and ia >= 0 and ib >= 0 and (na.areFoes(ia, ib) or na.areFoes(ib, ia)):
                out.add((a, b))
    return frozenset(out)


def _conflicts(foes: frozenset[tuple[int, int]], phases: tuple[Phase, ...]) -> frozenset[tuple[int, int]]:
    """Foe links that no green phase runs together."""
    together = set()
    for ph in phases:
        g = ph.green_links
        together.update((a, b) for a in g for b in g if a < b)
    return frozenset(pair for pair in foes if pair not in together)
