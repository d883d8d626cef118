"""``cqsignal twin`` configuration (YAML, validated by pydantic; one-line errors naming the field)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from engine.calibrate.counts import clock
from engine.errors import ConfigError, listed
from engine.twin.field import FieldSpec, entries_problem, incident_problem, time_of_day
from engine.yamlfile import ConfigModel, read_yaml

Level = Literal["low", "mean", "high"]
CONTROLLERS = ("twin", "twin_actuated", "oracle", "tod", "actuated", "max_pressure")


class Candidates(ConfigModel):
    """Which plans each decision considers beside the running one."""

    tod: bool = True  # the time-of-day plans
    retime: bool = True  # Webster and green-wave plans for the forecast flows
    # green wave on these multiples of its cycle (then held within the plan config's cycle limits)
    cycle_factors: tuple[Annotated[float, Field(gt=0, le=3)], ...] = (0.85, 1.15)


class TwinSettings(ConfigModel):
    """How the twin decides (times in s, multiples of the 300 s count interval)."""

    interval_s: float = Field(600.0, ge=300, le=3600)  # between decisions
    horizon_s: float = Field(1800.0, ge=300, le=3600)  # what each decision looks ahead
    forecast: Literal["ets", "last", "profile"] = "ets"
    level: float = Field(80.0, gt=0, lt=100)  # % prediction interval: the low and high demand
    start: Literal["state", "counts"] = "state"  # what-if from the field's saved state, or counts only
    warmup_s: float = Field(900.0, ge=300, le=3600)  # counts-only: how much counted demand loads the network
    # a first pass over every candidate, then ``finalists`` in the microscopic model; "none": every
    # candidate in the microscopic model (on the corridor the mesoscopic model ranks long cycles too low);
    # "race": every candidate in the microscopic model, the worse half dropped at each of ``race_s``
    screening: Literal["meso", "micro", "race", "none"] = "none"
    screen_levels: tuple[Level, ...] = ("low", "mean", "high")
    finalists: int = Field(3, ge=1, le=20)  # best of the screening re-run in the microscopic model
    # race checkpoints, s after the decision: there the candidates behind the better half stop
    # (empty: a third and two thirds into the horizon)
    race_s: tuple[Annotated[float, Field(gt=0)], ...] = ()
    levels: tuple[Level, ...] = ("mean",)  # demand levels the finalists are run at
    # an entry loop this occupied (%) stands in a queue: its count is raised to the demand's trend
    censored_occupancy: float | None = Field(50.0, gt=0, le=100)
    min_gain: float = Field(0.05, ge=0, lt=1)  # switch only for a forecast delay this much lower (share)
    prefer_schedule: bool = True  # leave the scheduled time-of-day plan only for min_gain over it
    candidates: Candidates = Candidates()
    workers: int = Field(2, ge=1, le=64)

    @field_validator("screen_levels", "levels")
    @classmethod
    def _some_levels(cls, v: tuple[str, ...], info) -> tuple[str, ...]:
        if not v:
            raise ValueError(f"{info.field_name}: at least one demand level (low, mean, high)")
        return v

    @model_validator(mode="after")
    def _multiples(self) -> TwinSettings:
        for name in ("interval_s", "horizon_s"):
            v = getattr(self, name)
            if v % 300:
                raise ValueError(f"{name}: {v:g} s is not a multiple of the 300 s count interval")
        for v in self.race_s:
            if v % 300 or v >= self.horizon_s:
                raise ValueError(f"race_s: {v:g} s must be a multiple of the 300 s count interval "
                                 f"and shorter than horizon_s ({self.horizon_s:g} s)")
        if list(self.race_s) != sorted(set(self.race_s)):
            raise ValueError(f"race_s: {list(self.race_s)} must increase")
        return self

    @property
    def checkpoints(self) -> tuple[float, ...]:
        """Race checkpoints (s after the decision): ``race_s``, else a third and two thirds into the
        horizon, in whole count intervals."""
        if self.race_s:
            return tuple(self.race_s)
        step = 300.0
        marks = {math.floor(self.horizon_s * k / 3 / step) * step for k in (1, 2)}
        return tuple(sorted(m for m in marks if 0 < m < self.horizon_s))


class FeedFault(ConfigModel):
    """A fault injected into the field's feed (see :class:`engine.twin.detectors.FaultyFeed`)."""

    kind: Literal["gap", "late", "duplicate", "dead", "clock_jump"]
    edges: tuple[str, ...] = ()  # empty: every count location
    start: float
    duration_s: float = Field(gt=0, le=86400)
    shift_s: float = Field(3600.0, ge=-86400, le=86400)  # clock_jump only

    @field_validator("start", mode="before")
    @classmethod
    def _start(cls, v: object) -> float:
        return time_of_day(v, "start")


