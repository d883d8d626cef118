"""The control loop every command shares: step SUMO, apply wishes safely, measure.

``simulate``, ``bench``, ``plan`` evaluation and the RL environments all run a
:class:`ControlLoop`. With ``adaptive=False`` SUMO runs the network's own
programs (or a plan loaded as an additional file) and nothing sets states; with
``adaptive=True`` every state change goes through the :class:`SignalController`.
"""

from __future__ import annotations

import math
import dataclasses
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.errors import ConfigError
from engine.layout import Layout, build_layout
from engine.metrics import KPIs, QueueSampler, compute_kpis
from engine.network import DEFAULT_DETECTOR_RANGE_M
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
    detector_range_m: float = DEFAULT_DETECTOR_RANGE_M  # how far upstream each approach is seen
    max_ped_wait: float = 120.0  # s a crossing may wait before the SignalController recalls it

    def validate(self, layout: Layout) -> None:
        if not (0 <= self.detector_range_m < float("inf")):
            raise ConfigError(f"detector range {self.detector_range_m} m: must be a finite number >= 0")
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
    lane_count: np.ndarray  # vehicles in each watched lane's observation area
    lane_halting: np.ndarray  # of which halting (speed < 0.1 m/s)
    lane_speed: np.ndarray  # mean speed, m/s
    lane_length: np.ndarray  # m of road in the observation area
    lane_max_speed: np.ndarray  # m/s
    zone_count: np.ndarray  # vehicles in each watched lane's stop-line detection zone (actuation, SOTL)
    zone_halting: np.ndarray  # of which halting
    zone_speed: np.ndarray  # their mean speed, m/s
    zone_length: np.ndarray  # m of road in the zone
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
        self.layout = build_layout(scenario.net_file, signals, tuple(scenario.additional_files),
                                   options.detector_range_m, require=False)
        if not self.layout.intersections:  # nothing to control: every signal runs its own program
            options = dataclasses.replace(options, adaptive=False)
        self.options = options
        options.validate(self.layout)
        self.sim = Simulation(gui=options.gui)
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="cqsignal-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.signals = SignalController(self.layout.intersections, self.sim.set_state,
                                        options.min_green, options.max_green, options.max_ped_wait)
        self.queue = QueueSampler(len(self.layout.intersections))
        self.lane_length = np.zeros(0)
        self.lane_max_speed = np.zeros(0)
        n = len(self.layout.lanes)
        self.lane_count, self.lane_halting, self.lane_speed = np.zeros(n), np.zeros(n), np.zeros(n)
        self.zone_count, self.zone_speed, self.zone_length = np.zeros(n), np.zeros(n), np.zeros(0)
        self.zone_halting = np.zeros(n)
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
        self.sim.watch_lanes(self.layout.area_lanes, co2=self.options.watch_co2)
        self.sim.start(args, error_log=self.workdir / "sumo-errors.log")
        if not self.lane_length.size:
            length, vmax = self.sim.lane_static()
            self._area_length = length
            self.lane_length = self.layout.aggregate(length)
            self.zone_length = self.layout.zone.aggregate(length, len(self.layout.lanes))
            own = {lane: i for i, lane in enumerate(self.layout.area_lanes)}
            self.lane_max_speed = vmax[[own[lane] for lane in self.layout.lanes]]
        if self.options.adaptive:
            self.signals.reset(self.time)
        self._read_lanes()

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
        steps = math.ceil(min(seconds or self.options.delta, self.scenario.end - now) - 1e-9)
        adaptive = self.options.adaptive
        monitor = self.monitor
        if monitor is not None:  # the monitor sees every second, every signal
            ids = tuple(monitor.intersections)
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
        self._read_lanes()
        self.queue.add(self.layout.per_intersection_sum(self._queue_halting))

    def _read_lanes(self) -> None:
        """SUMO's lane values, summed over each watched lane's observation area and stop-line zone."""
        self.sim.read_lanes()
        self.lane_count[:], self.lane_halting[:], self.lane_speed[:] = self._observe(self.layout.area)
        self.zone_count[:], self.zone_halting[:], self.zone_speed[:] = self._observe(self.layout.zone)
        queue_area = self.layout.queue_area
        self._queue_halting = self.lane_halting if queue_area is self.layout.area else queue_area.aggregate(
            self.sim.lane_halting, len(self.layout.lanes), self.sim.lane_halting, self._area_length)

    def _observe(self, area) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(vehicles, halting, mean speed m/s) per watched lane over ``area``; empty lanes: the speed limit."""
        sim, n = self.sim, len(self.layout.lanes)
        count = area.aggregate(sim.lane_count, n, sim.lane_halting, self._area_length)
        halting = area.aggregate(sim.lane_halting, n, sim.lane_halting, self._area_length)
        moving = area.aggregate(sim.lane_count * sim.lane_speed, n)
        speed = np.where(count > 0, moving / np.maximum(count, 1e-9), self.lane_max_speed)
        return count, halting, speed

    def lane_co2(self) -> np.ndarray:
        """CO2 (mg/s) in each watched lane's observation area (needs ``watch_co2``)."""
        return self.layout.aggregate(self.sim.lane_co2)

    def state(self) -> TrafficState:
        """What controllers see now (views of the loop's arrays, no copies)."""
        now = self.time
        return TrafficState(
            time=now, layout=self.layout, lane_count=self.lane_count,
            lane_halting=self.lane_halting, lane_speed=self.lane_speed,
            lane_length=self.lane_length, lane_max_speed=self.lane_max_speed,
            phase=self.signals.phase, time_in_phase=self.signals.time_in_phase(now),
            can_switch=self.signals.can_switch(now),
            zone_count=self.zone_count, zone_halting=self.zone_halting, zone_speed=self.zone_speed,
            zone_length=self.zone_length,
        )

    def finish(self) -> KPIs:
        """Close SUMO (flushing its outputs) and return the run's KPIs."""
        self.sim.close()
        self.kpis = compute_kpis(self.tripinfo, self.statistics, self.scenario, self.queue)
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
