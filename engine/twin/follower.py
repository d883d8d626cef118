"""Fixed-time plans run through the SignalController, so that a plan can change safely at any time.

SUMO switching programs mid-cycle (``setProgram``) jumps from one state to
another with no clearance. :class:`PlanFollower` instead asks the
:class:`~engine.signal_controller.SignalController` for the green the plan
schedules now; the controller shows every yellow and all-red in full and keeps
min green, so a new plan is taken over without an unsafe state. Phases keep
their cycle order: when the plan changes, the signal steps through its phases
(each at least min green) until it meets the new schedule, like the "short
way" transition of controllers (a NEMA offset-seeking transition without
skipped phases). In steady state the follower reproduces the plan's SUMO
program second by second: the green ends when the program's clearance starts,
and the controller shows the same clearance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from engine.controllers.programs import timing_steps
from engine.errors import ConfigError
from engine.plan.model import PeriodPlan, signal_phases
from engine.signals import Intersection


@dataclass(frozen=True)
class _Schedule:
    """One signal's plan: program-time boundaries and the green each window asks for."""

    offset: float
    cycle: float
    starts: np.ndarray  # s into the cycle where each window starts, shape (n,)
    target: np.ndarray  # green phase asked for in each window, shape (n,)

    def at(self, now: float) -> tuple[int, float]:
        """(the green scheduled at ``now``, the time its window ends)."""
        pos = (now - self.offset) % self.cycle
        i = int(np.searchsorted(self.starts, pos, side="right") - 1)
        end = self.starts[i + 1] if i + 1 < len(self.starts) else self.cycle
        # merge following windows asking for the same green
        j = i + 1
        while j < len(self.starts) and self.target[j] == self.target[i]:
            j += 1
            end = self.starts[j] if j < len(self.starts) else self.cycle
        return int(self.target[i]), now + (end - pos)


def schedule(ix: Intersection, greens: Sequence[float], offset: float) -> _Schedule:
    """The windows of ``ix``'s program with ``greens``: a green asks for its phase, a clearance for the next."""
    steps = timing_steps(ix, greens)
    starts, targets, t = [], [], 0.0
    for state, duration, k in steps:
        green = any(state == ph.state for ph in ix.phases)
        starts.append(t)
        targets.append(k if green else ix.next_phase(k))
        t += duration
    return _Schedule(float(offset), t, np.array(starts), np.array(targets, dtype=np.int64))


class PlanFollower:
    """Runs fixed-time plans through a SignalController; :meth:`set_plan` changes the plan.

    ``intersections``: the network's signals as the controller was built with them.
    A plan may run a signal with right-turn overlaps and the next without (time-of-day
    plans often differ so): the change of phase set is then made at the signal's next
    switch, through :meth:`SignalController.change_phases` (a derived clearance).
    """

    def __init__(self, intersections: Sequence[Intersection], plan: PeriodPlan) -> None:
        self.base = tuple(intersections)
        self.plan: PeriodPlan | None = None
        self.set_plan(plan)

    def phases(self) -> tuple[Intersection, ...]:
        """The phase set each signal runs under the current plan (build the controller with these)."""
        return self._ixs

    def set_plan(self, plan: PeriodPlan) -> None:
        """Follow ``plan`` from now on (the controller makes the transition safe)."""
        for ix in self.base:
            if ix.id not in plan.timings:
                raise ConfigError(f"plan {plan.period}/{plan.method}: no timing for signal {ix.id}")
        self._ixs = tuple(signal_phases(ix, plan.timings[ix.id]) for ix in self.base)
        self._schedules = [schedule(ix, plan.timings[ix.id].greens, plan.timings[ix.id].offset)
                           for ix in self._ixs]
        self.plan = plan

    def apply(self, now: float, controller) -> bool:
        """Ask ``controller`` for what the plan schedules now; True if a signal waits for min green.

        A signal not on its scheduled green moves to the next green in cycle order
        (phases are never skipped); one whose phase set changes moves when it may switch.
        """
        targets = np.full(len(self.base), -1, dtype=np.int64)
        waiting = False
        can = controller.can_switch(now)
        for k, (ix, sch) in enumerate(zip(self._ixs, self._schedules)):
            want, _ = sch.at(now)
            phase = int(controller.phase[k])
            if controller.intersections[k] is not ix:
                nxt = want if want == phase else ix.next_phase(phase)
                if not controller.change_phases(now, k, ix, nxt):
                    waiting = True
            elif want != phase:
                targets[k] = ix.next_phase(phase)
                waiting |= not bool(can[k])
        controller.request(now, targets)
        return waiting

    def next_change(self, now: float) -> float:
        """The next time a signal's scheduled green changes (s)."""
        return min(sch.at(now)[1] for sch in self._schedules)


def plan_background(intersections: Sequence[Intersection], plan: PeriodPlan,
                    max_phases: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A plan as the background cycle of coordinated-actuated control.

    Returns per signal (order of ``intersections``) the cycle (s), the offset (s)
    and, per green phase, where its green ends in the cycle (s; shape (n, ``max_phases``)):
    the force-offs of :meth:`engine.controllers.heuristics.Actuated.set_background`.
    Times follow the plan's SUMO program (:func:`schedule`), so the background keeps
    the plan's offsets and green wave.
    """
    cycles, offsets = np.zeros(len(intersections)), np.zeros(len(intersections))
    ends = np.zeros((len(intersections), max_phases))
    for i, ix in enumerate(intersections):
        timing = plan.timings[ix.id]
        phased = signal_phases(ix, timing)
        t = 0.0
        for state, duration, k in timing_steps(phased, timing.greens):
            t += duration
            if state == phased.phases[k].state:
                ends[i, k] = t
        cycles[i], offsets[i] = t, timing.offset
    return cycles, offsets, ends
