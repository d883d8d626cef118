"""The closed loop: a field run, its loops' counts feed, and the controller that answers them.

:func:`run_field` steps the field (SUMO through the :class:`~engine.loop.ControlLoop`)
with one controller:

* ``tod``: the city's time-of-day plans, switched by the schedule;
* ``twin``: the predictive twin (:class:`~engine.twin.decide.Twin`) choosing a plan every interval;
* ``oracle``: the same twin told the field's true future demand;
* ``twin_actuated``: the twin's chosen plan as the background cycle (cycle, offsets,
  force-offs) of coordinated-actuated control, which gaps out what it does not need;
* ``actuated`` / ``max_pressure``: the adaptive heuristics, as ``bench`` runs them (actuated on
  the network's own programs as its background).

Plans run through the :class:`~engine.twin.follower.PlanFollower`, so every
change of plan is a safe transition. Every 300 s the loops' counts and occupancy
are appended to the feed CSV (``counts.csv``); the twin reads only that file.
The history profile the twin forecasts against is the same field on a normal
day (another seed), counted the same way (:func:`history_profile`).
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.calibrate.counts import Count, read_counts
from engine.outputs import atomic_write_bytes
from engine.errors import ConfigError, CqSignalError
from engine.loop import ControlLoop, LoopOptions
from engine.metrics import KPIs
from engine.plan.model import PeriodPlan
from engine.safety import SafetyMonitor
from engine.scenario import Scenario
from engine.signal_controller import SignalController
from engine.signals import with_phases, with_right_turn_overlaps
from engine.twin.config import TwinConfig
from engine.twin.detectors import (COUNTS_PERIOD_S, CountsFeed, FaultyFeed, append_counts, loop_groups, loops_xml,
                                   place_loops, read_loops)
from engine.twin.field import FieldSpec, write_field_routes
from engine.twin.follower import PlanFollower
from engine.twin.whatif import strip_future

HEURISTIC_OPTIONS = LoopOptions()  # actuated / max pressure as the environment and bench run them


@dataclass
class Setting:
    """A twin config resolved once: network, signals, corridor, limits, plans and their schedule."""

    cfg: TwinConfig
    base: Scenario
    intersections: dict
    corridor: object
    limits: object
    tod: dict[str, PeriodPlan]
    switches: list[tuple[int, str]]

    def tod_at(self, t: float) -> PeriodPlan:
        """The time-of-day plan the schedule runs at ``t`` (s of the day)."""
        day = t % 86400.0
        period = self.switches[-1][1]
        for start, p in self.switches:
            if start <= day + 1e-9:
                period = p
        return self.tod[period]


def resolve(cfg: TwinConfig, source: str | Path | None = None) -> Setting:
    """Check and load everything the config names before any simulation (ConfigError, one line;
    ``source``, the config file, begins each message where given).

    The plan config's problems name ``plan_config`` and its file; a plan that does not validate on
    the network names ``plans`` and its file, and says so when the ``manifest.json`` beside it
    records another version of the network file (the network was rebuilt after the plans were made).
    """
    from engine.plan.config import load_plan_config
    from engine.plan.pipeline import load_plans
    from engine.plan.pipeline import resolve as resolve_plan

    where = f"{source}: " if source is not None else ""
    try:
        pcfg = load_plan_config(cfg.plan_config)
    except CqSignalError as exc:
        raise ConfigError(f"{where}plan_config: {exc}") from None
    if pcfg.network != cfg.network:
        raise ConfigError(f"{where}plan_config: {cfg.plan_config} is for network {pcfg.network!r}, "
                          f"not {cfg.network!r}")
    try:
        ctx = resolve_plan(pcfg)
    except CqSignalError as exc:
        text = str(exc)  # the plan config's own checks name its file, the plan pipeline's do not
        text = text if text.startswith(f"{cfg.plan_config}:") else f"{cfg.plan_config}: {text}"
        raise ConfigError(f"{where}plan_config: {text}") from None
    plan = load_plans(cfg.plans, ctx, periods=[p for _, p in ctx.switches], where=f"{where}plans: ")
    base = Scenario.load(cfg.network, period=cfg.field.period)
    return Setting(cfg, base, ctx.intersections, ctx.corridor, pcfg.constraints, dict(plan.periods), ctx.switches)


@dataclass
class FieldRun:
    """What a field run produced (files in its folder)."""

    controller: str
    kpis: KPIs
    counts: Path
    tripinfo: Path
    decisions: list[dict] = field(default_factory=list)
    plans: list[tuple[float, str]] = field(default_factory=list)  # (time, plan label) at every change
    running: list[tuple[float, PeriodPlan]] = field(default_factory=list)  # (time, plan) at every change
    violations: list = field(default_factory=list)
    wall_s: float = 0.0


def run_field(setting: Setting, controller: str, workdir: Path, *, spec: FieldSpec | None = None,
              seed: int | None = None, extra_s: float = 0.0, profile: dict[str, np.ndarray] | None = None,
              monitor: bool = False, on_decision: Callable[[dict], None] | None = None,
              progress: Callable[[float, float], None] | None = None, faults: bool = True) -> FieldRun:
    """Run the field for its window (+ ``extra_s``) under ``controller``; see the module docstring.

    ``profile`` (needed by ``twin`` and ``oracle``): the history's flows per count location.
    With ``monitor`` an independent :class:`~engine.safety.SafetyMonitor` watches every
    second; its violations are in the result. ``faults``: apply the config's ``feed_faults``.
    """
    field_run = _Field(setting, controller, workdir, spec or setting.cfg.field,
                       setting.cfg.seed if seed is None else seed, extra_s, profile, monitor,
                       setting.cfg.feed_faults if faults else ())
    return field_run.run(on_decision, progress)


class _Field:
    """One field run's parts: SUMO's loop, the controller, the loops and the feed, the twin."""

    def __init__(self, setting: Setting, controller: str, workdir: Path, spec: FieldSpec, seed: int,
                 extra_s: float, profile: dict[str, np.ndarray] | None, monitor: bool, faults=()) -> None:
        import sumolib

        from engine.twin.candidates import label

        cfg = setting.cfg
        self.setting, self.controller, self.workdir, self.spec = setting, controller, workdir, spec
        workdir.mkdir(parents=True, exist_ok=True)
        net_file = setting.base.net_file
        routes = write_field_routes(spec, setting.base.demand_file, net_file, seed, workdir / "field.rou.xml")
        loops = place_loops(sumolib.net.readNet(str(net_file)), setting.intersections)
        loops_file = workdir / "loops.add.xml"
        loops_file.write_text(loops_xml(loops, "loops.out.xml"), encoding="utf-8")
        self.groups = loop_groups(loops)
        self.scenario = Scenario(name=f"field-{cfg.name}", net_file=net_file, route_files=routes,
                                 additional_files=(loops_file,), seed=seed, begin=spec.begin,
                                 duration=spec.duration + extra_s, time_to_teleport=300.0)
        self.plan_mode = controller in ("tod", "twin", "oracle")  # fixed-time plans through the follower
        self.background_mode = controller == "twin_actuated"  # the twin's plan as actuation's background
        self.current = setting.tod_at(spec.begin)
        self.options = self._options() if self.plan_mode else HEURISTIC_OPTIONS
        self.loop = ControlLoop(self.scenario, self.options, workdir=workdir / "sumo")
        # the signals as plans run them (clearances at least the plan constraints' yellow and all-red,
        # engine.signals.with_minimum_clearances): every controller, baselines too, shows those
        base = [setting.intersections[ix.id] for ix in self.loop.layout.intersections]
        self.follower = self.heuristic = self.twin = None
        if self.plan_mode:
            self.follower = PlanFollower(base, self.current)
        o = self.options
        self.loop.signals = SignalController(self.follower.phases() if self.plan_mode else base,
                                             self.loop.sim.set_state, o.min_green, o.max_green, o.max_ped_wait)
        if not self.plan_mode:
            from engine.controllers import make_controller

            self.heuristic = make_controller("actuated" if self.background_mode else controller, self.scenario)
            if self.background_mode:
                self._set_background(self.current)
        if monitor:  # it knows every phase set a plan may run, and checks every change between them
            self.loop.monitor = SafetyMonitor([_all_phase_sets(ix) for ix in base], min_green=self.options.min_green)
        if controller in ("twin", "oracle", "twin_actuated"):
            if profile is None:
                raise ConfigError(f"controller {controller}: needs the history profile")
            from engine.twin.decide import Twin

            self.twin = Twin(cfg.twin, net_file, setting.intersections, setting.corridor, setting.limits,
                             setting.tod, profile, spec.begin, workdir / "twin",
                             oracle_routes=routes if controller == "oracle" else None, seed=seed,
                             **self._demand_model(workdir / "twin", cfg.twin.horizon_s))
        self.counts_file = workdir / "counts.csv"
        self.counts_file.unlink(missing_ok=True)
        self.faults = FaultyFeed(faults)
        self.feed = CountsFeed(self.counts_file)
        self.seen: list[Count] = []
        self.result = FieldRun(controller, None, self.counts_file, self.loop.tripinfo)  # type: ignore[arg-type]
        self.result.plans.append((spec.begin, label(self.current) if self.plan_mode or self.background_mode
                                  else controller))
        if self.plan_mode or self.background_mode:
            self.result.running.append((spec.begin, self.current))

    def _demand_model(self, folder: Path, horizon_s: float) -> dict:
        """What the city's calibrated demand model knows, from a normal day (the history's demand,
        ``history_seed``, through one horizon after the window): each entry's route shares
        (``route_mix``) and its demand per 5 minutes (``demand_profile``). The field's own routes
        and demand stay unknown."""
        from engine.calibrate.sampler import enumerate_routes, read_net
        from engine.twin.whatif import entry_profile, route_mix

        cfg, base = self.setting.cfg, self.setting.base
        folder.mkdir(parents=True, exist_ok=True)
        spec = cfg.field.normal(horizon_s)
        normal = write_field_routes(spec, base.demand_file, base.net_file, cfg.history_seed,
                                    folder / "normal_day.rou.xml")
        routes = [tuple(r) for r in enumerate_routes(read_net(base.net_file))]
        n = int(round(spec.duration / COUNTS_PERIOD_S))
        return {"route_mix": route_mix(normal, set(self.groups), routes),
                "demand_profile": entry_profile(normal, set(self.groups), routes, spec.begin, n)}

    def _options(self) -> LoopOptions:
        """Plans run through the controller with the plans' own min green and no earlier max-out."""
        limits = self.setting.limits
        longest = max(g for pp in self.setting.tod.values() for t in pp.timings.values() for g in t.greens)
        return LoopOptions(adaptive=True, min_green=limits.min_green_s, max_green=max(limits.cycle_max_s, longest + 1),
                           max_ped_wait=2 * limits.cycle_max_s)

    def run(self, on_decision, progress) -> FieldRun:
        loop, spec = self.loop, self.spec
        try:
            loop.reset()
            end = self.scenario.end
            next_count = spec.begin + COUNTS_PERIOD_S
            interval = self.setting.cfg.twin.interval_s
            next_decision = spec.begin + interval if self.twin else math.inf
            while not loop.done:
                self._step(min(next_count, next_decision, end))
                now = loop.time
                if now >= next_count - 1e-9:
                    counted = read_loops(loop.sim.api, self.groups, next_count - COUNTS_PERIOD_S, next_count)
                    append_counts(self.counts_file, self.faults(counted))
                    next_count += COUNTS_PERIOD_S
                if now >= next_decision - 1e-9 and now < spec.begin + spec.duration:
                    self._decide(now, on_decision)
                    next_decision += interval
                if progress is not None:
                    progress(now - spec.begin, end - spec.begin)
            self.result.kpis = loop.finish()
        finally:
            loop.close()
        if loop.monitor is not None:
            self.result.violations = list(loop.monitor.violations)
        return self.result

    def _step(self, until: float) -> None:
        """Advance to ``until`` at most: to the plan's next change, or one decision of the heuristic."""

        loop, now = self.loop, self.loop.time
        if self.controller == "tod":
            scheduled = self.setting.tod_at(now)
            if scheduled is not self.current:
                self._switch(now, scheduled)
        if not self.plan_mode:
            targets = self.heuristic.decide(loop.state())
            loop.advance(targets, seconds=max(1, min(self.options.delta, math.ceil(until - now - 1e-9))))
            return
        waiting = self.follower.apply(now, loop.signals)
        until = min(self.follower.next_change(now), until)
        loop.advance(seconds=1 if waiting else max(1, math.ceil(until - now - 1e-9)))

    def _switch(self, now: float, plan: PeriodPlan) -> None:
        from engine.twin.candidates import label

        if self.follower is not None:
            self.follower.set_plan(plan)
        else:
            self._set_background(plan)
        self.current = plan
        self.result.plans.append((now, label(plan)))
        self.result.running.append((now, plan))

    def _set_background(self, plan: PeriodPlan) -> None:
        """Coordinated-actuated control on ``plan``'s cycle, offsets and force-offs."""
        from engine.twin.follower import plan_background

        base = [self.setting.intersections[ix.id] for ix in self.loop.layout.intersections]
        self.heuristic.set_background(*plan_background(base, plan, self.loop.layout.max_phases))

    def _decide(self, now: float, on_decision) -> None:

        self.seen += self.feed.read()
        state = self.workdir / "twin" / "state.xml.gz"
        self.loop.sim.api.simulation.saveState(str(state))
        strip_future(state, now)
        snapshot = None
        if self.twin.s.screening == "meso":
            from engine.twin.whatif import snapshot_routes

            snapshot = snapshot_routes(self.loop.sim.api, now, self.workdir / "twin" / "snapshot.rou.xml")
        chosen, record = self.twin.decide(now, self.seen, state, self.current, snapshot=snapshot,
                                          scheduled=f"tod:{self.setting.tod_at(now).period}")
        if chosen is not self.current:
            self._switch(now, chosen)
        self.result.decisions.append(record)
        if on_decision is not None:
            on_decision(record)


