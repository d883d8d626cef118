"""An independent check of the signal states SUMO actually shows, second by second.

It knows nothing of how the states were produced, so it checks any controller
(and the network's own programs) against the signal model of
:mod:`engine.signals`:

* no two conflicting links active (green, or green while the foe is still
  yellow), pedestrian crossings included;
* every vehicle link that loses green shows yellow, for at least the shortest
  yellow the program gives that link (crossings turn red without yellow); in
  the program's own changes, as SUMO shows a fractional duration (whole steps);
* no link goes from yellow straight back to green, unless the program itself
  makes exactly that change (a protected left continuing permissive);
* no green starts before the intergreen from each conflicting link that ended
  has passed (yellow plus all-red, or the pedestrian clearance);
* every green phase held for at least min green and at most max green.

A change of states that the signal's own program makes step to step is never
a structural violation (no false positives on real programs); durations are
always checked.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from engine.signals import GREEN, YELLOW, Intersection

ACTIVE = GREEN + YELLOW
TOLERANCE_S = 1e-6


@dataclass
class Violation:
    time: float
    intersection: str
    rule: str
    detail: str

    def __str__(self) -> str:
        return f"t={self.time:g}s {self.intersection}: {self.rule} ({self.detail})"


class SafetyMonitor:
    """Feed it every second's states with :meth:`observe`; read :attr:`violations`.

    ``step_s`` is SUMO's step length: a state seen at ``t`` is on show until
    ``t + step_s``.
    """

    def __init__(
        self,
        intersections: Sequence[Intersection],
        min_green: float | None = None,
        max_green: float | None = None,
        step_s: float = 1.0,
    ) -> None:
        self.intersections = {ix.id: ix for ix in intersections}
        self.min_green = min_green
        self.max_green = max_green
        self.step_s = step_s
        self.violations: list[Violation] = []
        self._prev: dict[str, str] = {}
        self._yellow_since: dict[str, dict[int, float]] = {i: {} for i in self.intersections}
        self._green_end: dict[str, dict[int, float]] = {i: {} for i in self.intersections}
        self._green_phase: dict[str, tuple[str, float | None] | None] = {i: None for i in self.intersections}
        self._seen: set[str] = set()
        self._phase_states = {i: {p.state for p in ix.phases} for i, ix in self.intersections.items()}
        self._conflicting: dict[str, dict[int, tuple[int, ...]]] = {}
        for tid, ix in self.intersections.items():
            table: dict[int, list[int]] = {}
            for a, b in ix.conflicts:
                table.setdefault(a, []).append(b)
                table.setdefault(b, []).append(a)
            self._conflicting[tid] = {k: tuple(v) for k, v in table.items()}

    def observe(self, now: float, states: dict[str, str]) -> None:
        for tid, state in states.items():
            if tid in self.intersections:
                self._check(now, self.intersections[tid], state)
                self._prev[tid] = state

    def _flag(self, now: float, tid: str, rule: str, detail: str) -> None:
        self.violations.append(Violation(now, tid, rule, detail))

    def _check(self, now: float, ix: Intersection, state: str) -> None:
        tid = ix.id
        prev = self._prev.get(tid)
        for a, b in ix.conflicts:
            if state[a] in ACTIVE and state[b] in ACTIVE and not (state[a] in YELLOW and state[b] in YELLOW):
                self._flag(now, tid, "conflicting green", f"links {a} and {b}: {state}")
        if prev is None:  # first sight: a yellow already showing started now at the earliest
            self._yellow_since[tid] = {L: now for L, c in enumerate(state) if c in YELLOW}
        elif prev != state:
            own = (prev, state) in ix.program_transitions
            for L, (p, c) in enumerate(zip(prev, state)):
                if p != c:
                    self._check_link(now, ix, prev, state, own, L)
        self._check_green_time(now, tid, state)

    def _check_link(self, now: float, ix: Intersection, prev: str, state: str, own: bool, L: int) -> None:
        """Link ``L`` changed from ``prev[L]`` to ``state[L]``: yellow, clearance and intergreen rules."""
        tid, p, c = ix.id, prev[L], state[L]
        yellow_since = self._yellow_since[tid]
        green_end = self._green_end[tid]
        if p in GREEN and c not in GREEN:
            green_end[L] = now
            if c not in ACTIVE and L not in ix.crossing_links and not own:
                self._flag(now, tid, "green ended without yellow", f"link {L}: {prev} -> {state}")
        if c in YELLOW and p not in YELLOW:
            yellow_since[L] = now
        if p in YELLOW and c not in YELLOW:
            held = now - yellow_since.get(L, now)
            if c in GREEN and not own:
                self._flag(now, tid, "yellow back to green", f"link {L}: {prev} -> {state}")
            need = self._needed(ix.yellow_time(L, shortest=True), own)
            if c not in GREEN and held + TOLERANCE_S < need:
                self._flag(now, tid, "yellow too short", f"link {L}: {held:g}s < {need:g}s")
        if c in GREEN and p not in GREEN:
            for foe in self._conflicting[tid].get(L, ()):
                if foe not in green_end or state[foe] in ACTIVE:
                    continue  # never ended, or still active (flagged as a conflict above)
                gap = now - green_end[foe]
                need = self._needed(ix.intergreen(foe, L), own)
                if gap + TOLERANCE_S < need:
                    self._flag(now, tid, "intergreen too short",
                               f"link {L} green {gap:g}s after foe {foe} ended, needs {need:g}s")

    def _needed(self, seconds: float, own: bool) -> float:
        """A duration the states must show; in the program's own changes, as SUMO shows it.

        SUMO switches a program's steps at simulation steps and carries the
        remainder, so a 2.5 s yellow of a network's own program shows 2 s at
        1 s steps (the next step is longer). Controllers must run it in full.
        """
        if not own:
            return seconds
        return math.floor(seconds / self.step_s + 1e-9) * self.step_s

    def _check_green_time(self, now: float, tid: str, state: str) -> None:
        current = self._green_phase[tid]
        if current is not None and current[0] == state:
            since = current[1]
            if since is not None and self.max_green is not None and now - since > self.max_green + TOLERANCE_S:
                self._flag(now, tid, "max green exceeded", f"{now - since:g}s > {self.max_green:g}s")
            return
        if current is not None and current[1] is not None and self.min_green is not None:
            held = now - current[1]
            if held + TOLERANCE_S < self.min_green:
                self._flag(now, tid, "min green not held", f"{held:g}s < {self.min_green:g}s")
        # a green already on show at first sight began at an unknown time (a program's offset)
        start = now if tid in self._seen else None
        self._seen.add(tid)
        self._green_phase[tid] = (state, start) if state in self._phase_states[tid] else None
