"""The benchmark config (YAML, validated): which controllers, networks, periods, seeds, scales.

Relative paths in a config (networks, routes, models) are read from the
config file's own folder, so a config works from any working directory.

Example::

    name: quick
    duration: 900                 # default: each scenario's own (a .sumocfg's end; else 3600)
    seeds: 3                      # or a list: [1, 2, 3]
    # max_depart_delay: 300       # drop vehicles that waited this long to enter (default: never)
    # time_to_teleport: 300       # SUMO's default; -1: never
    baseline: fixed
    controllers: [fixed, max_pressure, {name: ppo, model: ../agents/models/corridor_ppo.zip, optional: true}]
    scenarios:
      - network: chongqing
        periods: [am_peak]         # or: all
        scales: [0.8, 1.0, 1.2]    # a demand sweep
      - network: my/net.sumocfg    # bring your own network (its begin and end are kept)
      - {network: my.net.xml, routes: [am.rou.xml], begin: "07:00", duration: 3600}
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from engine.errors import ConfigError, CqSignalError
from engine.scenario import MAX_DURATION_S, MAX_SEED

_MODEL_SUFFIXES = (".zip",)
MAX_SEED_COUNT = 10_000


def _seed_list(value: Any) -> Any:
    """``seeds: 5`` means seeds 1 to 5."""
    if isinstance(value, int) and not isinstance(value, bool):
        if not 1 <= value <= MAX_SEED_COUNT:
            raise ValueError(f"a seed count must be between 1 and {MAX_SEED_COUNT:,}")
        return list(range(1, value + 1))
    return value


def _check_seeds(value: list[int]) -> list[int]:
    if not value or min(value) < 0 or len(set(value)) != len(value):
        raise ValueError("must be a non-empty list of distinct integers >= 0")
    if len(value) > MAX_SEED_COUNT:
        raise ValueError(f"at most {MAX_SEED_COUNT:,} seeds")
    if max(value) > MAX_SEED:
        raise ValueError(f"seed {max(value)} is outside SUMO's range 0..{MAX_SEED}")
    return value


def _time(value: Any) -> Any:
    """A time as seconds or 'HH:MM[:SS]'."""
    if value is None or isinstance(value, bool):
        return value
    from engine.scenario import parse_seconds

    try:
        return parse_seconds(value, "time")
    except CqSignalError as exc:
        raise ValueError(str(exc)) from None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class _SumoOptions(_Strict):
    """SUMO's drop and teleport options (None: the scenario's, else SUMO's defaults)."""

    max_depart_delay: float | None = None  # s; negative: never drop
    time_to_teleport: float | None = None  # s; <= 0: never teleport


class ControllerEntry(_Strict):
    """A heuristic by ``name``, or a learned policy from ``model`` labelled ``name``."""

    name: str = Field(min_length=1)
    model: str | None = None
    optional: bool = False  # a missing model file skips this controller with a note

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        if isinstance(value, str):
            if value.endswith(_MODEL_SUFFIXES) or "/" in value:
                return {"name": Path(value).name.removesuffix(".zip"), "model": value}
            return {"name": value}
        return value

    @field_validator("name")
    @classmethod
    def _label(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_.+-]+", value):
            raise ValueError(f"'{value}': use letters, digits and _ . + - only")
        return value


