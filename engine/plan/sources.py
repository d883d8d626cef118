"""Where each planned period's demand comes from: the network's demand file, a calibrated twin, or counts.

A period's demand (config ``demand.<period>``) is one of

* the network's declared period-of-day demand (``demand.yaml``), the default;
* ``twin``: a folder written by ``cqsignal calibrate``; its route files are the
  demand and its ``network.yaml`` says which time of day its time 0 is (the
  counts' start less the warm-up), or ``window`` does for a folder without one;
* ``counts``: a counts file, checked here and calibrated by
  :func:`engine.calibrate.calibrate` into the plan's output folder
  (``demand/<period>/``) by :func:`calibrate_periods`; then it is such a twin.

:func:`resolve_demands` checks every period's source before any simulation (a
missing folder, counts of another network, a period without demand, a window
outside the counts, an evaluation longer than the routes) and raises one
:class:`ConfigError` naming the config field and the file. Design flows of a
route-file period come from :func:`engine.plan.webster_plan.route_design_flows`
over the period's window; its evaluation runs start ``warm-up`` seconds before it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from engine.errors import ConfigError, CqSignalError
from engine.plan.config import DemandSource, PlanConfig
from engine.scenario import Scenario
from engine.yamlfile import read_yaml

Flows = dict[tuple[str, str], float]
DEMAND_DIR = "demand"  # counts are calibrated into OUT/demand/<period>/


@dataclass(frozen=True)
class PeriodDemand:
    """One period's demand and when it runs.

    Times: ``window`` is the time of day (s since midnight); the routes' own time t
    is the time of day ``offset + t``; they hold demand for t in [0, ``span``).
    """

    period: str
    kind: str  # "network" (the demand file), "twin" or "counts"
    window: tuple[float, float]
    source: Path | None = None  # the twin folder or the counts file
    routes: tuple[Path, ...] = ()  # route files (counts: once calibrated)
    offset: float = 0.0  # s
    warmup: float = 0.0  # s of demand simulated before the window
    span: float = 0.0  # s
    options: DemandSource | None = None
    note: str = ""  # for the report, e.g. the calibration's verdict

    @property
    def design_window(self) -> tuple[float, float]:
        """The period's window in the routes' time (s): its design flows come from these departures."""
        return self.window[0] - self.offset, self.window[1] - self.offset

    @property
    def begin(self) -> float:
        """Routes' time (s) an evaluation run starts: the warm-up before the window."""
        return max(0.0, self.design_window[0] - self.warmup)

    @property
    def clock(self) -> tuple[int, int]:
        """The window in whole seconds since midnight (the WAUT's switching times)."""
        return round(self.window[0]), round(self.window[1])

    def scenario(self, base: Scenario) -> Scenario:
        """``base`` (the plan's network) running this period's demand."""
        if self.kind == "network":
            return base.with_options(period=self.period)
        if not self.routes:
            raise RuntimeError(f"period {self.period}: counts not calibrated yet (calibrate_periods)")
        routed = dataclasses.replace(base, route_files=self.routes, demand_file=None)
        return routed.with_options(period=self.period, begin=self.begin)

    def flows(self, base: Scenario, scale: float, design: str) -> Flows:
        """Design movement flows (veh/h) of the period (:mod:`engine.plan.webster_plan`)."""
        from engine.plan.webster_plan import design_flows, route_design_flows

        if self.kind == "network":
            return design_flows(base.demand_file, base.net_file, self.period, scale, design)
        return route_design_flows(self.routes, base.net_file, *self.design_window, scale, design)

    def describe(self) -> str:
        """One line for the report: source and window."""
        span = f"{_hhmm(self.window[0])}-{_hhmm(self.window[1])}"
        if self.kind == "network":
            return f"{self.period}: network demand file, {span}"
        return f"{self.period}: {self.kind} {self.source}, {span}" + (f" ({self.note})" if self.note else "")


def resolve_demands(config: PlanConfig, base: Scenario) -> dict[str, PeriodDemand]:
    """Every period's demand, checked (files, network, windows, durations) before any simulation;
    a ConfigError names the config file (when the config was read from one) and the field."""
    out: dict[str, PeriodDemand] = {}
    try:
        for period in config.periods:
            source = config.demand.get(period)
            if source is None:
                out[period] = _declared(config, base, period)
            elif source.twin is not None:
                out[period] = _twin(period, source, base, config.network)
            else:
                out[period] = _counts(period, source, base)
            _check_durations(config, out[period])
    except ConfigError as exc:
        raise ConfigError(config.where(str(exc))) from None
    return out


def _declared(config: PlanConfig, base: Scenario, period: str) -> PeriodDemand:
    from engine.demand import check_demand_file, period_window

    if base.demand_file is None:
        raise ConfigError(f"periods: {period!r} has no demand: network {config.network!r} declares none "
                          f"(no demand file in its network.yaml); give demand.{period}.twin or "
                          f"demand.{period}.counts")
    # the whole file against the network now, not when the period is first routed (after other work)
    return PeriodDemand(period, "network", period_window(check_demand_file(base.demand_file, base.net_file), period))


