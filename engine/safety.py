"""An independent check of the signal states SUMO actually shows, second by second.

It knows nothing of how the states were produced, so it checks any controller:
no two conflicting links green (or one green while its foe is still yellow),
no green ending without the network's yellow, no green starting before a
conflicting link has had the network's all-red, and every green phase held for
at least min green and at most max green.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from engine.signals import GREEN, YELLOW, Intersection

ACTIVE = GREEN + YELLOW


@dataclass
class Violation:
    time: float
    intersection: str
    rule: str
    detail: str

    def __str__(self) -> str:
        return f"t={self.time:g}s {self.intersection}: {self.rule} ({self.detail})"


class SafetyMonitor:
    """Feed it every second's states with :meth:`observe`; read :attr:`violations`."""

    def __init__(
        self,
        intersections: Sequence[Intersection],
        min_green: float | None = None,
        max_green: float | None = None,
    ) -> None:
        self.intersections = {ix.id: ix for ix in intersections}
        self.min_green = min_green
        self.max_green = max_green
        self.violations: list[Violation] = []
        self._prev: dict[str, str] = {}
        self._yellow_since: dict[str, dict[int, float]] = {i: {} for i in self.intersections}
        self._cleared_at: dict[str, dict[int, float]] = {i: {} for i in self.intersections}
        self._green_phase: dict[str, tuple[str, float] | None] = {i: None for i in self.intersections}
        self._phase_states = {i: {p.state for p in ix.phases} for i, ix in self.intersections.items()}

    def observe(self, now: float, states: dict[str, str]) -> None:
        for tid, state in states.items():
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
        else:
            yellow_since = self._yellow_since[tid]
            cleared = self._cleared_at[tid]
            for L, (p, c) in enumerate(zip(prev, state)):
                if p in GREEN and c not in ACTIVE:
                    self._flag(now, tid, "green ended without yellow", f"link {L}: {prev} -> {state}")
                if c in YELLOW and p not in YELLOW:
                    yellow_since[L] = now
                if p in YELLOW and c not in YELLOW:
                    held = now - yellow_since.get(L, now)
                    if c in GREEN:
                        self._flag(now, tid, "yellow back to green", f"link {L}")
                    elif held + 1e-9 < ix.min_yellow:
                        self._flag(now, tid, "yellow too short", f"link {L}: {held:g}s < {ix.min_yellow:g}s")
                    cleared[L] = now
                if c in GREEN and p not in GREEN:
                    for a, b in ix.conflicts:
                        foe = b if a == L else a if b == L else None
                        if foe is None or foe not in cleared:
                            continue
                        red = now - cleared[foe]
                        if red + 1e-9 < ix.min_all_red:
                            self._flag(now, tid, "all-red too short",
                                       f"link {L} green {red:g}s after foe {foe} cleared")
        self._check_green_time(now, tid, state)

    def _check_green_time(self, now: float, tid: str, state: str) -> None:
        current = self._green_phase[tid]
        if current is not None and current[0] == state:
            if self.max_green is not None and now - current[1] > self.max_green + 1e-9:
                self._flag(now, tid, "max green exceeded", f"{now - current[1]:g}s > {self.max_green:g}s")
            return
        if current is not None and self.min_green is not None:
            held = now - current[1]
            if held + 1e-9 < self.min_green:
                self._flag(now, tid, "min green not held", f"{held:g}s < {self.min_green:g}s")
        self._green_phase[tid] = (state, now) if state in self._phase_states[tid] else None
