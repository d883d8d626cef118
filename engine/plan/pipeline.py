"""``cqsignal plan``: build, validate, export and report a time-of-day plan from a config."""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from engine.plan.config import PlanConfig
from engine.plan.corridor import Corridor, build_corridor
from engine.plan.evaluate import PlanEvaluator
from engine.plan.export import (check_switching, phase_names, programs_xml, schedule_switches,
                                timing_rows, timing_sheet_csv, write_plan_json, write_text_atomic)
from engine.errors import ConfigError
from engine.plan.model import PeriodPlan, Plan, PlanValidationError, validate_period, validate_plan
from engine.plan.optimise import PlanSearch, optimise_period
from engine.plan.sources import DEMAND_DIR, PeriodDemand, calibrate_periods, resolve_demands
from engine.plan.webster_plan import band_weights
from engine.scenario import Scenario
from engine.network import read_intersections
from engine.signals import Intersection, with_minimum_clearances

Log = Callable[[str], None]


@dataclass
class PlanContext:
    """Everything the methods need, resolved once from the config."""

    config: PlanConfig
    scenario: Scenario
    intersections: dict[str, Intersection]  # as plans run them: clearances at least the constraints'
    corridor: Corridor
    windows: dict[str, tuple[int, int]]
    switches: list[tuple[int, str]]
    flow_source: Callable[[str], dict] | None = None  # period -> movement flows; default: the period's demand
    demands: dict[str, PeriodDemand] = field(default_factory=dict)  # default: the network's demand file
    network_intersections: dict[str, Intersection] = field(default_factory=dict)  # as the network runs them
    clearance_notes: tuple[str, ...] = ()  # clearances the plans lengthen to the constraints
    _flows: dict[str, dict] = field(default_factory=dict, init=False, repr=False)

    def demand(self, period: str) -> PeriodDemand:
        """Where ``period``'s demand comes from (:mod:`engine.plan.sources`)."""
        return self.demands.get(period) or PeriodDemand(period, "network", self.windows.get(period, (0, 0)))

    def period_scenario(self, period: str) -> Scenario:
        """The scenario that simulates ``period``: the network with the period's demand."""
        return self.demand(period).scenario(self.scenario)

    def flows(self, period: str) -> dict[tuple[str, str], float]:
        """Design movement flows (veh/h) of ``period`` (computed once)."""
        if self.flow_source is not None:
            return self.flow_source(period)
        if period not in self._flows:
            cfg = self.config
            self._flows[period] = self.demand(period).flows(self.scenario, cfg.evaluation.scale, cfg.design_flow)
        return self._flows[period]

    def band_weights(self, flows: Mapping[tuple[str, str], float]) -> tuple[float, float]:
        """Forward and backward green-band weights: the config's, or the through volumes of ``flows``."""
        return band_weights(self.corridor, self.intersections, flows, self.config.corridor.direction_weights)


@dataclass
class PlanRun:
    """What a plan run produced."""

    plan: Plan
    files: dict[str, Path] = field(default_factory=dict)
    switch_log: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    summary: list[dict] = field(default_factory=list)  # one row per period: method, cycle, objectives


def resolve(config: PlanConfig) -> PlanContext:
    """Network, signals, each period's demand, corridor, period windows and WAUT schedule (checked
    before any simulation; counts are calibrated later, by :func:`calibrate_demand`)."""
    scenario = Scenario.of_network(config.network)
    demands = resolve_demands(config, scenario)
    network_intersections = read_intersections(scenario.net_file, scenario.additional_files)  # what SUMO runs
    limits = config.constraints
    intersections, notes = {}, []
    for sid, ix in network_intersections.items():
        intersections[sid], lengthened = with_minimum_clearances(ix, limits.yellow_s, limits.all_red_s)
        notes += lengthened
    signals = config.corridor.signals or _network_signals(config.network, intersections)
    corridor = build_corridor(scenario.net_file, intersections, signals, config.corridor.progression_speed_kmh,
                              config.corridor.speed_factor)
    windows = {p: d.clock for p, d in demands.items()}
    switches = schedule_switches(windows, config.schedule or config.periods)
    return PlanContext(config, scenario, intersections, corridor, windows, switches, demands=demands,
                       network_intersections=network_intersections, clearance_notes=tuple(notes))


