"""The signal model: phases, links, foes and the intergreen between conflicting links.

An :class:`Intersection` knows its green phases, the lanes each phase serves,
which pairs of links are foes (crossings included) and the **intergreen** the
network itself uses between them: the time from the end of one link's green to
the start of a foe's green (yellow plus all-red for a vehicle link; the
pedestrian clearance for a crossing), as defined in traffic engineering (e.g.
FGSV RiLSA 2015, ch. 2.5; ITE, *Traffic Signal Timing Manual*, 2nd ed., ch. 5).
Clearance phases in the file are kept exactly as written for the transitions
the file contains; any other change between two greens gets a derived
clearance: each ending vehicle link shows its own yellow, then red, and no new
green starts before every intergreen to its foes has passed.

Networks are read by :mod:`engine.network`; this module only models signals.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property, lru_cache

GREEN = "Gg"
YELLOW = "yY"
RIGHT_TURN = "rR"  # SUMO's direction letters of right turns
DEFAULT_YELLOW_S = 3.0

CONTROLLED = "controlled"
NO_GREEN = "no green"  # flashing or off: runs its own program
SINGLE_GREEN = "single green"  # a ramp meter or a one-phase signal: runs its own program


def is_green_state(state: str) -> bool:
    """A green phase serves traffic and has no yellow (SUMO's own convention)."""
    return any(c in GREEN for c in state) and not any(c in YELLOW for c in state)


@dataclass(frozen=True)
class Movement:
    """One signal link: a connection from an incoming lane to an outgoing lane.

    ``approach`` is the compass side the traffic comes from (N, NE, E, ...),
    ``crossing`` marks a pedestrian crossing link (it has no yellow).
    """

    link: int
    from_lane: str
    to_lane: str
    from_edge: str
    to_edge: str
    direction: str  # SUMO's: s, l, r, t, L, R
    approach: str = ""
    crossing: bool = False


@dataclass(frozen=True)
class Phase:
    """A green phase as written in the program."""

    program_index: int
    state: str
    duration: float
    green_links: tuple[int, ...]


@dataclass(frozen=True)
class Intersection:
    """A signalised intersection (one SUMO traffic-light system) and the program SUMO runs.

    ``intergreens`` holds, per ordered foe pair (ending link, starting link), the
    longest time in seconds the program leaves between the end of the first's
    green and the start of the second's where it sequences them directly;
    :meth:`intergreen` answers for any pair.
    """

    id: str
    program_id: str
    program: tuple[tuple[str, float], ...]  # every step (state, duration s) in file order
    offset: float
    phases: tuple[Phase, ...]  # green phases, in cycle order
    movements: tuple[Movement, ...]
    conflicts: frozenset[tuple[int, int]]  # foe pairs (a < b) that no green phase runs together
    in_lanes: tuple[str, ...] = field(default=())
    out_lanes: tuple[str, ...] = field(default=())
    foes: frozenset[tuple[int, int]] = field(default=frozenset())  # every foe pair of the junction (a < b)
    crossing_links: frozenset[int] = field(default=frozenset())
    intergreens: tuple[tuple[int, int, float], ...] = field(default=())
    yellows: tuple[tuple[int, float, float], ...] = field(default=())  # (link, shortest, longest yellow s)
    kind: str = CONTROLLED

    @property
    def n_links(self) -> int:
        return len(self.program[0][0])

    @property
    def n_phases(self) -> int:
        return len(self.phases)

    @property
    def controllable(self) -> bool:
        """Two or more green phases: a controller can choose among them."""
        return self.kind == CONTROLLED

    @property
    def cycle(self) -> float:
        return sum(d for _, d in self.program)

    def next_phase(self, k: int) -> int:
        return (k + 1) % len(self.phases)

    def phase_lanes(self, k: int) -> tuple[str, ...]:
        """Incoming vehicle lanes with a green link in phase ``k``."""
        links = set(self.phases[k].green_links)
        return tuple(dict.fromkeys(m.from_lane for m in self.movements if m.link in links and not m.crossing))

    def file_clearance(self, k: int) -> tuple[tuple[str, float], ...]:
        """The steps written between green ``k`` and the next green phase in the file."""
        n = len(self.program)
        i, end = (self.phases[k].program_index + 1) % n, self.phases[self.next_phase(k)].program_index
        steps: list[tuple[str, float]] = []
        while i != end:
            steps.append(self.program[i])
            i = (i + 1) % n
        return tuple(steps)

    def clearance(self, i: int, j: int) -> tuple[tuple[str, float], ...]:
        """States and durations (s) to run when leaving green ``i`` for green ``j``."""
        return _clearance_cached(self, i, j)

    # -- intergreens -----------------------------------------------------------
    @cached_property
    def _intergreen_map(self) -> dict[tuple[int, int], float]:
        return {(a, b): t for a, b, t in self.intergreens}

    @cached_property
    def _yellow_map(self) -> dict[int, tuple[float, float]]:
        return {L: (lo, hi) for L, lo, hi in self.yellows}

    @cached_property
    def longest_all_red(self) -> float:
        """The longest all-red (intergreen less the ending vehicle link's yellow) the program uses (s)."""
        return max((max(t - self.yellow_time(a), 0.0) for a, _, t in self.intergreens
                    if a not in self.crossing_links), default=0.0)

    @cached_property
    def _longest_from(self) -> dict[int, float]:
        out: dict[int, float] = {}
        for a, _, t in self.intergreens:
            out[a] = max(out.get(a, 0.0), t)
        return out

    def is_foe(self, a: int, b: int) -> bool:
        """True where links ``a`` and ``b`` cross or merge (the junction's foe matrix, crossings included)."""
        pair = (min(a, b), max(a, b))
        return pair in self.foes or pair in self.conflicts

    def is_conflict(self, a: int, b: int) -> bool:
        """True where links ``a`` and ``b`` are foes that no green phase runs together."""
        return (min(a, b), max(a, b)) in self.conflicts

    def intergreen(self, ending: int, starting: int) -> float:
        """Seconds from the end of ``ending``'s green to the start of foe ``starting``'s green.

        The program's own value where it sequences the pair directly; for other
        pairs, the ending link's yellow plus the longest all-red the program uses
        between any foes, and never less than the longest intergreen the program
        gives the ending link towards any foe (a crossing's pedestrian clearance).
        """
        own = self._intergreen_map.get((ending, starting))
        if own is not None:
            return own
        return max(self.yellow_time(ending) + self.longest_all_red, self._longest_from.get(ending, 0.0))

    def yellow_time(self, link: int, shortest: bool = False) -> float:
        """The yellow a link shows when its green ends, in s: the longest the program gives it
        (``shortest``: the shortest); 0 for a crossing (pedestrians get no yellow)."""
        if link in self.crossing_links:
            return 0.0
        default = self.min_yellow or DEFAULT_YELLOW_S
        lo, hi = self._yellow_map.get(link, (default, default))
        return lo if shortest else hi

    @property
    def min_yellow(self) -> float:
        """Shortest yellow the network uses (0 if it uses none)."""
        ys = [d for s, d in self.program if any(c in YELLOW for c in s)]
        return min(ys) if ys else 0.0

    @cached_property
    def program_transitions(self) -> frozenset[tuple[str, str]]:
        """Consecutive (state, next state) pairs of the program, wrapping around."""
        n = len(self.program)
        return frozenset((self.program[i][0], self.program[(i + 1) % n][0]) for i in range(n))


def program_timing(program: Sequence[tuple[str, float]], phases: Sequence[Phase], n_links: int,
                   foes: frozenset[tuple[int, int]], crossings: frozenset[int]
                   ) -> tuple[tuple[tuple[int, int, float], ...], tuple[tuple[int, float], ...]]:
    """Intergreens and yellow times a program uses.

    For each change between consecutive green phases of the program (the
    clearance steps between them included), and each foe pair whose first link
    ends its green there and whose second starts its green there, the time
    between the two (s); the longest over the cycle is kept. Also, per link, the
    shortest and longest unbroken yellow it shows. Returns (intergreens as
    (ending, starting, s), yellows as (link, shortest s, longest s)).
    """
    if not phases or not program:
        return (), ()
    return _intergreens(program, phases, n_links, foes), _yellows(program, n_links, crossings)


def _intergreens(program: Sequence[tuple[str, float]], phases: Sequence[Phase], n_links: int,
                 foes: frozenset[tuple[int, int]]) -> tuple[tuple[int, int, float], ...]:
    """(ending, starting, s) for each foe pair across each change of green phase (see program_timing)."""
    n = len(program)
    cycle = sum(d for _, d in program)
    result: dict[tuple[int, int], float] = {}
    for k, ph in enumerate(phases):
        nxt = phases[(k + 1) % len(phases)]
        # walk from the green step to the next green phase's step, through the clearance
        i = ph.program_index
        t = 0.0
        green_end: dict[int, float] = {}
        last = program[i][0]
        j = (i + 1) % n
        t += program[i][1]
        while True:
            state = program[j][0]
            for L in range(min(n_links, len(state))):
                if last[L] in GREEN and state[L] not in GREEN and L not in green_end:
                    green_end[L] = t
            if j == nxt.program_index:
                break
            last = state
            t += program[j][1]
            j = (j + 1) % n
            if j == (i + 1) % n:  # a single green phase: one lap is enough
                break
        start_state = program[nxt.program_index][0]
        before = program[(nxt.program_index - 1) % n][0]
        for s_link in range(min(n_links, len(start_state))):
            if start_state[s_link] not in GREEN or before[s_link] in GREEN:
                continue
            for e_link, t_end in green_end.items():
                if e_link == s_link or (min(e_link, s_link), max(e_link, s_link)) not in foes:
                    continue
                gap = t - t_end
                if gap <= cycle:
                    result[(e_link, s_link)] = max(result.get((e_link, s_link), 0.0), gap)
    return tuple((a, b, t) for (a, b), t in sorted(result.items()))


def _yellows(program: Sequence[tuple[str, float]], n_links: int,
             crossings: frozenset[int]) -> tuple[tuple[int, float, float], ...]:
    """(link, shortest s, longest s) of the unbroken yellows each link shows (see program_timing)."""
    n = len(program)
    yellows: dict[int, list[float]] = {}
    for L in range(n_links):
        if L in crossings:
            continue
        first = next((i for i in range(n) if L >= len(program[i][0]) or program[i][0][L] not in YELLOW), None)
        if first is None:  # yellow all the time: not a yellow that ends a green
            continue
        run = 0.0
        for idx in range(first, first + n + 1):  # start outside a yellow, so each run is whole
            state, d = program[idx % n]
            if L < len(state) and state[L] in YELLOW:
                run += d
            elif run > 0:
                yellows.setdefault(L, []).append(run)
                run = 0.0
    return tuple((L, min(v), max(v)) for L, v in sorted(yellows.items()))


def starts_green(before: str, state: str) -> bool:
    """True where ``state`` turns some link green after ``before`` (or a permissive ``g`` protected)."""
    return any((c in GREEN and (L >= len(before) or before[L] not in GREEN)) or (c == "G" and before[L] == "g")
               for L, c in enumerate(state))


def green_phase_steps(program: Sequence[tuple[str, float]]) -> tuple[int, ...]:
    """Indices of the program's green phases.

    A green phase is a step without yellow that starts a green for at least one
    link (or makes a permissive ``g`` a protected ``G``). A green step that only ends greens (the
    pedestrian clearance of netconvert's programs, where crossings turn red while vehicles keep green)
    belongs to the clearance before the next phase. A program whose greens never
    change has its first green step as its only phase.
    """
    n = len(program)
    out = []
    for i, (state, _) in enumerate(program):
        if not is_green_state(state):
            continue
        if starts_green(program[(i - 1) % n][0], state):
            out.append(i)
    if not out:
        out = [i for i, (state, _) in enumerate(program) if is_green_state(state)][:1]
    return tuple(out)


@lru_cache(maxsize=4096)
def _clearance_cached(ix: Intersection, i: int, j: int) -> tuple[tuple[str, float], ...]:
    if i == j:
        return ()
    if j == ix.next_phase(i):
        return ix.file_clearance(i)  # the network's own change, as written
    return derive_clearance(ix, ix.phases[i].state, ix.phases[j].state)


def derive_clearance(ix: Intersection, a: str, b: str) -> tuple[tuple[str, float], ...]:
    """Clearance from green state ``a`` to green state ``b`` of ``ix``, link by link.

    Links green in both stay green. Each vehicle link that ends shows its own
    yellow (:meth:`Intersection.yellow_time`), then red (or SUMO's stop-and-go
    ``s`` where ``b`` shows it); a crossing that ends turns red at once. The new
    greens start when every ending link's yellow has run and every intergreen
    from an ending link to a starting foe has passed
    (:meth:`Intersection.intergreen`). Durations are in seconds and may be
    fractional; they are never rounded down.
    """
    n = len(a)
    ending = [L for L in range(n) if a[L] in GREEN and b[L] not in GREEN]
    if not ending:
        return ()
    starting = [L for L in range(n) if b[L] in GREEN and a[L] not in GREEN]
    yellow = {L: ix.yellow_time(L) for L in ending}
    end = max(yellow.values())
    for e in ending:
        for s in starting:
            if ix.is_conflict(e, s):
                end = max(end, ix.intergreen(e, s))
    cuts = sorted({0.0, end, *(y for y in yellow.values() if 0 < y < end)})
    steps = []
    for t0, t1 in zip(cuts, cuts[1:]):
        chars = []
        for L in range(n):
            if a[L] in GREEN and b[L] in GREEN:
                chars.append(a[L])
            elif L in yellow:
                chars.append("y" if t0 < yellow[L] else (b[L] if b[L] in "rs" else "r"))
            else:
                chars.append(a[L] if a[L] in "rsoOu" else "r")
        steps.append(("".join(chars), t1 - t0))
    return tuple(steps)


@lru_cache(maxsize=256)
def with_right_turn_overlaps(ix: Intersection) -> Intersection:
    """``ix`` with each right turn also green in every phase where none of its foes is (an overlap).

    A common NEMA/Synchro practice: e.g. the cross street's right turn runs with
    the arterial's protected lefts. A right turn is added only where it is no foe
    (in the junction's right-of-way matrix, crossings included) of any of the
    phase's greens, so it never crosses or merges with a green (never a
    right-turn green across a crossing that has green) and the conflicts stay as
    they are. An overlap green on both sides of a clearance stays green through it.
    """
    rights = [m.link for m in ix.movements if m.direction in RIGHT_TURN and not m.crossing]
    states = []
    for k, ph in enumerate(ix.phases):
        state = list(ph.state)
        for L in rights:
            if state[L] not in GREEN and not any(ix.is_foe(L, g) for g in ph.green_links):
                state[L] = "G"
        states.append(("".join(state), k))
    return with_phases(ix, states)


def with_phases(ix: Intersection, phases: Sequence[tuple[str, int]]) -> Intersection:
    """``ix`` running other green states, in this order: (state, network phase whose green time it takes).

    Each green's clearance to the next is the network's own where the pair is
    the network's own change, else derived link by link (:func:`derive_clearance`);
    foes and intergreens are the network's.
    """
    program: list[tuple[str, float]] = []
    new = []
    for i, (state, k) in enumerate(phases):
        duration = ix.phases[k].duration
        new.append(Phase(len(program), state, duration, tuple(L for L, c in enumerate(state) if c in GREEN)))
        program.append((state, duration))
        nxt = phases[(i + 1) % len(phases)][0]
        if (state, nxt) == (ix.phases[k].state, ix.phases[ix.next_phase(k)].state):
            program.extend(ix.file_clearance(k))
        else:
            program.extend(derive_clearance(ix, state, nxt))
    return replace(ix, program=tuple(program), phases=tuple(new))


def with_minimum_clearances(ix: Intersection, yellow_s: float, all_red_s: float
                            ) -> tuple[Intersection, tuple[str, ...]]:
    """``ix`` with every clearance at least ``yellow_s`` of yellow then ``all_red_s`` of all-red (s).

    Each green that ends vehicle links is followed by the network's yellow, lengthened
    to ``yellow_s`` where it is shorter, then by an all-red of ``all_red_s`` where the
    network has less (netconvert's programs have no all-red: a yellow runs straight into
    the next green). The all-red is the last yellow step with its yellows red; links green
    on both sides of it (a left going from permissive to protected) stay green. Greens,
    phase order and the links each step serves are unchanged; only the cycle grows.
    Yellow and all-red follow the plan constraints a city sets (e.g. ITE's change and
    clearance intervals); a green with no yellow at all is left as it is, for the plan
    validator to refuse. Every clearance step is then rounded up to whole seconds: SUMO runs
    a program in 1 s steps and carries the fraction on, so a 3.5 s yellow shows 3 s and 4 s
    in turn (measured with SUMO 1.28), a shortened yellow every other cycle. Returns the
    intersection and one line per lengthened or rounded clearance.
    """
    program = [list(step) for step in ix.program]
    notes: list[str] = []
    i = 0
    while i < len(program):
        n = len(program)
        state = program[i][0]
        nxt = program[(i + 1) % n][0]
        ending = [L for L, c in enumerate(state) if c in GREEN and nxt[L] not in GREEN
                  and L not in ix.crossing_links] if is_green_state(state) else []
        yellows, reds = [], []
        j = (i + 1) % n
        while ending and j != i and not starts_green(program[(j - 1) % n][0], program[j][0]):
            (yellows if any(program[j][0][L] in YELLOW for L in ending) else reds).append(j)
            j = (j + 1) % n
        if yellows:
            yellow = sum(program[k][1] for k in yellows)
            red = sum(program[k][1] for k in reds)
            if yellow + 1e-9 < yellow_s:
                program[yellows[-1]][1] += yellow_s - yellow
            if red + 1e-9 < all_red_s:
                after = [k for k in reds if (k - yellows[-1]) % n > 0]
                if after:
                    program[after[0]][1] += all_red_s - red
                else:
                    last = program[yellows[-1]][0]
                    red_state = "".join("r" if c in YELLOW else c for c in last)
                    program.insert(yellows[-1] + 1, [red_state, all_red_s - red])
                    if yellows[-1] + 1 <= i:
                        i += 1
            if yellow + 1e-9 < yellow_s or red + 1e-9 < all_red_s:
                notes.append(f"{ix.id}: after {state} the network shows yellow {yellow:g} s and all-red "
                             f"{red:g} s; plans run at least {yellow_s:g} s and {all_red_s:g} s")
        i += 1
    greens = set(green_phase_steps(tuple((state, float(d)) for state, d in program)))
    fractional = sorted({d for k, (_, d) in enumerate(program) if k not in greens and d != math.ceil(d)})
    if fractional:
        for k, step in enumerate(program):
            if k not in greens:
                step[1] = float(math.ceil(step[1]))
        notes.append(f"{ix.id}: clearance steps of {', '.join(f'{d:g}' for d in fractional)} s rounded up to "
                     "whole seconds (SUMO runs programs in 1 s steps: a fractional step ends early every other cycle)")
    if not notes:
        return ix, ()
    steps = tuple((state, float(d)) for state, d in program)
    phases = tuple(Phase(k, steps[k][0], ph.duration, ph.green_links)
                   for k, ph in zip(green_phase_steps(steps), ix.phases, strict=True))
    intergreens, yellows_ = program_timing(steps, phases, ix.n_links, ix.foes, ix.crossing_links)
    return replace(ix, program=steps, phases=phases, intergreens=intergreens, yellows=yellows_), tuple(notes)


def conflicts_of(foes: frozenset[tuple[int, int]], phases: Sequence[Phase]) -> frozenset[tuple[int, int]]:
    """Foe links that no green phase runs together."""
    together = set()
    for ph in phases:
        g = ph.green_links
        together.update((a, b) for a in g for b in g if a < b)
    return frozenset(pair for pair in foes if pair not in together)
