"""``load_controller``: a learned policy when a fitting model is given, else a heuristic.

A model artefact is ``<name>.zip`` (stable-baselines3) beside ``<name>.meta.json``
with the keys of :data:`META_KEYS`. A model fits a scenario when it was trained
on the same network (``fingerprint``: same signals, phases and lanes), its
signals exist here, and its observation and action spaces are the ones the
environment would have on this network; the zip's own spaces must agree with
its meta file. A model that does not fit is a one-line :class:`ConfigError`, or,
with ``fallback=True``, the default heuristic and a one-line notice.
"""

from __future__ import annotations

import json
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engine.controllers import CONTROLLERS, Controller, _load_builtin, heuristic_names, make_controller
from engine.errors import ConfigError, CqSignalError
from engine.scenario import Scenario

DEFAULT_HEURISTIC = "max_pressure"
META_SUFFIX = ".meta.json"
META_KEYS = ("fingerprint", "signals", "observation_shape", "algorithm", "env_options")
# and one of: "n_actions" (int, or a list for MultiDiscrete)
# or "action_space" ({"nvec": [...]} or {"n": k})

Say = Callable[[str], None]


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


@dataclass(frozen=True)
class ModelMeta:
    """What a model artefact promises about the network and spaces it was trained on."""

    zip_path: Path
    meta_path: Path
    fingerprint: str
    signals: tuple[str, ...]
    observation_shape: tuple[int, ...]
    n_actions: tuple[int, ...]  # one entry per action dimension
    algorithm: str
    env_options: dict
    raw: dict


def load_controller(
    spec: str | Path | None, scenario: Scenario, fallback: bool = False, say: Say = _stderr
) -> Controller:
    """The controller ``spec`` names: a heuristic, a model path, or None for the default.

    For None and for models it says in one line which controller it chose and why.
    """
    if spec is None:
        say(f"controller: {DEFAULT_HEURISTIC} (no model given; default heuristic)")
        return make_controller(DEFAULT_HEURISTIC, scenario)
    text = str(spec)
    _load_builtin()
    if text in CONTROLLERS:
        return make_controller(text, scenario)
    if not _looks_like_model(text):
        shipped = _shipped_model(text)
        if shipped is None:
            if text not in heuristic_names():
                models = _shipped_names()
                raise ConfigError(f"unknown controller '{text}' (choose from {', '.join(heuristic_names())}"
                                  + (f"; shipped models: {', '.join(models)}" if models else "")
                                  + "; or a model .zip)")
            return make_controller(text, scenario)
        text = str(shipped)
    try:
        meta = check_model(text, scenario)
        from agents.policy import PolicyController  # lazy: torch and SB3 are heavy
    except CqSignalError as exc:
        if not fallback:
            raise
        say(f"controller: {DEFAULT_HEURISTIC} (fallback: {exc})")
        return make_controller(DEFAULT_HEURISTIC, scenario)
    except ImportError as exc:
        problem = f"cannot load learned policies here ({exc})"
        if not fallback:
            raise ConfigError(problem) from None
        say(f"controller: {DEFAULT_HEURISTIC} (fallback: {problem})")
        return make_controller(DEFAULT_HEURISTIC, scenario)
    policy = PolicyController(meta.zip_path, meta.raw, scenario)  # a corrupt model fails here, silently
    say(
        f"controller: {meta.algorithm} policy {meta.zip_path.name} (fits {scenario.name}: "
        f"network {meta.fingerprint}, {len(meta.signals)} signals)"
    )
    return policy


def weights_error(zip_path: str | Path, algorithm: str, exc: BaseException) -> ConfigError:
    """One line for a model whose weights do not load, naming the file.

    torch's own messages run to several lines and some advise turning safe loading
    (``weights_only``) off; that is never the fix for a file that fails it, so only
    the exception's class is kept, or SB3's own one-line reason for a mismatch.
    """
    import pickle

    reason = exc.__class__.__name__
    text = str(exc).strip()
    if (
        isinstance(exc, (ValueError, KeyError))
        and not isinstance(exc, pickle.UnpicklingError)
        and text
        and "\n" not in text
        and "weights_only" not in text
        and len(text) <= 200
    ):
        reason += f": {text}"
    return ConfigError(
        f"{zip_path}: the {algorithm} model's weights do not load; the file is corrupt, truncated "
        f"or not a stable-baselines3 model ({reason})"
    )


def _shipped_model(name: str) -> Path | None:
    """A model the package ships under agents/models/ by that bare name, if any."""
    try:
        from agents.policy import shipped_model
    except ImportError:
        return None
    return shipped_model(name)


def _shipped_names() -> list[str]:
    """Names of the models the package ships (agents/models/*.zip)."""
    try:
        from agents.policy import MODELS_DIR
    except ImportError:
        return []
    return sorted(p.stem for p in MODELS_DIR.glob("*.zip"))


def _looks_like_model(text: str) -> bool:
    return (
        text.endswith(".zip")
        or "/" in text
        or "\\" in text
        or Path(text).exists()
        or Path(text + ".zip").is_file()
    )


def model_paths(spec: str | Path) -> tuple[Path, Path]:
    """(zip, meta) for a model given as ``name.zip`` or ``name``."""
    text = str(spec)
    base = text[:-4] if text.endswith(".zip") else text
    return Path(base + ".zip"), Path(base + META_SUFFIX)