def calibrate_demand(ctx: PlanContext, out: Path, log: Log) -> Path | None:
    """Calibrate the periods whose demand is a counts file into ``out/demand/<period>/``; that folder
    (None when no period has counts)."""
    if not any(d.kind == "counts" for d in ctx.demands.values()):
        return None
    ctx.demands = calibrate_periods(ctx.demands, ctx.config.network, out / DEMAND_DIR, log)
    ctx._flows.clear()
    return out / DEMAND_DIR


def _network_signals(network: str, intersections: dict[str, Intersection]) -> list[str]:
    """The corridor when the plan config names none: the network's declared signal order (a
    registered network's manifest, a folder's ``network.yaml`` ``signals``), else every signal
    in the network file's order."""
    import networks

    from engine.scenario import NETWORK_YAML, read_network_yaml

    if network in networks.available():
        declared = list(networks.manifest(network)["signals"])
    elif (Path(network) / NETWORK_YAML).is_file():
        declared = list(read_network_yaml(Path(network) / NETWORK_YAML).signals or ())
    else:
        declared = []
    return [s for s in declared if s in intersections] or list(intersections)


def load_plans(path: str | Path, ctx: PlanContext, periods: Sequence[str] = (), where: str = "") -> Plan:
    """A ``cqsignal plan`` plan.json checked against ``ctx``'s network before any simulation.

    ConfigError (one line, beginning with ``where`` then ``path``, e.g. ``twin.yaml: plans: ``) when it
    is unreadable, was made for another network, lacks one of ``periods``, or a period's plan does not
    validate on the network (that message says so when the plan's manifest.json records another
    version of the network file).
    A plan that validates on a changed network file is kept, with a warning on stderr.
    """
    try:
        plan = Plan.load(path)
    except ConfigError as exc:
        raise ConfigError(f"{where}{exc}") from None
    if plan.network != ctx.config.network:
        raise ConfigError(f"{where}{path}: is for network {plan.network!r}, not {ctx.config.network!r}")
    missing = [p for p in periods if p not in plan.periods]
    if missing:
        raise ConfigError(f"{where}{path}: no plan for period {missing[0]!r} "
                          f"(it has {', '.join(plan.periods) or 'none'})")
    stale = network_changed(path, ctx.scenario.net_file)
    try:
        for pp in plan.periods.values():
            validate_period(pp, ctx.intersections, ctx.config.constraints)
    except PlanValidationError as exc:
        raise ConfigError(f"{where}{path}: {exc}" + (f" ({stale})" if stale else "")) from None
    if stale:
        print(f"cqsignal: warning: {where}{path}: {stale}", file=sys.stderr)
    return plan


def network_changed(plan_file: str | Path, net_file: str | Path) -> str | None:
    """Why ``plan_file`` (a plan.json of ``cqsignal plan``) may not fit ``net_file``: the ``manifest.json``
    beside it records another sha256 for the network file the plans were made on (the network was
    rebuilt since). None when it records the same, or no manifest or network file to compare."""
    from engine.outputs import file_digest, read_manifest

    manifest = read_manifest(Path(plan_file).parent)
    inputs = manifest.get("inputs") if manifest is not None else None
    if not isinstance(inputs, dict) or not Path(net_file).is_file():
        return None
    net = Path(net_file).resolve()
    recorded = inputs.get(str(net))
    if recorded is None:  # the folder moved: the one network file it lists by the same name
        same = [v for k, v in inputs.items() if Path(k).name == net.name]
        recorded = same[0] if len(same) == 1 else None
    if not isinstance(recorded, str) or recorded == file_digest(net):
        return None
    return (f"the plans were made for a different version of the network file {net_file}: its manifest.json "
            f"records sha256 {recorded[:12]}..., the file now has {file_digest(net)[:12]}...; make the plans "
            "again with cqsignal plan")



