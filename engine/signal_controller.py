"""The only code that sets signal states, so that safety is proved once.

Controllers, learned or not, state a wish per intersection: "serve green phase
k". :class:`SignalController` grants it only when it is safe: the current green
has run its minimum; the clearance the network prescribes (yellow, then all-red)
runs in full before the new green; and a green that reaches its maximum is ended
(to the next phase of the cycle) whatever the controller wants.

Pedestrians are recalled: a crossing that has not had green for
``max_ped_wait`` seconds gets the next phase that serves it as soon as the
current green has run its minimum, whatever the controller wants (a
controller that reads only vehicles would otherwise never serve an exclusive
pedestrian phase; ITE *Traffic Signal Timing Manual*, 2nd ed., on pedestrian
recall).

Each clearance step runs for its full duration from the moment SUMO shows it
(fractional durations end at the first simulation step after they are over,
never before), and a new green is shown for at least one simulation step
before another change may begin, so no link ever goes from yellow straight
back to green, even with ``min_green = 0``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence

import numpy as np

from engine.errors import ConfigError
from engine.signals import Intersection, derive_clearance

SetState = Callable[[str, str], None]


def check_green_bounds(min_green: float, max_green: float) -> None:
    """ConfigError unless 0 <= min_green <= max_green, max_green > 0, both finite."""
    import math

    for name, value in (("min_green", min_green), ("max_green", max_green)):
        if not isinstance(value, (int, float, np.integer, np.floating)) or not math.isfinite(value):
            raise ConfigError(f"{name} must be a finite number of seconds, got {value!r}")
    if min_green < 0 or max_green <= 0:
        raise ConfigError(f"min_green={min_green:g}, max_green={max_green:g}: must be >= 0 and > 0")
    if max_green < min_green:
        raise ConfigError(f"max_green={max_green:g} is smaller than min_green={min_green:g}")


class SignalController:
    """Applies phase wishes safely, one intersection at a time, in whole seconds."""

    def __init__(
        self,
        intersections: Sequence[Intersection],
        set_state: SetState,
        min_green: float = 10.0,
        max_green: float = 60.0,
        max_ped_wait: float = 120.0,
    ) -> None:
        if not max_ped_wait > 0:
            raise ConfigError(f"max_ped_wait={max_ped_wait}: must be > 0 s")
        check_green_bounds(min_green, max_green)
        self.intersections = tuple(intersections)
        self.set_state = set_state
        self.min_green = float(min_green)
        self.max_green = float(max_green)
        n = len(self.intersections)
        self.n_phases = np.array([ix.n_phases for ix in self.intersections], dtype=np.int64)
        self.phase = np.zeros(n, dtype=np.int64)  # current green, or the one being cleared to
        self.green_start = np.zeros(n)  # when the current green was shown (inf while clearing)
        self._pending: list[deque[tuple[str, float]]] = [deque() for _ in range(n)]  # steps still to show
        self._step_end = np.full(n, np.inf)  # when the clearance step on show ends
        self._next_event = np.inf
        self.max_ped_wait = float(max_ped_wait)
        # per signal: crossing links some green phase serves, and the phases serving each
        self._crossings = [sorted({L for ph in ix.phases for L in ph.green_links if L in ix.crossing_links})
                           for ix in self.intersections]
        self._ped_served = [np.zeros(len(c)) for c in self._crossings]  # last time each had green

    # -- queries ---------------------------------------------------------------
    @property
    def next_event(self) -> float:
        """When :meth:`tick` next has something to do (a clearance step, a green, a max-green end)."""
        return self._next_event

    def clearing(self, now: float) -> np.ndarray:
        """True where an intersection is in yellow or all-red."""
        return self.green_start > now

    def time_in_phase(self, now: float) -> np.ndarray:
        """Seconds since the current green was shown (0 while clearing)."""
        return np.maximum(now - self.green_start, 0.0)

    def can_switch(self, now: float) -> np.ndarray:
        """True where the current green is on show, has run its minimum and at least one step."""
        held = now - self.green_start
        return (held >= self.min_green) & (held > 0)

    def phase_mask(self, now: float) -> np.ndarray:
        """Allowed green phases per intersection, shape (n, max_phases); pads False."""
        m = int(self.n_phases.max())
        mask = np.arange(m)[None, :] < self.n_phases[:, None]
        held = ~self.can_switch(now)
        mask[held] = False
        mask[held, self.phase[held]] = True
        return mask

    # -- actions ---------------------------------------------------------------
    def reset(self, now: float, phases: Sequence[int] | None = None) -> None:
        """Start every intersection in a green phase (the first unless given)."""
        for k, ix in enumerate(self.intersections):
            p = int(phases[k]) if phases is not None else 0
            self.phase[k] = p
            self.green_start[k] = now
            self._pending[k].clear()
            self._step_end[k] = np.inf
            self._ped_served[k][:] = now
            self.set_state(ix.id, ix.phases[p].state)
        self._refresh_next_event()

    def request(self, now: float, targets: Sequence[int] | np.ndarray) -> None:
        """Wish for green ``targets[k]`` at each intersection (-1: no wish)."""
        free = self.can_switch(now)
        for k, target in enumerate(targets):
            target = int(target)
            if target < 0 or target == self.phase[k] or not free[k]:
                continue
            if target >= self.n_phases[k]:
                raise ConfigError(
                    f"action {target} for {self.intersections[k].id}: it has {self.n_phases[k]} phases"
                )
            self._begin_transition(k, target, now)
        self._refresh_next_event()

    def change_phases(self, now: float, k: int, intersection: Intersection, target: int) -> bool:
        """Give signal ``k`` another set of green phases (the same network, e.g. with right-turn
        overlaps) and move to its green ``target``; False (nothing done) before min green.

        The change is a clearance like any other: from the green on show to the new
        green, derived link by link (:func:`engine.signals.derive_clearance`: every
        ending link shows its yellow, every intergreen to a starting foe is kept).
        """
        if not self.can_switch(now)[k]:
            return False
        old = self.intersections[k]
        if intersection.id != old.id or len(intersection.phases[0].state) != len(old.phases[0].state):
            raise ConfigError(f"change_phases: {intersection.id} is not signal {old.id}")
        state = old.phases[int(self.phase[k])].state
        ixs = list(self.intersections)
        ixs[k] = intersection
        self.intersections = tuple(ixs)
        self.n_phases[k] = intersection.n_phases
        self._crossings[k] = sorted({L for ph in intersection.phases for L in ph.green_links
                                     if L in intersection.crossing_links})
        self._ped_served[k] = np.full(len(self._crossings[k]), now)
        self._begin_transition(k, target, now, derive_clearance(intersection, state,
                                                                intersection.phases[target].state))
        self._refresh_next_event()
        return True

    def advance(self, now: float, switch: Sequence[int] | np.ndarray) -> None:
        """Switch-mode wish: 1 moves to the next phase of the cycle, 0 stays."""
        targets = np.where(np.asarray(switch) > 0, (self.phase + 1) % self.n_phases, -1)
        self.request(now, targets)

    def tick(self, now: float) -> None:
        """Apply what is due at ``now``: clearance steps, new greens, max-green ends."""
        if now < self._next_event:
            return
        for k, ix in enumerate(self.intersections):
            queue = self._pending[k]
            while queue and self._step_end[k] <= now + 1e-9:
                state, duration = queue.popleft()
                self.set_state(ix.id, state)
                if queue:
                    self._step_end[k] = now + duration
                else:  # the new green is on show from now
                    self._step_end[k] = np.inf
                    self.green_start[k] = now
            if not queue and now - self.green_start[k] >= self.max_green:
                nxt = ix.next_phase(int(self.phase[k]))
                if nxt != self.phase[k]:
                    self._begin_transition(k, nxt, now)
                else:  # a single-phase signal has nothing to switch to
                    self.green_start[k] = now
            elif self._crossings[k] and not queue and self._ped_due(k) <= now + 1e-9:
                self._begin_transition(k, self._ped_phase(k), now)
        self._refresh_next_event()

    # -- internals -------------------------------------------------------------
    def _ped_waiting(self, k: int) -> np.ndarray:
        """True for each crossing of signal ``k`` that the green on show does not serve."""
        state = self.intersections[k].phases[int(self.phase[k])].state
        return np.array([state[c] not in "Gg" for c in self._crossings[k]], dtype=bool)

    def _ped_due(self, k: int) -> float:
        """When signal ``k`` must recall its pedestrians (inf: none waiting), never before min green."""
        waiting = self._ped_waiting(k)
        if not waiting.any():
            return np.inf
        due = float(self._ped_served[k][waiting].min()) + self.max_ped_wait
        return max(due, self.green_start[k] + max(self.min_green, 1.0))

    def _ped_phase(self, k: int) -> int:
        """The next phase in cycle order that serves the longest-waiting crossing of signal ``k``."""
        ix = self.intersections[k]
        waiting = self._ped_waiting(k)
        served = np.where(waiting, self._ped_served[k], np.inf)
        link = self._crossings[k][int(np.argmin(served))]
        for step in range(1, ix.n_phases + 1):
            p = (int(self.phase[k]) + step) % ix.n_phases
            if ix.phases[p].state[link] in "Gg":
                return p
        return int(self.phase[k])

    def _begin_transition(self, k: int, target: int, now: float,
                          steps: tuple[tuple[str, float], ...] | None = None) -> None:
        ix = self.intersections[k]
        if self._crossings[k]:  # the crossings of the green that ends were served until now
            state = ix.phases[int(self.phase[k])].state
            for i, c in enumerate(self._crossings[k]):
                if state[c] in "Gg" and self.green_start[k] <= now:
                    self._ped_served[k][i] = now
        if steps is None:
            steps = ix.clearance(int(self.phase[k]), target)
        self.phase[k] = target
        if not steps:
            self.set_state(ix.id, ix.phases[target].state)
            self.green_start[k] = now
            return
        first, duration = steps[0]
        self.set_state(ix.id, first)
        queue = self._pending[k]
        queue.clear()
        queue.extend(steps[1:])
        queue.append((ix.phases[target].state, 0.0))
        self._step_end[k] = now + duration
        self.green_start[k] = np.inf

    def _refresh_next_event(self) -> None:
        due = float(np.min(self._step_end)) if len(self._step_end) else np.inf
        shown = self.green_start[np.isfinite(self.green_start)]
        max_out = float(np.min(shown)) + self.max_green if len(shown) else np.inf
        recall = min((self._ped_due(k) for k in range(len(self.intersections))
                      if self._crossings[k] and not self._pending[k]), default=np.inf)
        self._next_event = min(due, max_out, recall)
