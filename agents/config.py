"""Training configs: YAML validated by pydantic, one-line errors naming the key.

A config says what to train on (network, periods sampled per episode, env
options), how (algorithm and hyperparameters, parallel environments, seed),
how to watch it (evaluation on held-out seeds, checkpoints) and where to write
(``output``; ``export`` copies the best model there at the end).
"""

from __future__ import annotations

import copy
import inspect
import math
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from agents import TRAIN_SEED_LIMIT, VALIDATION_SEED_START
from engine.errors import ConfigError, NetworkError
from engine.scenario import MAX_DURATION_S, MAX_SEED

ALGORITHMS = ("PPO", "A2C", "DQN", "MaskablePPO")
MODES = ("single", "shared")  # one agent for every signal, or one policy shared by every signal
# Constructor arguments the trainer sets itself (not hyperparameters).
_RESERVED = {"policy", "env", "seed", "device", "verbose", "tensorboard_log", "policy_kwargs",
             "_init_setup_model", "stats_window_size"}


class _Strict(BaseModel):
    # allow_inf_nan=False: a NaN or infinite number in any float field is refused when the config loads
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


def _finite_values(value: Any, where: str) -> None:
    """ValueError naming ``where`` for a NaN or infinite number anywhere in a nested value."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where}: must be a finite number, got {value}")
    if isinstance(value, dict):
        for k, v in value.items():
            _finite_values(v, f"{where}.{k}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _finite_values(v, f"{where}.{i}")


# Value ranges of the numeric hyperparameters (stable-baselines3's meanings): (kind, low, high,
# low inclusive). A value outside is refused when the config loads, naming the key, instead of
# failing inside SB3 after the evaluations have run.
_RANGES: dict[str, tuple[type, float, float, bool]] = {
    "n_steps": (int, 1, math.inf, True), "batch_size": (int, 1, math.inf, True),
    "n_epochs": (int, 1, math.inf, True), "gamma": (float, 0.0, 1.0, False),
    "gae_lambda": (float, 0.0, 1.0, True), "ent_coef": (float, 0.0, math.inf, True),
    "vf_coef": (float, 0.0, math.inf, True), "max_grad_norm": (float, 0.0, math.inf, False),
    "target_kl": (float, 0.0, math.inf, False), "buffer_size": (int, 1, math.inf, True),
    "learning_starts": (int, 0, math.inf, True), "train_freq": (int, 1, math.inf, True),
    "target_update_interval": (int, 1, math.inf, True), "tau": (float, 0.0, 1.0, False),
    "exploration_fraction": (float, 0.0, 1.0, True), "exploration_initial_eps": (float, 0.0, 1.0, True),
    "exploration_final_eps": (float, 0.0, 1.0, True),
}
SCHEDULED = ("learning_rate", "clip_range", "clip_range_vf")  # a number or "linear:START[:END]"


def parse_schedule(value: Any, where: str) -> tuple[float, float] | float:
    """A positive number, or ``"linear:START"`` / ``"linear:START:END"`` (START > 0, END >= 0, decaying
    linearly over training) as (start, end); ValueError naming ``where`` otherwise."""
    if isinstance(value, str) and value.startswith("linear:"):
        parts = value.split(":")[1:]
        try:
            start, end = float(parts[0]), float(parts[1]) if len(parts) > 1 else 0.0
        except (ValueError, IndexError):
            start = end = math.nan
        if len(parts) > 2 or not (math.isfinite(start) and math.isfinite(end) and start > 0 and end >= 0):
            raise ValueError(f"{where}: {value!r} is not linear:START or linear:START:END "
                             "(START > 0, END >= 0)")
        return start, end
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{where}: must be a positive number or linear:START[:END], got {value!r}")
    return float(value)


def _check_range(key: str, value: Any) -> None:
    kind, lo, hi, lo_in = _RANGES[key]
    if key == "target_kl" and value is None:
        return
    ok_type = isinstance(value, int) if kind is int else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type:
        raise ValueError(f"hyperparameters.{key}: must be {'an integer' if kind is int else 'a number'}, "
                         f"got {value!r}")
    if not ((value >= lo if lo_in else value > lo) and value <= hi):
        bounds = f"in {'[' if lo_in else '('}{lo:g}, {hi:g}]" if math.isfinite(hi) else \
            f"{'>=' if lo_in else '>'} {lo:g}"
        raise ValueError(f"hyperparameters.{key}: must be {bounds}, got {value!r}")


class AlgorithmConfig(_Strict):
    name: Literal["PPO", "A2C", "DQN", "MaskablePPO"] = "MaskablePPO"
    policy: str = "MlpPolicy"
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    policy_kwargs: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known_hyperparameters(self) -> AlgorithmConfig:
        allowed = hyperparameter_names(self.name)
        for key in self.hyperparameters:
            if key not in allowed:
                raise ValueError(f"hyperparameters.{key}: not a hyperparameter of {self.name} "
                                 f"(choose from {', '.join(sorted(allowed))})")
        _finite_values(self.hyperparameters, "hyperparameters")
        _finite_values(self.policy_kwargs, "policy_kwargs")
        for key, value in self.hyperparameters.items():
            if key in SCHEDULED and value is not None:
                parse_schedule(value, f"hyperparameters.{key}")
            elif key in _RANGES:
                _check_range(key, value)
        return self


class EvalConfig(_Strict):
    every: int = Field(20_000, gt=0, description="timesteps between evaluations")
    seeds: list[int] = Field(default_factory=lambda: [VALIDATION_SEED_START, VALIDATION_SEED_START + 1])
    periods: list[str] | None = None  # default: the training periods
    duration: float = Field(3600.0, gt=0, le=MAX_DURATION_S)
    jobs: int | None = Field(None, gt=0)  # parallel evaluation processes (default: n_envs)
    ray: str | None = Field(None, min_length=1)  # run evaluations on this Ray cluster ('auto', 'ray://...', 'local')
    baseline: str | None = "max_pressure"  # heuristic evaluated once on the same seeds, for reference

    @field_validator("seeds")
    @classmethod
    def _held_out(cls, seeds: list[int]) -> list[int]:
        if not seeds:
            raise ValueError("give at least one evaluation seed")
        if max(seeds) > MAX_SEED:
            raise ValueError(f"seed {max(seeds)} is outside SUMO's range 0..{MAX_SEED}")
        inside = [s for s in seeds if s < TRAIN_SEED_LIMIT]
        if inside:
            raise ValueError(f"seed {inside[0]} is one that training episodes may draw "
                             f"(they use 0..{TRAIN_SEED_LIMIT - 1}); use seeds >= {TRAIN_SEED_LIMIT}")
        return seeds


class PretrainConfig(_Strict):
    """Imitate a heuristic before RL (see agents/pretrain.py)."""

    heuristic: str = "max_pressure"
    episodes: int = Field(2, gt=0, description="episodes per env process")
    epochs: int = Field(10, gt=0)
    batch_size: int = Field(256, gt=0)
    learning_rate: float = Field(1e-3, gt=0)

    @field_validator("heuristic")
    @classmethod
    def _known(cls, name: str) -> str:
        from engine.controllers import heuristic_names

        if name not in heuristic_names():
            raise ValueError(f"unknown heuristic {name!r} (choose from {', '.join(heuristic_names())})")
        return name


class CriticWarmupConfig(_Strict):
    """Train the critic alone (actor frozen) before RL moves the actor (see agents/pretrain.py)."""

    timesteps: int = Field(20_000, gt=0, description="timesteps of critic-only updates")


class CheckpointConfig(_Strict):
    every: int = Field(10_000, gt=0, description="timesteps between checkpoints")
    keep: int = Field(2, gt=0)


class TrainConfig(_Strict):
    name: str = Field(..., min_length=1)
    mode: Literal["single", "shared"] = "shared"
    env: dict[str, Any] = Field(default_factory=dict)
    algorithm: AlgorithmConfig = Field(default_factory=AlgorithmConfig)
    total_timesteps: int = Field(..., gt=0)
    n_envs: int = Field(1, gt=0, le=64)
    seed: int = Field(0, ge=0, le=MAX_SEED)
    reward_scale: float = Field(1.0, gt=0)  # the env's reward times this, for the learner (no other change)
    torch_threads: int = Field(1, gt=0)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)
    pretrain: PretrainConfig | None = None
    critic_warmup: CriticWarmupConfig | None = None
    output: str = ""
    export: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _moved_keys(cls, raw: Any) -> Any:
        if isinstance(raw, dict):
            if "unwatched_delay" in raw:
                raise ValueError("unwatched_delay: the reward lives in the env now; use env.reward: "
                                 "{delay: 1, upstream_delay: W, entry_wait: W}")
            if "reward_share" in raw:
                raise ValueError("reward_share: the reward lives in the env now; use env.reward_share")
        return raw

    @field_validator("env")
    @classmethod
    def _env_options(cls, env: dict[str, Any]) -> dict[str, Any]:
        make_env_options(env)
        return env

    @model_validator(mode="after")
    def _combination(self) -> TrainConfig:
        if not self.output:
            self.output = f"runs/{self.name}"
        if self.algorithm.name == "DQN" and self.pretrain is not None:
            raise ValueError("pretrain: imitation needs an actor-critic algorithm (PPO, A2C, MaskablePPO)")
        if self.critic_warmup is not None and self.algorithm.name not in ("PPO", "MaskablePPO"):
            raise ValueError("critic_warmup: needs PPO or MaskablePPO")
        if self.algorithm.name == "DQN" and self.mode == "single":
            raise ValueError("algorithm.name: DQN needs one discrete action (mode: shared), "
                             "the single-agent env has one per signal")
        return self

    def env_options(self):
        """The :class:`engine.env_core.EnvOptions` of training episodes."""
        return make_env_options(self.env)

    def eval_periods(self) -> tuple[str | None, ...]:
        return tuple(self.eval.periods) if self.eval.periods else self.env_options().periods()

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def hyperparameter_names(algorithm: str) -> set[str]:
    """Constructor arguments of the SB3 class that a config may set."""
    cls = algorithm_class(algorithm)
    return set(inspect.signature(cls.__init__).parameters) - _RESERVED - {"self", "kwargs"}


def algorithm_class(name: str):
    """The SB3 (or sb3-contrib) class of an algorithm name."""
    if name == "MaskablePPO":
        from sb3_contrib import MaskablePPO

        return MaskablePPO
    import stable_baselines3

    if name not in ALGORITHMS:
        raise ConfigError(f"unknown algorithm '{name}' (choose from {', '.join(ALGORITHMS)})")
    return getattr(stable_baselines3, name)


def make_env_options(env: dict[str, Any]):
    """EnvOptions from a config's ``env`` mapping; ValueError naming a bad key."""
    from pydantic import TypeAdapter

    from engine.env_core import EnvOptions

    known = [f for f in EnvOptions.__dataclass_fields__ if f != "extra"]
    for key in env:
        if key not in known:
            raise ValueError(f"{key}: unknown option (choose from {', '.join(known)})")
    if env.get("gui"):
        raise ValueError("gui: training runs headless")
    try:
        options = TypeAdapter(EnvOptions).validate_python(dict(env))
        options.validate()
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ValueError(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}") from None
    except ConfigError as exc:
        raise ValueError(str(exc)) from None
    from engine.scenario import Scenario

    for period in options.periods():  # the network and its periods exist (checked before any work)
        try:
            Scenario.load(options.network, period=period, routes=options.routes)
        except (ConfigError, NetworkError) as exc:
            text = str(exc)
            field = "routes" if "--routes" in text else "period" if "period" in text else "network"
            raise ValueError(f"{field}: {text.removeprefix('--routes: ')}") from None
    return options


