"""The built-in heuristics, registered by name for ``cqsignal simulate --controller NAME``.

Adaptive ones (max_pressure, greedy, sotl, actuated) turn a
:class:`~engine.loop.TrafficState` into one target phase per signal with one
Numba kernel call; the SignalController then enforces min/max green and the
clearances. ``webster`` is fixed-time: it times the network's own phase
sequence from the scenario's demand and hands SUMO the programs.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from engine.controllers import kernels, register
from engine.controllers.demand_flows import scenario_flows
from engine.controllers.programs import timing_program, write_tls_programs
from engine.errors import ConfigError
from engine.loop import ControlLoop, LoopOptions, TrafficState
from engine.scenario import Scenario
from engine.webster import WebsterTiming, intersection_flow_ratios, lost_time, webster_timing


class MaxPressure:
    """Varaiya's max pressure, with a switching cost, a discharge rule and a starvation guard.

    Pressure of a movement: saturation flow x (vehicles on its incoming lane -
    halting vehicles on its outgoing lane). A green is held ``hold_s`` before it
    may change, and after that for as long as its lanes still discharge (at least
    ``min_moving`` moving vehicles per green lane), up to max green less one
    decision: every change spends a clearance, and cutting a discharging queue
    for a phase whose pressure has just crept past it is what made plain max
    pressure lose the full AM hour to the corridor's fixed programs (README).
    A phase with vehicles that has not been green for ``max_red_s`` goes first.
    """

    name = "max_pressure"
    adaptive = True

    def __init__(self, scenario: Scenario, hold_s: float = 15.0, max_red_s: float = 180.0,
                 min_moving: float = 2.0) -> None:
        if hold_s < 0 or max_red_s <= 0 or min_moving < 0:
            raise ConfigError(
                f"max_pressure: need hold_s >= 0, max_red_s > 0 and min_moving >= 0, "
                f"got {hold_s}, {max_red_s}, {min_moving}"
            )
        self.scenario = scenario
        self.hold_s, self.max_red_s, self.min_moving = float(hold_s), float(max_red_s), float(min_moving)
        defaults = LoopOptions()  # until setup() reads the loop's own
        self.extend_until_s = defaults.max_green - defaults.delta  # max green less one decision
        self._served = LastServed()

    def setup(self, loop: ControlLoop) -> None:
        self.extend_until_s = loop.options.max_green - loop.options.delta

    def decide(self, state: TrafficState) -> np.ndarray:
        inc = kernels.incidence(state.layout)
        waited = self._served.update(state, inc)
        return kernels.max_pressure(
            inc,
            state.lane_count,
            state.lane_halting,
            state.phase,
            state.can_switch,
            state.time_in_phase,
            waited,
            self.hold_s,
            self.max_red_s,
            state.lane_count - state.lane_halting,
            self.min_moving,
            self.extend_until_s,
        )


class LastServed:
    """When each phase of each signal was last green, from the states a controller sees.

    Max pressure's starvation guard reads it, and so does the guard around learned policies.
    """

    def __init__(self) -> None:
        self.at = np.zeros((0, 0))
        self._last_time = np.inf

    def update(self, state: TrafficState, inc: kernels.Incidence) -> np.ndarray:
        """Seconds since each phase was green (since the run began if never)."""
        shape = (inc.n_intersections, inc.mov_phases.shape[1])
        if self.at.shape != shape or state.time < self._last_time:  # new network or new run
            self.at = np.full(shape, state.time)
        self._last_time = state.time
        self.at[np.arange(shape[0]), state.phase] = state.time
        return state.time - self.at


class StarvationGuard:
    """A phase with vehicles that has been red ``max_red_s`` seconds must be served next.

    Next, not now: the current green may run on to max green, but no other phase may
    come before the starved one (worst case red: ``max_red_s`` + max green).

    The one guard around learned policies, in training (it restricts the action
    mask of :class:`engine.env_core.EnvCore`) and in deployment
    (:class:`agents.policy.PolicyController`), so a policy learns within the rule
    it runs under. Max pressure applies the same rule inside its own kernel.
    Call :meth:`update` with every state the controller sees.
    """

    def __init__(self, max_red_s: float) -> None:
        if not max_red_s > 0:
            raise ConfigError(f"max_red_s must be positive, got {max_red_s}")
        self.max_red_s = float(max_red_s)
        self._served = LastServed()

    def update(self, state: TrafficState) -> np.ndarray:
        """Per signal: the phase that must be served now, else -1; shape (signals,)."""
        inc = kernels.incidence(state.layout)
        waited = self._served.update(state, inc)
        return kernels.starved(inc, state.lane_count, np.asarray(state.phase, dtype=np.int64),
                               state.can_switch, waited, self.max_red_s)

    @staticmethod
    def restrict(masks: list[np.ndarray], due: np.ndarray, phase: np.ndarray, action_mode: str) -> list[np.ndarray]:
        """``masks`` with each signal whose phase is ``due`` left to serve it next.

        ``phase`` mode: the due phase, or holding the current green while the
        SignalController allows it (until max green), so a discharging green is not cut
        but no other phase comes first; max pressure serves a starved phase the same
        way (at its next free decision). ``switch`` mode: only "advance" (the due phase
        comes up in turn). A due phase outside a mask's allowed set (a clearance is
        running) leaves that mask as it is.
        """
        out = []
        for k, m in enumerate(masks):
            p = int(due[k])
            if p < 0:
                out.append(m)
                continue
            action = p if action_mode == "phase" else (1 if p != int(phase[k]) else 0)
            if action >= len(m) or not m[action]:
                out.append(m)
                continue
            only = np.zeros_like(m)
            only[action] = True
            cur = int(phase[k])
            if action_mode == "phase" and cur < len(m) and m[cur]:
                only[cur] = True
            out.append(only)
        return out

    @staticmethod
    def overrule(targets: np.ndarray, due: np.ndarray, phase: np.ndarray, action_mode: str) -> np.ndarray:
        """A controller's targets (-1: keep) with the due phases put in, as :meth:`restrict` allows:
        in ``phase`` mode holding the current green stands, any other choice becomes the due
        phase; in ``switch`` mode the due phase goes now. Shape (signals,)."""
        targets = np.asarray(targets, dtype=np.int64)
        phase = np.asarray(phase, dtype=np.int64)
        keep = (targets < 0) | (targets == phase)
        if action_mode == "phase":
            return np.where((due >= 0) & ~keep, due, targets)
        return np.where(due >= 0, due, targets)


class Greedy:
    """Longest queue first: the phase whose lanes hold the most halting vehicles."""

    name = "greedy"
    adaptive = True

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario

    def decide(self, state: TrafficState) -> np.ndarray:
        return kernels.greedy(
            kernels.incidence(state.layout), state.lane_halting, state.phase, state.can_switch
        )


class Actuated:
    """Gap-out / max-out actuation with stop-line detection zones.

    Each approach lane's zone is the lane before the stop line, extended upstream
    to at least ``STOPLINE_ZONE_M`` (30 m) where that lane is shorter: a
    presence detector near the stop line, not the whole observation area (a
    detector far upstream would extend greens for vehicles still a long way off).

    ``coordinated`` (the default, where every signal's own program runs one
    common cycle): the programs are the background cycle; the first green phase
    (the arterial's, on the corridor) keeps its place in the cycle, so the
    network's offsets still make a green wave, while the other phases gap out
    and give the time they do not need back to it. Otherwise each signal runs
    free.
    """

    name = "actuated"
    adaptive = True

    def __init__(
        self, scenario: Scenario, passage_s: float = 5.0, coordinated: bool = True
    ) -> None:
        if passage_s <= 0:
            raise ConfigError(f"actuated: passage time must be positive, got {passage_s}")
        self.scenario = scenario
        self.passage_s = float(passage_s)
        self.coordinated = bool(coordinated)
        self.decision_s = 5.0  # the loop's decision interval, for force-offs (setup() reads it)
        self._background_layout: object = None
        self._background: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._given: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def setup(self, loop: ControlLoop) -> None:
        self.decision_s = float(loop.options.delta)

    def set_background(self, cycle: np.ndarray, offset: np.ndarray, green_end: np.ndarray) -> None:
        """Run coordinated on this background instead of the network's programs (e.g. a plan a
        predictive twin chose). Per signal: ``cycle`` and ``offset`` (s), shape (n,); ``green_end``
        (s into the cycle where each green phase's green ends), shape (n, max phases)."""
        self.coordinated = True
        self._given = (np.asarray(cycle, float), np.asarray(offset, float),
                       np.asarray(green_end, float) - self.decision_s / 2)  # force off at the nearest decision

    def decide(self, state: TrafficState) -> np.ndarray:
        inc = kernels.incidence(state.layout)
        pos, ends = None, None
        if self.coordinated:
            background = self._given or self._background_of(state.layout)
            if background is not None:
                cycle, offset, ends = background
                pos = np.mod(state.time - offset, cycle)
        return kernels.actuated(
            inc,
            state.zone_count,
            state.zone_speed,
            state.zone_length,
            state.phase,
            state.can_switch,
            self.passage_s,
            pos,
            ends,
        )

    def _background_of(self, layout) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """(cycle, offset, force-off per green) from the network's programs; None: cycles differ."""
        if self._background_layout is layout:
            return self._background
        ixs = layout.intersections
        cycles = np.array([sum(d for _, d in ix.program) for ix in ixs])
        self._background_layout, self._background = layout, None
        if np.allclose(cycles, cycles[0]) and cycles[0] > 0:
            ends = np.zeros((len(ixs), layout.max_phases))
            for k, ix in enumerate(ixs):
                starts = np.concatenate([[0.0], np.cumsum([d for _, d in ix.program])])
                for p, ph in enumerate(ix.phases):
                    # force off at the decision nearest the green's end in the program
                    ends[k, p] = starts[ph.program_index] + ph.duration - self.decision_s / 2
            self._background = (cycles, np.array([ix.offset for ix in ixs]), ends)
        return self._background


class Sotl:
    """Self-organising lights: switch when red lanes have waited ``theta`` vehicle-seconds.

    Like actuation it counts on stop-line detection zones (Gershenson's rule
    counts vehicles approaching the stop line; ``theta`` and ``mu`` are set for
    that): over the 150 m observation area it switched so often that it doubled
    its delay on the corridor (AM, seeds 1-5: 200 -> 407 s/veh).
    """

    name = "sotl"
    adaptive = True

    def __init__(self, scenario: Scenario, theta: float = 800.0, mu: float = 3.0) -> None:
        if theta <= 0 or mu < 0:
            raise ConfigError(f"sotl: need theta > 0 and mu >= 0, got {theta}, {mu}")
        self.scenario = scenario
        self.theta, self.mu = float(theta), float(mu)
        self._kappa = np.zeros((0, 0))
        self._last_time = -np.inf

    def decide(self, state: TrafficState) -> np.ndarray:
        inc = kernels.incidence(state.layout)
        shape = (inc.n_intersections, inc.mov_phases.shape[1])
        if self._kappa.shape != shape or state.time < self._last_time:  # new network or new run
            self._kappa = np.zeros(shape)
            self._last_time = state.time
        dt = state.time - self._last_time
        self._last_time = state.time
        return kernels.sotl(
            inc,
            state.zone_count,
            state.zone_halting,
            state.phase,
            state.can_switch,
            self._kappa,
            dt,
            self.theta,
            self.mu,
        )


class Webster:
    """Fixed-time programs timed by Webster's method from the scenario's demand.

    The network's phase sequence, clearances and offsets are kept; greens come
    from :func:`engine.webster.webster_timing` within the loop's min and max
    green. With ``common_cycle`` (the default) every signal runs the longest of
    their Webster cycles, as the critical intersection of a coordinated
    arterial dictates; otherwise each runs its own. SUMO runs the programs from
    an additional ``tlLogic`` file.
    """

    name = "webster"
    adaptive = False
    program_id = "webster"

    def __init__(
        self,
        scenario: Scenario,
        min_cycle: float = 60.0,
        max_cycle: float = 180.0,
        common_cycle: bool = True,
    ) -> None:
        self.scenario = scenario
        self.min_cycle, self.max_cycle = min_cycle, max_cycle
        self.common_cycle = common_cycle
        self.timings: dict[str, WebsterTiming] = {}

    def plan(
        self, intersections, min_green: float, max_green: float | None
    ) -> dict[str, WebsterTiming]:
        """Webster timing of every signal for this controller's scenario."""
        flows = scenario_flows(self.scenario)
        ratios = {ix.id: intersection_flow_ratios(ix, flows) for ix in intersections}
        lost = {ix.id: lost_time(ix) for ix in intersections}

        def timing(sid: str, lo: float, hi: float) -> WebsterTiming:
            return webster_timing(ratios[sid], lost[sid], lo, hi, min_green, max_green)

        own = {sid: timing(sid, self.min_cycle, self.max_cycle) for sid in ratios}
        if not self.common_cycle:
            return own
        cycle = max(t.cycle for t in own.values())
        return {sid: timing(sid, cycle, cycle) for sid in ratios}

    def setup(self, loop: ControlLoop) -> None:
        """Write the programs into the loop's folder and add them to its scenario."""
        ixs = loop.layout.intersections
        if not ixs:  # nothing to time: every signal keeps its own program
            return
        self.timings = self.plan(ixs, loop.options.min_green, loop.options.max_green)
        programs = {ix.id: timing_program(ix, self.timings[ix.id].greens) for ix in ixs}
        offsets = {ix.id: ix.offset for ix in ixs}
        path = write_tls_programs(
            loop.workdir / "webster.tll.xml", programs, self.program_id, offsets
        )
        scenario = loop.scenario
        if path not in scenario.additional_files:
            loop.scenario = dataclasses.replace(
                scenario, additional_files=scenario.additional_files + (path,)
            )

    def decide(self, state: TrafficState) -> np.ndarray:
        return np.full(len(state.phase), -1, dtype=np.int64)


register("max_pressure", MaxPressure)
register("greedy", Greedy)
register("actuated", Actuated)
register("sotl", Sotl)
register("webster", Webster)