class TwinConfig(ConfigModel):
    """A scenario for the closed loop: the field, the plans the city runs, how the twin decides."""

    name: str = "twin"
    description: str = ""
    network: str = "chongqing"
    plans: Path  # time-of-day plans (plan.json of `cqsignal plan`)
    plan_config: Path  # its config: constraints, corridor and the WAUT schedule
    field: FieldSpec
    seed: int = Field(1, ge=0, le=2**31 - 1)  # the field's demand seed
    history_seed: int = Field(100000, ge=0, le=2**31 - 1)  # the normal day the profile is counted on
    twin: TwinSettings = TwinSettings()
    baselines: tuple[Literal["tod", "actuated", "max_pressure", "oracle", "twin_actuated"], ...] = (
        "tod", "actuated", "max_pressure")
    feed_faults: tuple[FeedFault, ...] = ()  # break the field's feed on purpose (gaps, dead loops, ...)

    @model_validator(mode="after")
    def _known_period(self) -> TwinConfig:
        from engine.demand import PERIODS

        if self.field.period not in PERIODS:
            raise ValueError(f"field.period: unknown period {self.field.period!r} (choose from {', '.join(PERIODS)})")
        return self

    @model_validator(mode="after")
    def _window_holds_a_decision(self) -> TwinConfig:
        # the first decision comes interval_s after the window's start, and only inside the window
        begin, end = self.field.window
        interval = self.twin.interval_s
        if end - begin <= interval:
            than = "longer than" if end - begin < interval else "as long as"
            raise ValueError(f"twin.interval_s: {interval:g} s is {than} the field window {clock(begin)}-{clock(end)} "
                             f"({end - begin:g} s): the first decision would come at {clock(begin + interval)}, "
                             "so the twin would make none (the window must be longer than one interval)")
        return self


_HEAD = re.compile(r"^([A-Za-z_][\w]*)([^:]*): (.*)$", re.S)


def _message(err: Mapping) -> str:
    """``where: what`` of one pydantic error: its location (``twin.candidates.cycle_factors[0]``) joined
    with the field a validator's message begins with, and the value where pydantic's message lacks it."""
    loc = [str(p) for p in err["loc"]]
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err.get("type") == "extra_forbidden":
        return f"{_join(loc)}: unknown setting"
    m = _HEAD.match(msg) if err.get("type") == "value_error" else None
    if m:  # our own message names the field: relative to the model (model validators) or the field itself
        first, rest, what = m.groups()
        base = loc[:-1] if loc and loc[-1] == first else loc
        return f"{_join(base + [first])}{rest}: {what}"
    value = err.get("input")
    got = f" (got {value!r})" if isinstance(value, (int, float, str)) and not isinstance(value, bool) else ""
    return f"{_join(loc) or 'config'}: {msg}{got}"


def _join(loc: list[str]) -> str:
    out = ""
    for p in loc:
        out += f"[{p}]" if p.isdigit() else (f".{p}" if out else p)
    return out


def load_twin_config(path: str | Path) -> TwinConfig:
    """Read and validate ``path``; relative paths in it (``plans``, ``plan_config``, a ``network``
    path) are relative to the current working directory, not to the config's folder.

    ConfigError (one line, naming the file and field) for a missing file, bad YAML, a bad value
    (NaN and inf included) or a window too short for a decision. What needs the network (edges of
    the incident, the entries and the feed faults) is checked by :func:`check_against_network`.
    """
    path = Path(path)
    raw = read_yaml(path, "twin config")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of settings")
    try:
        cfg = TwinConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {_message(exc.errors()[0])}") from None
    _check_network_exists(cfg, path)
    for name in ("plans", "plan_config"):
        p = getattr(cfg, name)
        if not p.is_file():
            raise ConfigError(f"{path}: {name}: file not found: {p}")
    return cfg


def _check_network_exists(cfg: TwinConfig, path: Path) -> None:
    """``network`` names an embedded network or a readable network folder (ConfigError naming ``path``)."""
    import networks

    from engine.errors import CqSignalError
    from engine.scenario import Scenario

    if cfg.network not in networks.available() and not Path(cfg.network).exists():
        raise ConfigError(f"{path}: network: {cfg.network} not found (neither an embedded network: "
                          f"{', '.join(networks.available())}, nor a folder with network.yaml)")
    try:
        Scenario.of_network(cfg.network)
    except CqSignalError as exc:
        raise ConfigError(f"{path}: network: {exc}") from None