def set_key(raw: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``a.b.c`` in a nested mapping (creating levels), for ``--set key=value``."""
    parts = dotted.split(".")
    node = raw
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"--set {dotted}: '{part}' is not a section")
        node = child
    node[parts[-1]] = value


def parse_overrides(items: list[str]) -> list[tuple[str, Any]]:
    """``key=value`` strings, values read as YAML (numbers, lists, true/false)."""
    out = []
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected key=value")
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            value = text
        out.append((key.strip(), value))
    return out


def load_config(path: str | Path, overrides: list[str] = ()) -> TrainConfig:
    """Read and validate a training config; ConfigError names the file and the key."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of keys to values")
    return validate_config(raw, overrides, source=str(path))


def validate_config(raw: dict[str, Any], overrides: list[str] = (), source: str = "config") -> TrainConfig:
    """Validate a config mapping with ``key=value`` overrides applied."""
    raw = copy.deepcopy(raw)
    for key, value in parse_overrides(list(overrides)):
        set_key(raw, key, value)
    try:
        return TrainConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {_describe(exc.errors()[0])}") from None


def _describe(err: dict) -> str:
    loc = ".".join(str(p) for p in err["loc"])
    if err["type"] == "extra_forbidden":
        return f"unknown key '{loc}'"
    msg = err["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(prefix)
    nested = err["type"] == "value_error" and (loc in ("", "algorithm") or loc.endswith("env"))
    if nested:  # the message starts with the key below ``loc``
        return f"{loc}.{msg}" if loc else msg
    return f"{loc}: {msg}"