class ScenarioEntry(_SumoOptions):
    """A network (embedded name, folder, .sumocfg or .net.xml) and its demand axes."""

    network: str = Field(min_length=1)
    routes: list[str] = []
    label: str | None = None  # name in tables (default: the network's name)
    periods: list[str] | None = None  # None: the network's default; 'all': every period
    scales: list[float] | None = None  # None: the config's scales
    seeds: list[int] | None = None  # None: the config's seeds
    duration: float | None = Field(default=None, gt=0, le=MAX_DURATION_S)  # None: the config's
    begin: float | None = Field(default=None, ge=0)  # s or "HH:MM"; None: the config's or scenario's
    end: float | None = Field(default=None, gt=0)  # instead of duration

    @field_validator("begin", "end", mode="before")
    @classmethod
    def _times(cls, value: Any) -> Any:
        return _time(value)

    @model_validator(mode="after")
    def _one_length(self) -> ScenarioEntry:
        if self.end is not None and self.duration is not None:
            raise ValueError("give end or duration, not both")
        return self

    @field_validator("periods", mode="before")
    @classmethod
    def _all_periods(cls, value: Any) -> Any:
        if value == "all":
            from engine.demand import PERIODS

            return list(PERIODS)
        return [value] if isinstance(value, str) else value

    @field_validator("seeds", mode="before")
    @classmethod
    def _seed_count(cls, value: Any) -> Any:
        return _seed_list(value)

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, value: list[int] | None) -> list[int] | None:
        return value if value is None else _check_seeds(value)

    @field_validator("scales")
    @classmethod
    def _positive(cls, value: list[float] | None) -> list[float] | None:
        if value is not None and (not value or min(value) <= 0):
            raise ValueError("must be a non-empty list of positive numbers")
        return value


class LoopEntry(_Strict):
    """How adaptive controllers are run (the same for all of them)."""

    delta: int = Field(default=5, ge=1)
    min_green: float = Field(default=10.0, gt=0)
    max_green: float = Field(default=60.0, gt=0)

    @model_validator(mode="after")
    def _green_bounds(self) -> LoopEntry:
        if self.max_green < self.min_green:
            raise ValueError(f"max_green {self.max_green:g} s is shorter than min_green {self.min_green:g} s")
        return self


class RayEntry(_Strict):
    address: str = Field(min_length=1)  # 'auto', 'ray://host:10001', 'local'


class BenchConfig(_SumoOptions):
    """A whole benchmark: every controller on every scenario, period, scale and seed."""

    name: str = "bench"
    controllers: list[ControllerEntry] = Field(min_length=1)
    scenarios: list[ScenarioEntry] = Field(min_length=1)
    seeds: list[int] = Field(min_length=1)
    scales: list[float] = [1.0]
    duration: float | None = Field(default=None, gt=0, le=MAX_DURATION_S)  # None: each scenario's
    begin: float | None = Field(default=None, ge=0)  # None: each scenario's

    @field_validator("begin", mode="before")
    @classmethod
    def _begin(cls, value: Any) -> Any:
        return _time(value)
    baseline: str | None = None  # default: the first controller
    loop: LoopEntry = LoopEntry()
    workers: int | None = Field(default=None, ge=1)
    ray: RayEntry | None = None

    @field_validator("seeds", mode="before")
    @classmethod
    def _seed_count(cls, value: Any) -> Any:
        return _seed_list(value)

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, value: list[int]) -> list[int]:
        return _check_seeds(value)

    @field_validator("scales")
    @classmethod
    def _scales(cls, value: list[float]) -> list[float]:
        if not value or min(value) <= 0:
            raise ValueError("must be a non-empty list of positive numbers")
        return value

    @model_validator(mode="after")
    def _cross_checks(self) -> BenchConfig:
        names = [c.name for c in self.controllers]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"controllers: name '{min(dup)}' used twice")
        if self.baseline is not None and self.baseline not in names:
            raise ValueError(f"baseline: '{self.baseline}' is not one of the controllers ({', '.join(names)})")
        return self

    @property
    def baseline_name(self) -> str:
        return self.baseline or self.controllers[0].name


def _where(loc: tuple) -> str:
    return "".join(f"{part}: " if i == len(loc) - 1 else f"{part}." for i, part in enumerate(loc))


def parse_config(data: Any, source: str) -> BenchConfig:
    """Validate a config mapping; ConfigError naming ``source`` and the first bad field."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of benchmark settings")
    try:
        return BenchConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif isinstance(err.get("input"), (str, int, float)) and err["type"] != "value_error":
            msg += f" (got {err['input']!r})"
        raise ConfigError(f"{source}: {_where(err['loc'])}{msg}") from None


def load_config(path: str | Path) -> tuple[BenchConfig, Path]:
    """Read and validate a benchmark YAML; returns it with the folder its paths are relative to."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such benchmark config") from None
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: unreadable YAML ({exc.__class__.__name__})") from None
    return parse_config(data, str(path)), path.resolve().parent