def plan_search(ctx: PlanContext, period: str) -> PlanSearch:
    """The ``optimise`` method's search space for ``period`` (its design flows, limits and corridor)."""
    cfg = ctx.config
    flows = ctx.flows(period)
    return PlanSearch(period, ctx.intersections, flows, cfg.constraints, ctx.corridor, ctx.scenario.net_file,
                      cfg.corridor.progression_speed_kmh, cfg.corridor.speed_factor, ctx.band_weights(flows),
                      cfg.optimiser)


def period_plan(ctx: PlanContext, period: str, method: str, log: Log, progress=None) -> tuple[PeriodPlan, dict]:
    """One period's plan by ``method``; returns the plan and a summary row."""
    from engine.plan.webster_plan import green_wave_period_plan, webster_period_plan

    cfg = ctx.config
    limits = cfg.constraints
    row: dict = {"period": period, "method": method}
    if method == "optimise":
        search = plan_search(ctx, period)
        with tempfile.TemporaryDirectory(prefix=f"cqsignal-plan-{period}-") as work, \
                PlanEvaluator(ctx.period_scenario(period), cfg.evaluation.seeds,
                              cfg.evaluation.duration_s, cfg.evaluation.scale, cfg.evaluation.stops_weight,
                              workdir=Path(work), workers=cfg.evaluation.workers,
                              ray=cfg.evaluation.ray) as evaluator:
            result = optimise_period(search, evaluator, progress=progress, log=log)
        pp = result.plan
        row.update(start_objective=result.start_eval.objective, objective=result.best_eval.objective,
                   trials=len(result.trials), simulations=result.simulations, search_s=result.wall_s)
        log(f"{period}: start {result.start_eval.objective:.2f} -> best {result.best_eval.objective:.2f} "
            f"({len(result.trials)} trials, {result.simulations} simulations, {result.wall_s:.0f} s)")
    elif method == "webster":
        pp = webster_period_plan(period, ctx.intersections, ctx.flows(period), limits)
    else:
        flows = ctx.flows(period)
        pp = green_wave_period_plan(period, ctx.intersections, flows, limits, ctx.corridor,
                                    weights=ctx.band_weights(flows), seed=cfg.optimiser.seed)
    validate_period(pp, ctx.intersections, limits)
    row.update(cycle=pp.cycle, band_forward_s=pp.notes.get("band_forward_s"),
               band_backward_s=pp.notes.get("band_backward_s"))
    return pp, row


def export(ctx: PlanContext, plan: Plan, out: Path, log: Log) -> tuple[dict[str, Path], list[str]]:
    """Validate, write the additional file (after checking its switches in SUMO), the sheet and the JSON."""
    validate_plan(plan, ctx.intersections, ctx.config.constraints)
    out.mkdir(parents=True, exist_ok=True)
    names = phase_names(ctx.scenario.net_file, ctx.intersections)
    switches = [(t, p) for t, p in ctx.switches if p in plan.periods]
    text = programs_xml(plan, ctx.intersections, switches=switches, names=names)
    with tempfile.TemporaryDirectory(prefix="cqsignal-waut-") as tmp:
        candidate = write_text_atomic(Path(tmp) / "plan.add.xml", text)
        switch_log = check_switching(candidate, ctx.scenario.net_file, plan, ctx.intersections, switches, Path(tmp))
    for line in switch_log:
        log(f"WAUT check: {line}")
    files = {
        "additional": write_text_atomic(out / "plan.add.xml", text),
        "timing_sheet": write_text_atomic(out / "timing_sheet.csv",
                                          timing_sheet_csv(timing_rows(plan, ctx.intersections, names,
                                                                       ctx.corridor.signals))),
        "plan": write_plan_json(plan, out / "plan.json"),
    }
    return files, switch_log


