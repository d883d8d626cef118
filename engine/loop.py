"""The control loop every command shares: step SUMO, apply wishes safely, measure.

``simulate``, ``bench``, ``plan`` evaluation and the RL environments all run a
:class:`ControlLoop`. With ``adaptive=False`` SUMO runs the network's own
programs (or a plan loaded as an additional file) and nothing sets states; with
``adaptive=True`` every state change goes through the :class:`SignalController`.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.errors import ConfigError
from engine.layout import Layout, build_layout
from engine.metrics import KPIs, QueueSampler, compute_kpis
from engine.safety import SafetyMonitor
from engine.scenario import Scenario
from engine.signal_controller import SignalController
from engine.sim import Simulation


@dataclass(frozen=True)
class LoopOptions:
    """How signals are controlled; the defaults are the environment's."""

    adaptive: bool = True
    delta: int = 5  # seconds between decisions
    min_green: float = 10.0
    max_green: float = 60.0
    gui: bool = False
    watch_co2: bool = False  # subscribe lane CO2 (only a CO2 reward needs it)

    def validate(self, layout: Layout) -> None:
        if self.delta < 1 or int(self.delta) != self.delta:
            raise ConfigError(f"decision interval delta={self.delta}: must be a whole number of seconds >= 1")
        if self.adaptive:
            longest_yellow = max(ix.min_yellow for ix in layout.intersections)
            if self.delta < longest_yellow:
                raise ConfigError(
                    f"decision interval delta={self.delta}s is shorter than the network's yellow "
                    f"({longest_yellow:g}s)"
                )


@dataclass(frozen=True)
class TrafficState:
    """A snapshot of lanes and signals: the observation heuristics decide on."""

    time: float
    layout: Layout
    lane_count: np.ndarray  # vehicles on each watched lane
    lane_halting: np.ndarray  # of which halting (speed < 0.1 m/s)
    lane_speed: np.ndarray  # mean speed, m/s
    lane_length: np.ndarray  # m
    lane_max_speed: np.ndarray  # m/s
    phase: np.ndarray  # current green (or the one being cleared to), per signal
    time_in_phase: np.ndarray  # s since that green began (0 while clearing)
    can_switch: np.ndarray  # min green has passed and not clearing


class ControlLoop:
    """Owns a Simulation for a scenario; reset it for each episode or run."""

    def __init__(self, scenario: Scenario, options: LoopOptions = LoopOptions(),
                 signals: tuple[str, ...] | None = None, workdir: Path | None = None,
                 monitor: SafetyMonitor | None = None) -> None:
        self.scenario = scenario
        self.options = options
        self.layout = build_layout(scenario.net_file, signals)
        options.validate(self.layout)
        self.sim = Simulation(gui=options.gui)
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="cqsignal-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.signals = SignalController(self.layout.intersections, self.sim.set_state,
                                        options.min_green, options.max_green)
        self.queue = QueueSampler(len(self.layout.intersections))
        self.lane_length = np.zeros(0)
        self.lane_max_speed = np.zeros(0)
        self.kpis: KPIs | None = None
        self.monitor = monitor  # sees the states SUMO will show, before every step

    # -- episode ---------------------------------------------------------------
    @property
    def tripinfo(self) -> Path:
        return self.workdir / "tripinfo.xml"

    @property
    def statistics(self) -> Path:
        return self.workdir / "statistics.xml"

    def reset(self, scenario: Scenario | None = None) -> None:
        """Start (or reload) SUMO on ``scenario`` and put every signal in its first green."""
        if scenario is not None:
            if scenario.net_file != self.scenario.net_file:
                raise ConfigError("a ControlLoop serves one network; make another for a new network")
            self.scenario = scenario
        self.kpis = None
        self.queue = QueueSampler(len(self.layout.intersections))
        args = self.scenario.sumo_args(self.workdir, self.tripinfo, self.statistics)
        self.sim.watch_lanes(self.layout.lanes, co2=self.options.watch_co2)
        self.sim.start(args, error_log=self.workdir / "sumo-errors.log")
        if not self.lane_length.size:
            self.lane_length, self.lane_max_speed = self.sim.lane_static()
        if self.options.adaptive:
            self.signals.reset(self.time)
        self.sim.read_lanes()

    @property
    def time(self) -> float:
        return self.sim.time

    @property
    def done(self) -> bool:
        return self.time >= self.scenario.end - 1e-9

    def advance(self, targets: np.ndarray | None = None, switch: np.ndarray | None = None,
                seconds: int | None = None) -> None:
        """Apply one decision (targets: green phase per signal; or switch flags) and step."""
        now = self.time
        if targets is not None:
            self.signals.request(now, targets)
        elif switch is not None:
            self.signals.advance(now, switch)
        steps = int(min(seconds or self.options.delta, self.scenario.end - now))
        adaptive = self.options.adaptive
        monitor, ids = self.monitor, self.layout.ids
        if monitor is not None:  # the monitor sees every second
            for _ in range(steps):
                monitor.observe(self.time, {i: self.sim.signal_state(i) for i in ids})
                self.sim.step()
                if adaptive:
                    self.signals.tick(self.time)
        else:  # straight to the next signal event: the same run, fewer calls and updates
            end = now + steps
            while self.time < end - 1e-9:
                until = min(end, self.signals.next_event) if adaptive else end
                self.sim.step(max(until, self.time + 1.0))
                if adaptive:
                    self.signals.tick(self.time)
        self.sim.read_lanes()
        self.queue.add(self.layout.per_intersection_sum(self.sim.lane_halting))

    def state(self) -> TrafficState:
        """What controllers see now (views of the loop's arrays, no copies)."""
        now = self.time
        return TrafficState(
            time=now, layout=self.layout, lane_count=self.sim.lane_count,
            lane_halting=self.sim.lane_halting, lane_speed=self.sim.lane_speed,
            lane_length=self.lane_length, lane_max_speed=self.lane_max_speed,
            phase=self.signals.phase, time_in_phase=self.signals.time_in_phase(now),
            can_switch=self.signals.can_switch(now),
        )

    def finish(self) -> KPIs:
        """Close SUMO (flushing its outputs) and return the run's KPIs."""
        self.sim.close()
        self.kpis = compute_kpis(self.tripinfo, self.statistics, self.scenario.duration,
                                 self.scenario.max_depart_delay, self.queue, self.scenario.emissions)
        return self.kpis

    def close(self) -> None:
        self.sim.close()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def keep_outputs(self, out: Path) -> None:
        """Copy tripinfo and statistics into ``out``."""
        out.mkdir(parents=True, exist_ok=True)
        for f in (self.tripinfo, self.statistics):
            if f.is_file():
                shutil.copyfile(f, out / f.name)
