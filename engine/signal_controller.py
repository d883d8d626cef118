"""The only code that sets signal states, so that safety is proved once.

Controllers, learned or not, state a wish per intersection: "serve green phase
k". :class:`SignalController` grants it only when it is safe: the current green
has run its minimum; the clearance the network prescribes (yellow, then all-red)
runs in full before the new green; and a green that reaches its maximum is ended
(to the next phase of the cycle) whatever the controller wants.

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
from engine.signals import Intersection

SetState = Callable[[str, str], None]


class SignalController:
    """Applies phase wishes safely, one intersection at a time, in whole seconds."""

    def __init__(
        self,
        intersections: Sequence[Intersection],
        set_state: SetState,
        min_green: float = 10.0,
        max_green: float = 60.0,
    ) -> None:
        if min_green < 0 or max_green <= 0:
            raise ConfigError(f"min_green={min_green}, max_green={max_green}: must be >= 0 and > 0")
        if max_green < min_green:
            raise ConfigError(f"max_green={max_green} is smaller than min_green={min_green}")
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
        self._refresh_next_event()

    # -- internals -------------------------------------------------------------
    def _begin_transition(self, k: int, target: int, now: float) -> None:
        ix = self.intersections[k]
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
        self._next_event = min(due, max_out)
