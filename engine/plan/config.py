"""The plan config (YAML), validated by pydantic: an unknown key or bad value is one line naming it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, PrivateAttr, ValidationError, field_validator, model_validator

from engine.calibrate.counts import parse_time
from engine.yamlfile import ConfigModel, read_yaml
from engine.errors import ConfigError, CqSignalError, listed
from engine.scenario import MAX_DURATION_S, MAX_SEED

MAX_SEED_COUNT = 10_000

Method = Literal["webster", "green_wave", "optimise"]


Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]  # SUMO's --seed is a 32-bit signed integer


class Constraints(ConfigModel):
    """Hard limits every plan obeys (validation refuses a plan that breaks one)."""

    cycle_min_s: int = Field(60, ge=10)
    cycle_max_s: int = Field(180, ge=10, le=600)
    cycle_step_s: int = Field(1, ge=1, le=30)  # cycles are cycle_min_s + a multiple of this
    min_green_s: float = Field(7.0, ge=1)
    # Green phases that run a through movement carry the parallel pedestrian crossing.
    pedestrian_min_s: float | None = Field(15.0, ge=1)
    pedestrian_min_by_signal: dict[str, float] = Field(default_factory=dict)
    yellow_s: float = Field(3.0, ge=0)
    all_red_s: float = Field(2.0, ge=0)

    @model_validator(mode="after")
    def _bounds(self) -> Constraints:
        if self.cycle_max_s < self.cycle_min_s:
            raise ValueError(f"cycle_max_s ({self.cycle_max_s}) < cycle_min_s ({self.cycle_min_s})")
        return self


class Corridor(ConfigModel):
    """The coordinated route: signals in order and the speed platoons progress at."""

    signals: list[str] | None = None  # default: the network's signal list, in order
    progression_speed_kmh: float | None = Field(None, gt=5, le=120)  # None: each link's speed limit
    speed_factor: float = Field(1.0, gt=0.3, le=1.5)  # times the limit when no speed is given
    # band weight (forward, backward); None: the period's arterial through volumes
    direction_weights: tuple[float, float] | None = None


class Evaluation(ConfigModel):
    """How plans are simulated (search and before/after tables)."""

    duration_s: float = Field(1800.0, gt=0, le=MAX_DURATION_S)
    seeds: list[Seed] = Field(default_factory=lambda: [1, 2], min_length=1, max_length=MAX_SEED_COUNT)
    scale: float = Field(1.0, gt=0)
    stops_weight: float = Field(0.0, ge=0)  # objective = mean delay + w * mean stops
    workers: int = Field(1, ge=1, le=256)  # simulations at once (one process each)
    ray: str | None = Field(None, min_length=1)  # run them on this Ray cluster ('auto', 'ray://...', 'local')


class Optimiser(ConfigModel):
    """Budget and search space of the ``optimise`` method."""

    sampler: Literal["tpe", "cmaes", "random"] = "tpe"
    trials: int = Field(30, ge=1, le=10000)
    seed: int = Field(0, ge=0, le=MAX_SEED)
    bias_range: tuple[float, float] = (0.7, 1.5)  # weight of the arterial's coordinated phases
    turn_bias_range: tuple[float, float] = (0.7, 1.6)  # weight of turn-only (protected left) phases
    speed_factor_range: tuple[float, float] = (0.7, 1.2)
    forward_weight_range: tuple[float, float] = (0.0, 1.0)  # share of the forward direction in the offsets
    offset_shift_s: float = Field(0.0, ge=0)  # +- per-signal offset tweak (0: none)
    refine_trials: int = Field(0, ge=0, le=10000)  # local moves tried after the sampled trials (0: none)
    refine_offset_s: float = Field(8.0, ge=0)  # first step of a signal's offset move (0: no offset moves)
    refine_green_s: float = Field(4.0, ge=0)  # first green moved between two phases (0: no green moves)
    search_seeds: int | None = Field(None, ge=1)  # trials use the first n evaluation seeds (None: all)
    finalists: int = Field(3, ge=1)  # best trials re-scored on every evaluation seed (with the start)
    try_right_turn_overlaps: bool = False  # the final round also scores plans with right-turn overlaps
    overlap_twins: Literal["finalists", "winner"] = "finalists"  # which: each finalist, or the winner only
    timeout_s: float | None = Field(None, gt=0)


class Report(ConfigModel):
    """Before/after tables: which periods and seeds to simulate for them. ``enabled: false`` (or
    ``--no-report``) skips these simulations; report.html then holds the time–space diagrams only."""

    enabled: bool = True
    periods: list[str] | None = None  # default: every planned period
    seeds: list[Seed] = Field(default_factory=lambda: [1], min_length=1, max_length=MAX_SEED_COUNT)
    duration_s: float | None = Field(None, gt=0, le=MAX_DURATION_S)  # default: evaluation.duration_s
    diagram_cycles: int = Field(3, ge=1, le=10)


DAY_S = 86400


def parse_window(text: str) -> tuple[float, float]:
    """(start, end) in seconds since midnight of a time-of-day window ``'HH:MM-HH:MM'`` (or
    ``HH:MM:SS``, or seconds); an end before the start runs past midnight (end + 86,400 s)."""
    parts = text.split("-")
    try:
        if len(parts) != 2:
            raise ConfigError(text)
        start, end = (parse_time(p, "window") for p in parts)
    except ConfigError:
        raise ValueError(f"expected a time-of-day window 'HH:MM-HH:MM', got {text!r}") from None
    if end == start:
        raise ValueError(f"empty window {text!r}")
    return start, end + DAY_S if end < start else end


class DemandSource(ConfigModel):
    """A period's demand from counts: a twin folder written by ``cqsignal calibrate``, or a counts
    file that the plan calibrates itself (give one). Relative paths are from the config's folder."""

    twin: Path | None = None  # folder written by `cqsignal calibrate`: its routes are the demand
    counts: Path | None = None  # counts CSV or SUMO XML, calibrated into OUT/demand/<period>/
    window: str | None = None  # time of day 'HH:MM-HH:MM'; default: the twin's or the counts' whole window
    seed: Seed = 1  # counts: routeSampler's seed
    warmup_s: float = Field(900.0, ge=0, le=MAX_DURATION_S)  # counts: s of first-interval demand before them
    bus_share: float = Field(0.0, ge=0, le=1)  # counts: share of sampled vehicles that are buses

    @model_validator(mode="after")
    def _one_source(self) -> DemandSource:
        if (self.twin is None) == (self.counts is None):
            raise ValueError("give one of twin (a folder written by `cqsignal calibrate`) or counts (a counts file)")
        calibration = sorted({"seed", "warmup_s", "bus_share"} & self.model_fields_set)
        if self.twin is not None and calibration:
            raise ValueError(f"{calibration[0]}: only for counts (a twin is calibrated already)")
        return self

    @field_validator("window")
    @classmethod
    def _window(cls, text: str | None) -> str | None:
        if text is not None:
            parse_window(text)
        return text

    def clock_window(self) -> tuple[float, float] | None:
        """The configured time-of-day window (s since midnight), or None."""
        return parse_window(self.window) if self.window is not None else None


