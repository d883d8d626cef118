"""The one core behind both environment faces (Gymnasium and PettingZoo).

It turns per-intersection actions into SignalController wishes, steps the
ControlLoop by the decision interval, and returns per-intersection observation
rows and rewards. Everything safety-related stays in the SignalController.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from gymnasium import error as gym_error

from engine.controllers.heuristics import StarvationGuard
from engine.errors import ConfigError, NetworkError, SimulationError
from engine.loop import ControlLoop, LoopOptions
from engine.network import DEFAULT_DETECTOR_RANGE_M, load_network
from engine.observations import DEFAULT_OBSERVATION, Observer, check_features
from engine.rewards import Reward, UnwatchedTraffic
from engine.scenario import ENV_MAX_DEPART_DELAY_S, Scenario, finite
from engine.signal_controller import check_green_bounds


class ResetNeeded(ConfigError, gym_error.ResetNeeded):
    """step() before reset() or after the episode ended."""


class EnvClosed(ConfigError, gym_error.ClosedEnvironmentError):
    """step(), reset() or masks on an environment that was closed."""


class ActionError(ConfigError, ValueError):
    """An action that is not a whole number inside the action space (or a missing agent)."""


ACTION_MODES = ("phase", "switch")
DEFAULT_MAX_RED_S = 180.0  # the starvation guard of max pressure and of deployed policies
ERROR_MODES = ("raise", "end_episode")


@dataclass(frozen=True)
class EnvOptions:
    """Every option of the environments, with the defaults an RL user expects."""

    network: str = "chongqing"
    period: str | tuple[str, ...] | None = "am_peak"  # several: one sampled per episode
    routes: tuple[str, ...] = ()
    scale: float = 1.0
    duration: float | None = None  # None: the scenario's (a .sumocfg's end, network.yaml; else 3600 s)
    begin: float | None = None  # None: the scenario's (a .sumocfg's or network.yaml's begin; else 0)
    action_mode: str = "phase"  # phase: pick the next green; switch: stay (0) or advance (1)
    delta: int = 5  # seconds between decisions
    min_green: float = 10.0
    max_green: float = 60.0
    observation: tuple[str, ...] = DEFAULT_OBSERVATION
    reward: str | Mapping[str, float] = "delay"  # a term or {term: weight} (engine/rewards.py)
    reward_share: float = 0.0  # each signal's reward: (1 - w) x its own + w x the network's mean
    on_sumo_error: str = "raise"  # or end_episode: truncate, and the next reset starts cleanly
    signals: tuple[str, ...] | None = None  # control a subset; None: every signal
    # A vehicle that cannot enter within this many seconds is dropped (and charged that wait
    # in the KPIs): an explicit bound, unlike SUMO's default (never), so that a bad policy
    # cannot grow an unbounded entry backlog that slows training. None: never drop.
    # Reset infos and the KPIs state it (max_depart_delay_s).
    max_depart_delay: float | None = ENV_MAX_DEPART_DELAY_S
    time_to_teleport: float | None = None  # None: the scenario's (SUMO's 300 s); <= 0: never
    gui: bool = False
    measure_co2: bool = False  # SUMO's emission device for the CO2 KPI (a CO2 reward turns it on)
    detector_range_m: float = DEFAULT_DETECTOR_RANGE_M  # how far upstream each approach is seen (m)
    # Starvation guard, as deployed (agents.policy): a phase with vehicles that has been red this
    # many seconds is the only allowed action until served. None: no guard.
    max_red_s: float | None = DEFAULT_MAX_RED_S
    extra: dict = field(default_factory=dict, compare=False)

    def periods(self) -> tuple[str | None, ...]:
        if self.period is None or isinstance(self.period, str):
            return (self.period,)
        if not self.period:
            raise ConfigError("period: give at least one period")
        return tuple(self.period)

    def validate(self) -> None:
        if self.action_mode not in ACTION_MODES:
            raise ConfigError(f"action_mode '{self.action_mode}': choose from {', '.join(ACTION_MODES)}")
        if self.on_sumo_error not in ERROR_MODES:
            raise ConfigError(f"on_sumo_error '{self.on_sumo_error}': choose from {', '.join(ERROR_MODES)}")
        for name in ("scale", "duration", "begin", "max_depart_delay", "time_to_teleport", "min_green",
                     "max_green", "detector_range_m", "max_red_s"):
            if getattr(self, name) is not None:
                finite(getattr(self, name), name)
        if (isinstance(self.delta, bool) or not isinstance(self.delta, (int, float, np.integer, np.floating))
                or not float(self.delta).is_integer() or self.delta < 1):
            raise ConfigError(f"delta must be a whole number of seconds >= 1, got {self.delta!r}")
        if self.max_red_s is not None and self.max_red_s <= 0:
            raise ConfigError(f"max_red_s must be positive (or None: no starvation guard), got {self.max_red_s:g}")
        if self.detector_range_m < 0:
            raise ConfigError(f"detector_range_m must be >= 0, got {self.detector_range_m:g}")
        check_green_bounds(self.min_green, self.max_green)
        Reward(self.reward, self.reward_share)  # unknown names, NaN or infinite weights, a bad share
        check_features(self.observation)
        if self.max_depart_delay is not None and self.max_depart_delay <= 0:
            raise ConfigError(f"max_depart_delay must be positive (or None: never), "
                              f"got {self.max_depart_delay:g}")
        if self.extra:
            raise ConfigError(f"unknown environment option '{next(iter(self.extra))}'")


def env_options(**kwargs) -> EnvOptions:
    """EnvOptions from keyword arguments, naming any unknown one in the error."""
    known = EnvOptions.__dataclass_fields__
    extra = {k: v for k, v in kwargs.items() if k not in known}
    kwargs = {k: v for k, v in kwargs.items() if k in known}
    for key in ("observation", "routes", "signals"):
        if isinstance(kwargs.get(key), list):
            kwargs[key] = tuple(kwargs[key])
    if isinstance(kwargs.get("period"), list):
        kwargs["period"] = tuple(kwargs["period"])
    options = EnvOptions(**kwargs, extra=extra)
    options.validate()
    return options


class EnvCore:
    """Per-intersection observations, actions, rewards and masks over a ControlLoop."""

    def __init__(self, options: EnvOptions) -> None:
        options.validate()
        self.options = options
        self.periods = options.periods()
        self.reward = Reward(options.reward, options.reward_share)
        self.base = Scenario.load(options.network, period=self.periods[0], routes=options.routes,
                                  scale=options.scale, duration=options.duration, begin=options.begin,
                                  max_depart_delay=-1.0 if options.max_depart_delay is None
                                  else options.max_depart_delay,
                                  time_to_teleport=options.time_to_teleport)
        self.base = self.base.with_options(emissions=options.measure_co2 or self.reward.needs_co2)
        for p in self.periods[1:]:
            Scenario.load(options.network, period=p, routes=options.routes)  # validates the name
        loop_options = LoopOptions(adaptive=True, delta=options.delta, min_green=options.min_green,
                                   max_green=options.max_green, gui=options.gui,
                                   watch_co2=self.reward.needs_co2, detector_range_m=options.detector_range_m)
        self.loop = ControlLoop(self.base, loop_options, signals=options.signals)
        self.layout = self.loop.layout
        if not self.layout.intersections:
            self.loop.close()
            reasons = "; ".join(load_network(self.base.net_file, self.base.additional_files).uncontrolled.values())
            raise NetworkError(f"{self.base.net_file}: no traffic lights an agent can control"
                               + (f" ({reasons})" if reasons else ""))
        self.observer = Observer(options.observation, self.layout, options.max_green,
                                 options.max_red_s or DEFAULT_MAX_RED_S)
        self.n_phases = self.layout.n_phases.copy()
        self.n_actions = self.n_phases if options.action_mode == "phase" else np.full(len(self.n_phases), 2)
        self.unwatched = (UnwatchedTraffic(None, self.layout, self.base.net_file)
                          if self.reward.needs_unwatched else None)
        self.guard = StarvationGuard(options.max_red_s) if options.max_red_s is not None else None
        self._due = np.full(len(self.n_phases), -1, dtype=np.int64)  # phases the guard says must go next
        self._phase = np.zeros(len(self.n_phases), dtype=np.int64)
        self._needs_fresh_start = False
        self._episode_over = True
        self._closed = False

    @property
    def ids(self) -> tuple[str, ...]:
        return self.layout.ids

    def reset(self, seed: int, period: str | None) -> np.ndarray:
        """Start an episode with the demand of ``seed`` and ``period``; observation rows."""
        self._check_open("reset()")
        if self._needs_fresh_start:
            self.loop.sim.close()
            self._needs_fresh_start = False
        scenario = self.base.with_options(seed=int(seed), period=period)
        self.loop.reset(scenario)
        self._episode_over = False
        state = self.loop.state()
        self.reward.reset(state)
        if self.unwatched is not None:
            self.unwatched.reset(self.loop.sim.api)
        self._watch(state)
        return self.observer(state)

    def _watch(self, state) -> None:
        """What the starvation guard makes of a new state (the masks read it)."""
        self._phase = np.asarray(state.phase, dtype=np.int64).copy()
        if self.guard is not None:
            self._due = self.guard.update(state)

    def step(self, actions: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray, bool, dict]:
        """Apply one action per intersection; (observation rows, rewards, episode over, info)."""
        self._check_open("step()")
        if self._episode_over:
            raise ResetNeeded("step() called before reset() or on a finished episode: call reset() first")
        actions = self._whole_actions(actions)
        if actions.shape[0] != len(self.n_actions) or np.any(actions < 0) or np.any(actions >= self.n_actions):
            raise ActionError(f"action {actions.tolist()} outside the action space {self.n_actions.tolist()}")
        t0 = self.loop.time
        try:
            if self.options.action_mode == "phase":
                self.loop.advance(targets=actions)
            else:
                self.loop.advance(switch=actions)
        except SimulationError as exc:
            if self.options.on_sumo_error == "raise":
                raise
            return self._end_after_error(exc)
        state = self.loop.state()
        co2 = self.loop.lane_co2() if self.reward.needs_co2 else None
        unwatched = self.unwatched() if self.unwatched is not None else None
        rewards = self.reward(state, self.loop.time - t0, co2, unwatched)
        self._watch(state)
        obs = self.observer(state)
        info: dict = {"time": self.loop.time, "reward_terms": self.reward.terms}
        done = self.loop.done
        if done:
            self._episode_over = True
            info["kpis"] = self.loop.finish().to_dict()
        return obs, rewards, done, info

    def _check_open(self, call: str) -> None:
        if self._closed:
            raise EnvClosed(f"{call} called after close(): make a new environment")

    @staticmethod
    def _whole_actions(actions) -> np.ndarray:
        """Actions as int64; ActionError for anything but whole numbers (0.5, NaN, None, text)."""
        try:
            raw = np.asarray(actions)
        except (TypeError, ValueError) as exc:
            raise ActionError(f"action {actions!r}: not an array of whole numbers ({exc})") from None
        if raw.dtype == bool or np.issubdtype(raw.dtype, np.integer):
            return raw.astype(np.int64).reshape(-1)
        if np.issubdtype(raw.dtype, np.floating):
            flat = raw.reshape(-1)
            if np.all(np.isfinite(flat)) and np.all(flat == np.round(flat)):
                return flat.astype(np.int64)
        raise ActionError(f"action {np.asarray(actions, dtype=object).reshape(-1).tolist()}: "
                          "actions must be whole numbers (one per signal)")

    @property
    def in_episode(self) -> bool:
        """True between reset() and the episode's end (actions and masks are defined)."""
        return not self._episode_over and not self._closed

    def masks(self) -> list[np.ndarray]:
        """Allowed actions per intersection (True: allowed): the SignalController's (min green,
        clearances), then the starvation guard's (a due phase next, or the current green held).
        ResetNeeded before reset() and after the episode's end, like step()."""
        self._check_open("action_masks()")
        if self._episode_over:
            raise ResetNeeded("action_masks() called before reset() or on a finished episode: call reset() first")
        now = self.loop.time
        if self.options.action_mode == "phase":
            full = self.loop.signals.phase_mask(now)
            masks = [full[k, : self.n_phases[k]].copy() for k in range(len(self.n_phases))]
        else:
            masks = [np.array([True, bool(f)]) for f in self.loop.signals.can_switch(now)]
        if self.guard is None:
            return masks
        return StarvationGuard.restrict(masks, self._due, self._phase, self.options.action_mode)

    def close(self) -> None:
        self._closed = True
        self._episode_over = True
        self.loop.close()

    def _end_after_error(self, exc: SimulationError) -> tuple[np.ndarray, np.ndarray, bool, dict]:
        self._episode_over = True
        self._needs_fresh_start = True
        obs = np.zeros((len(self.n_actions), self.observer.width), dtype=np.float32)
        return obs, np.zeros(len(self.n_actions)), True, {"time": self.loop.time, "error": str(exc)}
