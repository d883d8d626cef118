"""``cqsignal twin`` configuration (YAML, validated by pydantic; one-line errors naming the field)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from engine.yamlfile import read_yaml
from engine.errors import ConfigError
from engine.twin.field import FieldSpec, time_of_day

Level = Literal["low", "mean", "high"]
CONTROLLERS = ("twin", "oracle", "tod", "actuated", "max_pressure")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Candidates(_Strict):
    tod: bool = True  # the time-of-day plans
    retime: bool = True  # Webster and green-wave plans for the forecast flows
    cycle_factors: tuple[float, ...] = (0.85, 1.15)  # green wave on these multiples of its cycle


class TwinSettings(_Strict):
    """How the twin decides (times in s, multiples of the 300 s count interval)."""

    interval_s: float = Field(600.0, ge=300, le=3600)  # between decisions
    horizon_s: float = Field(1800.0, ge=300, le=3600)  # what each decision looks ahead
    forecast: Literal["ets", "last", "profile"] = "ets"
    level: float = Field(80.0, gt=0, lt=100)  # % prediction interval: the low and high demand
    start: Literal["state", "counts"] = "state"  # what-if from the field's saved state, or counts only
    warmup_s: float = Field(900.0, ge=300, le=3600)  # counts-only: how much counted demand loads the network
    screening: Literal["meso", "micro", "none"] = "meso"  # first pass over every candidate
    screen_levels: tuple[Level, ...] = ("low", "mean", "high")
    finalists: int = Field(3, ge=1, le=20)  # best of the screening re-run in the microscopic model
    levels: tuple[Level, ...] = ("mean",)  # demand levels the finalists are run at
    min_gain: float = Field(0.05, ge=0, lt=1)  # switch only for a forecast delay this much lower (share)
    candidates: Candidates = Candidates()
    workers: int = Field(2, ge=1, le=64)

    @model_validator(mode="after")
    def _multiples(self) -> TwinSettings:
        for name in ("interval_s", "horizon_s"):
            v = getattr(self, name)
            if v % 300:
                raise ValueError(f"{name}: {v:g} s is not a multiple of the 300 s count interval")
        if not self.levels:
            raise ValueError("levels: at least one demand level")
        return self


class FeedFault(_Strict):
    """A fault injected into the field's feed (see :class:`engine.twin.detectors.FaultyFeed`)."""

    kind: Literal["gap", "late", "duplicate", "dead", "clock_jump"]
    edges: tuple[str, ...] = ()  # empty: every count location
    start: float
    duration_s: float = Field(gt=0, le=86400)
    shift_s: float = 3600.0  # clock_jump only

    @field_validator("start", mode="before")
    @classmethod
    def _start(cls, v: object) -> float:
        return time_of_day(v, "feed_faults.start")


class TwinConfig(_Strict):
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
    baselines: tuple[Literal["tod", "actuated", "max_pressure", "oracle"], ...] = ("tod", "actuated", "max_pressure")
    feed_faults: tuple[FeedFault, ...] = ()  # break the field's feed on purpose (gaps, dead loops, ...)


def load_twin_config(path: str | Path) -> TwinConfig:
    """Read and validate ``path``; relative paths in it are relative to the working directory.

    ConfigError (one line, naming the file and field) for a missing file, bad YAML or a bad value.
    """
    path = Path(path)
    raw = read_yaml(path, "twin config")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of settings")
    try:
        cfg = TwinConfig.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "config"
        raise ConfigError(f"{path}: {where}: {err['msg']}") from None
    for name in ("plans", "plan_config"):
        p = getattr(cfg, name)
        if not p.is_file():
            raise ConfigError(f"{path}: {name}: file not found: {p}")
    return cfg