def _all_phase_sets(ix):
    """``ix`` with its own greens and those with right-turn overlaps (what the monitor may see)."""
    return with_phases(ix, [(p.state, k) for k, p in enumerate(ix.phases)]
                       + [(p.state, k) for k, p in enumerate(with_right_turn_overlaps(ix).phases)])


def history_profile(setting: Setting, cache: Path, horizon_s: float) -> dict[str, np.ndarray]:
    """Flows (veh/h) per count location and 5-min interval on a normal day (``history_seed``, the
    time-of-day plans), from the window's start through one horizon after its end.

    The normal day's demand runs through that extra horizon too, so decisions near the window's
    end forecast against traffic, not an emptying network. Kept in ``cache`` under a key of the
    settings, the count locations and the network, demand and plan files' contents (an edited
    file, or another detection plan, is run again).
    """
    import hashlib

    import sumolib

    from engine.outputs import file_digest
    from engine.twin.detectors import count_locations

    cfg = setting.cfg
    spec = cfg.field.normal(horizon_s)
    locations = count_locations(sumolib.net.readNet(str(setting.base.net_file)), setting.intersections)
    key = {"field": spec.model_dump(mode="json"), "seed": cfg.history_seed, "network": cfg.network,
           "locations": locations,
           "files": [file_digest(f) for f in (setting.base.net_file, setting.base.demand_file, cfg.plans,
                                               cfg.plan_config)]}
    folder = cache / hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    csv_file = folder / "history_counts.csv"
    if not csv_file.is_file():
        run = run_field(setting, "tod", folder / "history_run", spec=spec, seed=cfg.history_seed, faults=False)
        atomic_write_bytes(csv_file, run.counts.read_bytes())
        shutil.rmtree(folder / "history_run", ignore_errors=True)
    n = int(round(spec.duration / COUNTS_PERIOD_S))
    out: dict[str, np.ndarray] = {}
    for c in read_counts(csv_file).counts:
        i = int(round((c.begin - spec.begin) / COUNTS_PERIOD_S))
        if 0 <= i < n:
            out.setdefault(c.edge, np.zeros(n))[i] = c.value * 3600.0 / COUNTS_PERIOD_S
    return out


def delay_over_time(tripinfo: Path, begin: float, end: float, step_s: float = 300.0) -> list[float]:
    """Mean delay (s/veh: timeLoss + departDelay) of vehicles by 5-min bin of their due time."""
    import sumolib

    n = int(math.ceil((end - begin) / step_s))
    total, count = np.zeros(n), np.zeros(n)
    for t in sumolib.xml.parse_fast(str(tripinfo), "tripinfo", ["id", "depart", "departDelay", "timeLoss"]):
        depart, dd = float(t.depart), float(t.departDelay)
        if depart < 0:
            continue
        i = int((depart - dd - begin) // step_s)
        if 0 <= i < n:
            total[i] += float(t.timeLoss) + dd
            count[i] += 1
    return [round(float(a / b), 1) if b else math.nan for a, b in zip(total, count)]