class PlanConfig(ConfigModel):
    """One ``cqsignal plan`` run."""

    network: str = "chongqing"
    periods: list[str] = Field(default_factory=lambda: ["am_peak", "midday", "pm_peak", "night"], min_length=1)
    schedule: list[str] | None = None  # periods the WAUT switches between by time of day; default: periods
    method: Method = "green_wave"
    methods: dict[str, Method] = Field(default_factory=dict)  # per-period override
    design_flow: Literal["peak_15min", "hourly"] = "peak_15min"
    constraints: Constraints = Constraints()
    corridor: Corridor = Corridor()
    evaluation: Evaluation = Evaluation()
    optimiser: Optimiser = Optimiser()
    report: Report = Report()
    # per period: demand from a calibrated twin or counts; a period not listed uses the network's demand file
    demand: dict[str, DemandSource] = Field(default_factory=dict)
    _source: Path | None = PrivateAttr(None)  # the file it was read from (load_plan_config), for messages

    @property
    def source(self) -> Path | None:
        """The config file this was read from (None when built in code)."""
        return self._source

    def where(self, field: str) -> str:
        """``FILE: field`` for a message about ``field`` (just ``field`` without a file)."""
        return f"{self._source}: {field}" if self._source is not None else field

    @model_validator(mode="after")
    def _periods(self) -> PlanConfig:
        if len(set(self.periods)) != len(self.periods):
            raise ValueError("periods: listed twice")
        schedule = self.schedule or []
        twice = [p for i, p in enumerate(schedule) if p in schedule[:i]]
        if twice:
            raise ValueError(f"schedule: period {twice[0]!r} is listed twice (the day plan switches to each "
                             "period once, at the start of its time-of-day window)")
        for key, names in (("methods", list(self.methods)), ("schedule", self.schedule or []),
                           ("report.periods", self.report.periods or []), ("demand", list(self.demand))):
            stray = [p for p in names if p not in self.periods]
            if stray:
                raise ValueError(f"{key}: period {stray[0]!r} is not in periods")
        return self

    def method_of(self, period: str) -> Method:
        return self.methods.get(period, self.method)

    def with_base(self, folder: Path) -> PlanConfig:
        """This config with the relative paths of ``demand`` taken from ``folder`` (the config file's)."""
        if not self.demand:
            return self
        demand = {p: s.model_copy(update={k: Path(folder) / v for k in ("twin", "counts")
                                          if (v := getattr(s, k)) is not None})
                  for p, s in self.demand.items()}
        return self.model_copy(update={"demand": demand})


def load_plan_config(path: str | Path) -> PlanConfig:
    """Read and validate a plan config; ConfigError naming the file and field on any problem."""
    path = Path(path)
    raw = read_yaml(path, "plan config")
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of settings")
    try:
        config = PlanConfig.model_validate(raw).with_base(path.parent)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {_first_error(exc)}") from None
    config._source = path
    check_network(config)
    return config


def check_network(config: PlanConfig) -> None:
    """What the config names on its network, before any work (ConfigError naming the config file and
    field): the network itself and the corridor's signals (signals of the network, each once)."""
    from engine.network import read_intersections
    from engine.scenario import Scenario

    try:
        net_file = Scenario.of_network(config.network).net_file
        signals = read_intersections(net_file)
    except CqSignalError as exc:
        raise ConfigError(f"{config.where('network')}: {exc}") from None
    chosen = config.corridor.signals or []
    unknown = [s for s in chosen if s not in signals]
    if unknown:
        raise ConfigError(f"{config.where('corridor.signals')}: {unknown[0]!r} is not a signal of {net_file.name} "
                          f"(its signals: {listed(list(signals))})")
    twice = [s for i, s in enumerate(chosen) if s in chosen[:i]]
    if twice:
        raise ConfigError(f"{config.where('corridor.signals')}: {twice[0]!r} is listed twice")


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    if err["type"] == "extra_forbidden":
        return f"{where}: unknown key"
    msg = err["msg"].removeprefix("Value error, ")
    value = err.get("input")
    shown = "" if isinstance(value, dict) or err["type"] == "value_error" else f" (got {value!r})"
    return f"{where}: {msg}{shown}" if where else f"{msg}{shown}"