def report(ctx: PlanContext, plan: Plan, out: Path, switch_log: Sequence[str], header: dict, log: Log,
           progress=None) -> Path:
    """Simulate before/after for the report periods and write report.html."""
    from engine.plan.measure import approach_results, default_timing, measure_run
    from engine.plan.report import PeriodReport, render_report

    cfg = ctx.config
    rc = cfg.report
    names = phase_names(ctx.scenario.net_file, ctx.intersections)
    reports = []
    duration = rc.duration_s or cfg.evaluation.duration_s
    for period, pp in plan.periods.items():
        pr = PeriodReport(plan=pp, seeds=rc.seeds, duration_s=duration)
        if rc.enabled and period in (rc.periods or list(plan.periods)):
            log(f"report: simulating {period} before/after on seeds {rc.seeds}")
            flows = ctx.flows(period)
            with tempfile.TemporaryDirectory(prefix="cqsignal-report-") as tmp:
                tmpd = Path(tmp)
                ev = PlanEvaluator(ctx.period_scenario(period), rc.seeds, duration,
                                   cfg.evaluation.scale, workdir=tmpd, workers=cfg.evaluation.workers,
                                   ray=cfg.evaluation.ray)
                add = write_text_atomic(tmpd / "after.add.xml",
                                        programs_xml(Plan(plan.network, {period: pp}), ctx.intersections))
                own = ctx.network_intersections or ctx.intersections  # the network's programs
                default_cycles = {s: default_timing(ix)[1] for s, ix in own.items()}
                before_runs, after_runs, kb, ka = [], [], [], []
                for seed in rc.seeds:
                    sc = ev.scenario(seed)
                    r, k = measure_run(sc, own, default_cycles, tmpd / f"before{seed}")
                    before_runs.append(r)
                    kb.append(k)
                    r, k = measure_run(sc, ctx.intersections, {s: pp.cycle for s in ctx.intersections},
                                       tmpd / f"after{seed}", extra_additional=(add,))
                    after_runs.append(r)
                    ka.append(k)
            before_t = {s: default_timing(ix) for s, ix in own.items()}
            after_t = {s: (pp.timings[s], pp.cycle) for s in ctx.intersections if s in pp.timings}
            pr.before = approach_results(before_runs, own, ctx.scenario.net_file, before_t, flows)
            pr.after = approach_results(after_runs, {s: ctx.intersections[s] for s in after_t},
                                        ctx.scenario.net_file, after_t, flows)
            pr.before_kpis = _mean_kpis(kb)
            pr.after_kpis = _mean_kpis(ka)
        reports.append(pr)
    html = render_report(plan, reports, ctx.corridor, ctx.intersections, names, header, switch_log,
                         rc.diagram_cycles)
    return write_text_atomic(out / "report.html", html)


def _mean_kpis(kpis) -> dict:
    """Seed means of every KPI that has a value (CO2 is None without the emission device)."""
    out = {}
    for k in kpis[0].to_dict():
        values = [getattr(x, k) for x in kpis if getattr(x, k) is not None]
        out[k] = statistics.fmean(values) if values else None
    return out


def make_plan(config: PlanConfig, out: Path, log: Log, progress_factory=None, config_path: str = "") -> PlanRun:
    """The whole ``cqsignal plan`` run: every period, validation, export, report."""
    t0 = time.perf_counter()
    ctx = resolve(config)
    for note in ctx.clearance_notes:
        log(f"clearance: {note}")
    calibrated = calibrate_demand(ctx, out, log)
    periods, rows = {}, []
    for period in config.periods:
        method = config.method_of(period)
        log(f"{period}: {method}")
        if progress_factory is not None and method == "optimise":
            with progress_factory(f"optimise {period}") as advance:
                pp, row = period_plan(ctx, period, method, log, progress=advance)
        else:
            pp, row = period_plan(ctx, period, method, log)
        periods[period] = pp
        rows.append(row)
    plan = Plan(network=config.network, periods=periods)
    files, switch_log = export(ctx, plan, out, log)
    header = {"config": config_path, "network": config.network,
              "periods": ", ".join(f"{p} ({periods[p].method})" for p in periods),
              "schedule": ", ".join(f"{t // 3600:02d}:{t % 3600 // 60:02d} {p}" for t, p in ctx.switches),
              "corridor": " - ".join(ctx.corridor.signals),
              "constraints": config.constraints.model_dump_json(),
              "demand": "; ".join(ctx.demand(p).describe() for p in periods),
              "plan wall time": f"{time.perf_counter() - t0:.0f} s (before the report's simulations)"}
    if calibrated is not None:
        files["demand"] = calibrated
    files["report"] = report(ctx, plan, out, switch_log, header, log)
    return PlanRun(plan=plan, files=files, switch_log=switch_log, wall_s=time.perf_counter() - t0, summary=rows)