def check_against_network(cfg: TwinConfig, source: str | Path, net_file: Path, demand_file: Path | None,
                          signals: Mapping) -> None:
    """Check what the config names on the network before any simulation (ConfigError, one line
    naming ``source`` and the field): the window against the hours of ``field.period`` (they must
    overlap), the incident's edge, lane (one its vehicle may use) and position (``pos_m`` within the
    lane), the edges of ``field.entries`` (entries of the period's demand) and the edges of
    ``feed_faults`` (count locations of the loops on ``signals``, the resolved intersections).

    Call after :func:`engine.twin.closed_loop.resolve`, before the history run.
    """
    import sumolib

    from engine.demand import load_demand
    from engine.twin.detectors import count_locations

    if demand_file is None:
        raise ConfigError(f"{source}: network: {cfg.network} has no demand file (demand.yaml); the field needs one")
    spec = cfg.field
    period = load_demand(Path(demand_file)).period(spec.period)
    if not overlaps(spec.window, period.window):
        raise ConfigError(f"{source}: field.window: {clock(spec.window[0])}-{clock(spec.window[1])} lies outside the "
                          f"hours of field.period {spec.period} ({_hours(period.window)} in {demand_file}): the "
                          "field would run that period's demand at another time of day")
    net = sumolib.net.readNet(str(net_file))
    if spec.incident is not None:
        problem = _incident_lane_problem(spec.incident, net) or incident_problem(spec.incident, net,
                                                                                 Path(net_file).name)
        if problem is not None:
            raise ConfigError(f"{source}: field.{problem}")
    problem = entries_problem(spec, list(period.entries))
    if problem is not None:
        raise ConfigError(f"{source}: field.{problem}")
    counted = count_locations(net, signals)
    for i, fault in enumerate(cfg.feed_faults):
        for edge in fault.edges:
            if edge not in counted:
                raise ConfigError(f"{source}: feed_faults[{i}].edges: {edge!r} is not a count location "
                                  f"(the loops count: {listed(counted)})")


DAY_S = 86400.0


def overlaps(window: tuple[float, float], hours: tuple[float, float]) -> bool:
    """Whether a time-of-day ``window`` (s) overlaps a period's ``hours`` (s since midnight; the end is
    past 86,400 for a period past midnight, e.g. night 22:00-06:00, which also covers the early hours)."""
    begin, end = window
    start, stop = hours
    return any(begin < stop + shift and start + shift < end for shift in (-DAY_S, 0.0, DAY_S))


def _hours(hours: tuple[float, float]) -> str:
    return f"{clock(hours[0] % DAY_S)}-{clock(hours[1] % DAY_S)}"


INCIDENT_VCLASS = "passenger"  # the class of the incident's vehicle (engine.twin.field.write_incident's vType)


def _incident_lane_problem(incident, net) -> str | None:
    """``incident.lane: ...`` when the incident's lane is not one its vehicle may use (out of the
    edge's range, or a sidewalk, bike lane or other lane closed to it), naming the lanes it may use;
    None otherwise (and for an unknown edge, which :func:`incident_problem` names)."""
    if not net.hasEdge(incident.edge):
        return None
    lanes = net.getEdge(incident.edge).getLanes()
    usable = [lane.getIndex() for lane in lanes if lane.allows(INCIDENT_VCLASS)]
    closed = [lane for lane in lanes if not lane.allows(INCIDENT_VCLASS)]
    if not usable:
        return (f"incident.edge: no lane of {incident.edge} allows the incident's vehicle ({INCIDENT_VCLASS}): "
                f"{_lane_kinds(closed)}")
    choose = f"lanes {_ranges(usable)}" if not closed else f"lanes vehicles can use: {_ranges(usable)}"
    if incident.lane >= len(lanes):
        return f"incident.lane: {incident.lane} is not a lane of edge {incident.edge} ({choose})"
    if incident.lane not in usable:
        lane = lanes[incident.lane]
        return (f"incident.lane: lane {incident.lane} of edge {incident.edge} is {_lane_kind(lane)}: the incident's "
                f"vehicle ({INCIDENT_VCLASS}) may not stop there ({choose})")
    return None


def _lane_kind(lane) -> str:
    allowed = set(lane.getPermissions())
    if allowed <= {"pedestrian"}:
        return "a sidewalk" if allowed else "closed to all traffic"
    if allowed <= {"bicycle"}:
        return "a bike lane"
    if allowed <= {"pedestrian", "bicycle"}:
        return "a path for pedestrians and bicycles"
    shown = sorted(allowed)
    return f"for {', '.join(shown[:5])}{', ...' if len(shown) > 5 else ''} only"


def _lane_kinds(lanes) -> str:
    return ", ".join(f"lane {lane.getIndex()} is {_lane_kind(lane)}" for lane in lanes)


def _ranges(indices: list[int]) -> str:
    """``0..2`` for consecutive lane indices, else ``1, 3``."""
    if len(indices) > 1 and indices == list(range(indices[0], indices[-1] + 1)):
        return f"{indices[0]}..{indices[-1]}"
    return ", ".join(str(i) for i in indices)