def _twin(period: str, source: DemandSource, base: Scenario, network: str) -> PeriodDemand:
    from engine.calibrate.pipeline import twin_clock

    where, folder = f"demand.{period}.twin", Path(source.twin)
    if not folder.is_dir():
        raise ConfigError(f"{where}: {folder}: no such folder (give one written by `cqsignal calibrate`)")
    try:
        twin = Scenario.of_network(folder)
        clock = twin_clock(read_yaml(folder / "network.yaml", "network description"))
    except CqSignalError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if not twin.route_files:
        raise ConfigError(f"{where}: {folder / 'network.yaml'} lists no route files (routes:)")
    if twin.fingerprint() != base.fingerprint():
        raise ConfigError(f"{where}: {folder} is a twin of another network: its signals or lanes differ "
                          f"from those of {network!r}")
    window = source.clock_window()
    if clock is not None:
        start, end, warmup = clock
    elif window is None:
        raise ConfigError(f"{where}: {folder / 'network.yaml'} has no calibration window (not written by "
                          f"`cqsignal calibrate`); give demand.{period}.window (its start is the twin's time 0)")
    else:
        start, end, warmup = window[0], window[0] + twin.end, 0.0
    window = window or (start, end)
    if window[0] < start or window[1] > end:
        raise ConfigError(f"demand.{period}.window: {source.window} is outside the twin's counts "
                          f"({_hhmm(start)}-{_hhmm(end)}) in {folder}")
    demand = PeriodDemand(period, "twin", window, folder, twin.route_files, offset=start - warmup, warmup=warmup,
                          span=twin.end, options=source)
    _check_vehicles(demand, base, where)
    return demand


def _counts(period: str, source: DemandSource, base: Scenario) -> PeriodDemand:
    from engine.calibrate.counts import read_counts
    from engine.calibrate.pipeline import check_counts, straddle, uncovered

    where = f"demand.{period}.counts"
    window = source.clock_window()
    try:
        counts = read_counts(source.counts) if window is not None else None
    except CqSignalError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    gap = uncovered(counts, *window) if counts is not None else None
    if gap is not None:  # outside the counts (or in a gap between them) the calibrated demand would be 0
        raise ConfigError(f"demand.{period}.window: {source.window} is not covered by the counts in "
                          f"{source.counts} ({_hhmm(counts.begin)}-{_hhmm(counts.end)}): no count lies inside "
                          f"{_hhmm(gap[0])}-{_hhmm(gap[1])}{straddle(counts, gap)}, where period {period} would "
                          "have no demand; give a window inside the counts")
    try:
        checked = check_counts(source.counts, base.net_file, *(window or (None, None)), source.warmup_s,
                               source.bus_share)
    except CqSignalError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if not any(c.value > 0 for c in checked.counts.counts):
        raise ConfigError(f"{where}: {source.counts}: every count in {_hhmm(checked.start)}-"
                          f"{_hhmm(checked.start + checked.window)} is 0: period {period} would have no demand")
    return PeriodDemand(period, "counts", (checked.start, checked.start + checked.window), Path(source.counts),
                        offset=checked.offset, warmup=checked.warmup, span=checked.duration, options=source)


def _check_vehicles(demand: PeriodDemand, base: Scenario, where: str) -> None:
    from engine.controllers.demand_flows import route_file_flows

    if not route_file_flows(demand.routes, base.net_file, *demand.design_window):
        raise ConfigError(f"{where}: no vehicle of {demand.source} departs in {demand.period}'s window "
                          f"{_hhmm(demand.window[0])}-{_hhmm(demand.window[1])}: the period has no demand")


def _check_durations(config: PlanConfig, demand: PeriodDemand) -> None:
    """Evaluation and report runs must fit in the routes' demand (ConfigError naming the field)."""
    if demand.kind == "network":
        return
    report = config.report
    checks = [("evaluation.duration_s", config.evaluation.duration_s)]
    if report.enabled and demand.period in (report.periods or config.periods):
        checks.append(("report.duration_s", report.duration_s or config.evaluation.duration_s))
    available = demand.span - demand.begin
    for key, duration in checks:
        if duration > available + 1e-6:
            raise ConfigError(f"{key}: {duration:g} s is longer than period {demand.period}'s demand: "
                              f"{available:g} s of routes from {_hhmm(demand.offset + demand.begin)} (the "
                              f"warm-up before the window) in {demand.kind} {demand.source}")


def calibrate_periods(demands: Mapping[str, PeriodDemand], network: str, folder: Path,
                      log: Callable[[str], None]) -> dict[str, PeriodDemand]:
    """``demands`` with every counts period calibrated into ``folder/<period>/`` (a twin each)."""
    from engine.calibrate.pipeline import calibrate

    out = dict(demands)
    for period, d in demands.items():
        if d.kind != "counts" or d.routes:
            continue
        log(f"{period}: calibrating demand to {d.source} ({_hhmm(d.window[0])}-{_hhmm(d.window[1])})")
        opts = d.options or DemandSource(counts=d.source)
        result = calibrate(d.source, network=network, out=Path(folder) / period, begin=d.window[0],
                           end=d.window[1], seed=opts.seed, bus_share=opts.bus_share, warmup=d.warmup,
                           log=lambda msg, p=period: log(f"{p} demand: {msg}"))
        verdict = result.summary.verdict()
        log(f"{period} demand: {verdict}" + ("" if result.summary.passed else " (warning: the plan uses it anyway)"))
        twin = Scenario.of_network(result.out)
        note = f"calibrated into {DEMAND_DIR}/{period}/: {verdict}"
        out[period] = dataclasses.replace(d, routes=twin.route_files, note=note)
        _check_vehicles(out[period], twin, f"demand.{period}.counts")
    return out


def source_files(config: PlanConfig) -> list[Path]:
    """The files the config's demand sources read (for the output's manifest); unreadable ones left out."""
    from engine.outputs import scenario_files

    files: list[Path] = []
    for source in config.demand.values():
        if source.counts is not None:
            files.append(Path(source.counts))
            continue
        try:
            files += [Path(source.twin) / "network.yaml", *scenario_files(Scenario.of_network(source.twin))]
        except CqSignalError:
            pass  # resolve_demands names the problem
    return files


def _hhmm(t: float) -> str:
    """Clock time of ``t`` s since midnight (a window past midnight wraps)."""
    from engine.calibrate.counts import clock

    return clock(t % 86400)