def distil_plan(config: PlanConfig, model: str, out: Path, log: Log, config_path: str = "") -> PlanRun:
    """``cqsignal plan --from-model``: a fixed plan per period from a policy's cycle and shares, and the gap."""
    from engine.controllers.loading import load_controller
    from engine.loop import LoopOptions
    from engine.plan.distil import distilled_period_plan, record_usage

    t0 = time.perf_counter()
    ctx = resolve(config)
    calibrated = calibrate_demand(ctx, out, log)
    cfg = config
    periods, rows = {}, []
    for period in cfg.periods:
        evaluator = PlanEvaluator(ctx.period_scenario(period), cfg.evaluation.seeds,
                                  cfg.evaluation.duration_s, cfg.evaluation.scale, cfg.evaluation.stops_weight,
                                  workdir=Path(tempfile.mkdtemp(prefix=f"cqsignal-distil-{period}-")))
        scenarios = [evaluator.scenario(s) for s in evaluator.seeds]
        controller = load_controller(model, scenarios[0])
        log(f"{period}: recording {controller.name} on seeds {list(evaluator.seeds)}")
        trained = getattr(controller, "options", None)  # a learned policy runs with its training timing
        options = LoopOptions(delta=int(trained.delta), min_green=float(trained.min_green),
                              max_green=float(trained.max_green)) if trained is not None else LoopOptions()
        usage, policy_kpis = record_usage(controller, scenarios, ctx.intersections, options)
        pp = distilled_period_plan(period, usage, ctx.intersections, cfg.constraints, ctx.corridor,
                                   cfg.optimiser.seed, ctx.band_weights(ctx.flows(period)))
        validate_period(pp, ctx.intersections, cfg.constraints)
        plan_eval = evaluator.run(pp, ctx.intersections)
        policy_delay = statistics.fmean(k.mean_delay_s for k in policy_kpis)
        gap = plan_eval.mean_delay - policy_delay
        pp.notes.update(policy=controller.name, policy_delay_s=round(policy_delay, 2),
                        plan_delay_s=round(plan_eval.mean_delay, 2), gap_s=round(gap, 2),
                        gap_pct=round(100 * gap / policy_delay, 1) if policy_delay else None)
        log(f"{period}: policy {policy_delay:.1f} s/veh, distilled plan {plan_eval.mean_delay:.1f} s/veh "
            f"(gap {gap:+.1f} s/veh), cycle {pp.cycle:g} s")
        periods[period] = pp
        rows.append({"period": period, "method": "distilled", "cycle": pp.cycle, "policy": controller.name,
                     "policy_delay_s": policy_delay, "plan_delay_s": plan_eval.mean_delay, "gap_s": gap,
                     "band_forward_s": pp.notes.get("band_forward_s"),
                     "band_backward_s": pp.notes.get("band_backward_s")})
    plan = Plan(network=cfg.network, periods=periods)
    files, switch_log = export(ctx, plan, out, log)
    header = {"config": config_path, "network": cfg.network, "distilled from": model,
              "periods": ", ".join(periods), "corridor": " - ".join(ctx.corridor.signals),
              "demand": "; ".join(ctx.demand(p).describe() for p in periods),
              "plan wall time": f"{time.perf_counter() - t0:.0f} s (before the report's simulations)"}
    if calibrated is not None:
        files["demand"] = calibrated
    files["report"] = report(ctx, plan, out, switch_log, header, log)
    return PlanRun(plan=plan, files=files, switch_log=switch_log, wall_s=time.perf_counter() - t0, summary=rows)
