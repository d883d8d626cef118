"""Distilling an adaptive policy (learned or heuristic) into fixed time-of-day plans.

The policy runs through the engine's loop as usual; a recorder wraps the
:class:`~engine.signal_controller.SignalController`'s output and logs every
state it sets. From that log, per signal: the time each green phase was shown
and how often it was served. The distilled plan uses the policy's mean cycle
(common to the corridor, within the cycle bounds) and its green shares (never
below a phase's minimum); offsets are the green wave's for those splits. The
policy and its plan then run on the same seeds and the gap is reported.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from engine.controllers import Controller
from engine.errors import ConfigError
from engine.loop import LoopOptions, TrafficState
from engine.metrics import KPIs
from engine.plan.config import Constraints
from engine.plan.corridor import Corridor
from engine.plan.green_wave import green_wave_offsets
from engine.webster import lost_time
from engine.plan.model import PeriodPlan, SignalTiming, phase_minimums, shares_to_greens
from engine.runner import run_controller
from engine.scenario import Scenario
from engine.signals import Intersection


class RecordingController:
    """Passes decisions through unchanged and logs every signal state the SignalController sets."""

    def __init__(self, inner: Controller) -> None:
        self.inner = inner
        self.name = inner.name
        self.adaptive = inner.adaptive
        self.log: dict[str, list[tuple[float, str]]] = {}
        self.end = 0.0

    def setup(self, loop) -> None:
        inner_setup = getattr(self.inner, "setup", None)
        if inner_setup is not None:
            inner_setup(loop)
        signals, sim = loop.signals, loop.sim
        original = signals.set_state
        self.log = {}

        def recording(tls: str, state: str) -> None:
            self.log.setdefault(tls, []).append((sim.time, state))
            original(tls, state)

        signals.set_state = recording

    def decide(self, state: TrafficState) -> np.ndarray:
        self.end = state.time
        return self.inner.decide(state)


@dataclass(frozen=True)
class Usage:
    """How a policy used one signal: seconds of green per phase and times each phase was served."""

    green_s: tuple[float, ...]
    served: tuple[int, ...]
    span_s: float

    @property
    def cycle(self) -> float:
        """Mean cycle: the run's length over the count of the most-served phase."""
        n = max(self.served) if self.served else 0
        return self.span_s / n if n else float("inf")

    @property
    def shares(self) -> tuple[float, ...]:
        total = sum(self.green_s)
        return tuple(g / total if total else 1.0 / len(self.green_s) for g in self.green_s)


def usage_from_log(ix: Intersection, log: list[tuple[float, str]], end: float) -> Usage:
    """Green time and service count per phase from a state log (times when states were set)."""
    green = [0.0] * ix.n_phases
    served = [0] * ix.n_phases
    index = {ph.state: k for k, ph in enumerate(ix.phases)}
    prev_k = None
    for (t, state), nxt in zip(log, log[1:] + [(end, "")]):
        k = index.get(state)
        if k is None:
            prev_k = None
            continue
        green[k] += max(nxt[0] - t, 0.0)
        if k != prev_k:
            served[k] += 1
        prev_k = k
    span = (end - log[0][0]) if log else 0.0
    return Usage(tuple(green), tuple(served), span)


def record_usage(controller: Controller, scenarios: list[Scenario], intersections: Mapping[str, Intersection],
                 options: LoopOptions) -> tuple[dict[str, Usage], list[KPIs]]:
    """Run ``controller`` on every scenario (seeds); pooled usage per signal and the runs' KPIs."""
    if not controller.adaptive:
        raise ConfigError(f"controller {controller.name!r} is not adaptive: it already runs fixed programs, "
                          "there is nothing to distil")
    green: dict[str, np.ndarray] = {}
    served: dict[str, np.ndarray] = {}
    span: dict[str, float] = {}
    kpis = []
    for sc in scenarios:
        rec = RecordingController(controller)
        kpis.append(run_controller(sc, rec, options))
        for sid, ix in intersections.items():
            u = usage_from_log(ix, rec.log.get(sid, []), sc.end)
            green[sid] = green.get(sid, np.zeros(ix.n_phases)) + np.array(u.green_s)
            served[sid] = served.get(sid, np.zeros(ix.n_phases, dtype=int)) + np.array(u.served)
            span[sid] = span.get(sid, 0.0) + u.span_s
    usage = {sid: Usage(tuple(green[sid]), tuple(int(x) for x in served[sid]), span[sid]) for sid in intersections}
    return usage, kpis


def distilled_period_plan(period: str, usage: Mapping[str, Usage], intersections: Mapping[str, Intersection],
                          limits: Constraints, corridor: Corridor | None, seed: int = 0,
                          weights: tuple[float, float] = (1.0, 1.0)) -> PeriodPlan:
    """A fixed plan with the policy's mean cycle (common, within bounds) and its green shares."""
    cycles = [u.cycle for u in usage.values() if np.isfinite(u.cycle)]
    if not cycles:
        raise ConfigError(f"{period}: the policy never switched a signal; no cycle to distil")
    lo, step = limits.cycle_min_s, limits.cycle_step_s
    need = max(lost_time(ix) + sum(phase_minimums(ix, limits)) for ix in intersections.values())
    cycle = max(statistics.median(cycles), need, lo)
    cycle = min(lo + round((cycle - lo) / step) * step, limits.cycle_max_s)
    cycle = float(max(cycle, need))
    greens = {sid: shares_to_greens(usage[sid].shares, cycle - lost_time(ix), phase_minimums(ix, limits))
              for sid, ix in intersections.items()}
    offsets: dict[str, float] = {}
    notes: dict = {"policy_cycles": {s: round(u.cycle, 1) for s, u in usage.items()},
                   "policy_shares": {s: [round(x, 3) for x in u.shares] for s, u in usage.items()}}
    if corridor is not None:
        offsets, bands = green_wave_offsets(corridor, {s: intersections[s] for s in corridor.signals},
                                            greens, cycle, weights, seed)
        notes.update(band_forward_s=round(bands.forward, 1), band_backward_s=round(bands.backward, 1))
    timings = {sid: SignalTiming(sid, float(offsets.get(sid, 0.0)), greens[sid]) for sid in intersections}
    return PeriodPlan(period=period, method="distilled", cycle=cycle, timings=timings, notes=notes)