def read_meta(spec: str | Path) -> ModelMeta:
    """Read and validate a model's meta file (ConfigError naming the file and field)."""
    zip_path, meta_path = model_paths(spec)
    if Path(spec).is_dir():
        raise ConfigError(f"{spec}: a folder, not a model .zip")
    if not meta_path.is_file():
        from engine.outputs import recover_file_set

        recover_file_set(meta_path)  # a model whose writer was killed while putting it in place
    if not zip_path.is_file():
        raise ConfigError(f"{zip_path}: model file not found")
    if not meta_path.is_file():
        raise ConfigError(f"{meta_path}: missing (a model needs its meta file to be checked)")
    try:
        raw = json.loads(meta_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{meta_path}: unreadable JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{meta_path}: expected a JSON object")
    missing = [k for k in META_KEYS if k not in raw]
    if missing:
        raise ConfigError(f"{meta_path}: missing key '{missing[0]}'")
    signals = raw["signals"]
    if not isinstance(signals, list) or not signals or not all(isinstance(s, str) for s in signals):
        raise ConfigError(f"{meta_path}: 'signals' must be a non-empty list of traffic-light ids")
    if not isinstance(raw["env_options"], dict):
        raise ConfigError(f"{meta_path}: 'env_options' must be an object")
    return ModelMeta(
        zip_path=zip_path,
        meta_path=meta_path,
        fingerprint=str(raw["fingerprint"]),
        signals=tuple(signals),
        observation_shape=_int_tuple(raw["observation_shape"], meta_path, "observation_shape"),
        n_actions=_actions(raw, meta_path),
        algorithm=str(raw["algorithm"]),
        env_options=raw["env_options"],
        raw=raw,
    )


def check_model(spec: str | Path, scenario: Scenario) -> ModelMeta:
    """The model's meta if it fits ``scenario``; else ConfigError saying why, in one line."""
    meta = read_meta(spec)
    name = meta.zip_path.name
    here = scenario.fingerprint()
    if meta.fingerprint != here:
        trained = meta.raw.get("network")
        raise ConfigError(
            f"model {name} was trained on another network ({f'{trained}, ' if trained else ''}"
            f"fingerprint {meta.fingerprint}; {scenario.name} is {here})"
        )
    from engine.layout import build_layout

    ids = build_layout(scenario.net_file).ids
    unknown = [s for s in meta.signals if s not in ids]
    if unknown:
        raise ConfigError(
            f"model {name} controls signal {unknown[0]}, which {scenario.name} does not have"
        )
    obs, acts = expected_spaces(scenario, meta.signals, meta.env_options, where=str(meta.meta_path))
    if meta.observation_shape not in obs or meta.n_actions not in acts:
        raise ConfigError(
            f"model {name} has observation {list(meta.observation_shape)} and actions "
            f"{list(meta.n_actions)}; on {scenario.name} the environment has "
            f"{list(obs[0])} and {list(acts[0])}"
        )
    zip_obs, zip_acts = zip_spaces(meta.zip_path)
    if zip_obs != meta.observation_shape or zip_acts != meta.n_actions:
        raise ConfigError(
            f"{name}: the model's own spaces ({list(zip_obs)}, {list(zip_acts)}) "
            f"disagree with {meta.meta_path.name}"
        )
    return meta


def expected_spaces(
    scenario: Scenario,
    signals: tuple[str, ...],
    options: dict,
    where: str = "env_options",
) -> tuple[list[tuple[int, ...]], list[tuple[int, ...]]]:
    """Observation shapes and action sizes the environment has on ``scenario`` for ``options``.

    Two layouts are accepted: one agent for every signal (the Gymnasium env,
    observation rows flattened, MultiDiscrete actions) and one shared policy per
    signal (PettingZoo, a row and the largest phase count).
    """
    from engine.env_core import env_options
    from engine.layout import build_layout
    from engine.observations import Observer

    try:
        env = env_options(**{k: v for k, v in options.items() if k != "network"})
    except (TypeError, ValueError, CqSignalError) as exc:
        raise ConfigError(f"{where}: env_options not usable ({exc})") from None
    layout = build_layout(scenario.net_file, tuple(signals))
    width = Observer(env.observation, layout, env.max_green).width
    n = len(layout.intersections)
    phases = tuple(int(p) for p in layout.n_phases)
    per_signal = phases if env.action_mode == "phase" else (2,) * n
    return [(n * width,), (width,)], [per_signal, (max(per_signal),)]


def zip_spaces(zip_path: Path) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Observation shape and action sizes stored in an SB3 zip (read without unpickling)."""
    try:
        with zipfile.ZipFile(zip_path) as z:
            data = json.loads(z.read("data"))
        obs = data["observation_space"]
        act = data["action_space"]
        shape = tuple(int(x) for x in obs.get("_shape") or obs.get("shape"))
    except (zipfile.BadZipFile, KeyError, OSError, ValueError, TypeError) as exc:
        raise ConfigError(
            f"{zip_path}: not a stable-baselines3 model ({exc.__class__.__name__})"
        ) from None
    if "nvec" in act:
        sizes = tuple(int(x) for x in str(act["nvec"]).strip("[]").split())
    elif "n" in act:
        sizes = (int(act["n"]),)
    else:
        raise ConfigError(f"{zip_path}: action space {act.get(':type:', '?')} is not discrete")
    return shape, sizes


def _int_tuple(value: object, path: Path, key: str) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        return (value,)
    if (
        isinstance(value, list)
        and value
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        return tuple(value)
    raise ConfigError(f"{path}: '{key}' must be an integer or a list of integers, got {value!r}")


def _actions(raw: dict, path: Path) -> tuple[int, ...]:
    if "n_actions" in raw:
        return _int_tuple(raw["n_actions"], path, "n_actions")
    space = raw.get("action_space")
    if isinstance(space, dict) and "nvec" in space:
        return _int_tuple(space["nvec"], path, "action_space.nvec")
    if isinstance(space, dict) and "n" in space:
        return _int_tuple(space["n"], path, "action_space.n")
    raise ConfigError(f"{path}: missing key 'n_actions' (or 'action_space' with 'n' or 'nvec')")
