"""A trained model as a controller, and the model artefact (SB3 zip + meta file).

:class:`PolicyController` builds observations with the same
:class:`engine.observations.Observer` and env options the model was trained
with, asks the policy for one action per signal, and turns the actions into
green-phase targets for the SignalController (which alone applies them, safely).

Security: an SB3 zip holds pickled Python objects. Load only models from a
source you trust; this module loads nothing but the path it is given.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import ConfigError
from engine.loop import ControlLoop, TrafficState
from engine.scenario import Scenario

META_FORMAT = 1
MODELS_DIR = Path(__file__).parent / "models"  # models shipped with the package


def shipped_model(name: str) -> Path | None:
    """``agents/models/<name>.zip`` if the package ships a model of that name."""
    path = MODELS_DIR / f"{name}.zip"
    return path if name and "/" not in name and path.is_file() else None


def load_sb3(zip_path: Path, algorithm: str):
    """Load an SB3 model for inference on the CPU (schedules are not unpickled)."""
    import torch

    from agents.config import algorithm_class

    torch.set_num_threads(1)  # a tiny MLP per decision: threads only add overhead
    const = _Const()
    custom = {"learning_rate": 0.0, "lr_schedule": const, "clip_range": const,
              "exploration_schedule": const}
    cls = algorithm_class(algorithm)
    try:
        return cls.load(str(zip_path), device="cpu", custom_objects=custom)
    except Exception as exc:  # noqa: BLE001 - whatever torch or SB3 raises for a bad file: one line
        from engine.controllers.loading import weights_error

        raise weights_error(zip_path, algorithm, exc) from None


class _Const:
    """A picklable constant schedule (stands in for the training schedules)."""

    def __call__(self, _progress: float) -> float:
        return 0.0


def state_masks(state: TrafficState, action_mode: str, width: int) -> np.ndarray:
    """Allowed actions per signal from the traffic state, (signals, width) padded False.

    The same rule as :meth:`engine.signal_controller.SignalController.phase_mask`:
    while min green runs (or a clearance), only the current green is allowed.
    """
    n = len(state.phase)
    held = ~np.asarray(state.can_switch, dtype=bool)
    if action_mode == "switch":
        mask = np.zeros((n, width), dtype=bool)
        mask[:, 0] = True
        mask[:, 1] = ~held
        return mask
    n_phases = state.layout.n_phases
    mask = np.arange(width)[None, :] < n_phases[:, None]
    mask[held] = False
    mask[held, state.phase[held]] = True
    return mask


class PolicyController:
    """A learned policy in the controller's seat (``adaptive``: it decides every delta seconds).

    Deployed behind the starvation guard it was trained under
    (:class:`engine.controllers.heuristics.StarvationGuard`, the env option
    ``max_red_s``; 180 s, max pressure's, for models trained without one): a phase
    with vehicles that has been red that long is served next (the current green may
    run on to max green, no other phase comes first), so that a policy cannot hold a
    side street or a left-turn bay for minutes.
    ``guard=False`` turns it off (for studies only).
    """

    adaptive = True

    def __init__(self, model_path: str | Path, meta: dict, scenario: Scenario, guard: bool = True) -> None:
        from engine.controllers.heuristics import StarvationGuard
        from engine.env_core import DEFAULT_MAX_RED_S, env_options

        self.meta = meta
        self.scenario = scenario
        self.model_path = Path(model_path)
        self.name = str(meta.get("name") or self.model_path.stem)
        trained = {k: v for k, v in meta["env_options"].items() if k != "network"}
        trained.setdefault("detector_range_m", 0.0)  # models from before observation areas saw the stop-line lane
        self.options = env_options(**trained)
        self.max_red_s = float(self.options.max_red_s or DEFAULT_MAX_RED_S)
        self.guard = StarvationGuard(self.max_red_s) if guard else None
        self.signals = tuple(meta["signals"])
        self.shared = meta.get("mode", _guess_mode(meta)) == "shared"
        self.algorithm = str(meta["algorithm"])
        self.masked = self.algorithm == "MaskablePPO"
        self.model = load_sb3(self.model_path, self.algorithm)
        self._observer = None
        self._layout = None

    @property
    def loop_overrides(self) -> dict:
        """Loop options the policy's observations depend on (the runner applies them)."""
        return {"detector_range_m": float(self.options.detector_range_m)}

    def setup(self, loop: ControlLoop) -> None:
        """Refuse a loop whose timing differs from training (the policy would see other dynamics)."""
        trained = {"delta": self.options.delta, "min_green": self.options.min_green,
                   "max_green": self.options.max_green}
        for key, value in trained.items():
            here = getattr(loop.options, key)
            if float(here) != float(value):
                flag = "--" + key.replace("_", "-")
                raise ConfigError(f"model {self.model_path.name} was trained with {key}={value:g}, "
                                  f"this run has {here:g} (pass {flag} {value:g})")
        self._check_signals(loop.layout.ids)

    def _check_signals(self, ids: tuple[str, ...]) -> None:
        if tuple(ids) != self.signals:
            raise ConfigError(f"model {self.model_path.name} controls signals {', '.join(self.signals)}; "
                              f"this run controls {', '.join(ids)}")

    def decide(self, state: TrafficState) -> np.ndarray:
        """One green-phase target per signal."""
        if state.layout is not self._layout:
            from engine.observations import Observer

            self._check_signals(state.layout.ids)
            self._observer = Observer(self.options.observation, state.layout, self.options.max_green,
                                      self.max_red_s)
            self._layout = state.layout
        rows = self._observer(state)
        n_phases = state.layout.n_phases
        width = int(n_phases.max()) if self.options.action_mode == "phase" else 2
        masks = state_masks(state, self.options.action_mode, width)
        if self.shared:
            obs, flat_masks = rows, masks
        else:
            obs = rows.reshape(1, -1)
            per = n_phases if self.options.action_mode == "phase" else np.full(len(n_phases), 2)
            flat_masks = np.concatenate([masks[k, : per[k]] for k in range(len(per))])[None, :]
        kwargs = {"action_masks": flat_masks} if self.masked else {}
        actions, _ = self.model.predict(obs, deterministic=True, **kwargs)
        actions = np.asarray(actions, dtype=np.int64).reshape(-1)
        phase = np.asarray(state.phase, dtype=np.int64)
        if self.options.action_mode == "switch":
            targets = np.where(actions > 0, (phase + 1) % n_phases, -1)
        else:
            targets = np.where(actions < n_phases, actions, -1)
        if self.guard is not None:
            targets = self.guard.overrule(targets, self.guard.update(state), phase, self.options.action_mode)
        return targets


def _guess_mode(meta: dict) -> str:
    n_actions = meta.get("n_actions")
    signals = meta.get("signals") or []
    if isinstance(n_actions, list) and len(n_actions) == len(signals) and len(signals) > 1:
        return "single"
    return "shared"


# -- the artefact ---------------------------------------------------------------
def code_version() -> dict[str, Any]:
    """Package version and, when run from a git checkout, the commit (:func:`engine.outputs.code_version`),
    with the learning libraries' versions."""
    from engine.outputs import code_version as engine_version

    out: dict[str, Any] = dict(engine_version())
    try:
        import sb3_contrib
        import stable_baselines3
        import torch

        out.update(stable_baselines3=stable_baselines3.__version__, sb3_contrib=sb3_contrib.__version__,
                   torch=torch.__version__)
    except ImportError:
        pass
    return out


def build_meta(name: str, algorithm: str, mode: str, options, shape, config: dict,
               num_timesteps: int, eval_kpis: dict | None) -> dict[str, Any]:
    """The meta file's content (keys that :func:`engine.controllers.loading.read_meta` checks, and more)."""
    from agents import TRAIN_SEED_LIMIT
    from agents.vec_env import options_dict

    scenario = Scenario.of_network(options.network)
    shared = mode == "shared"
    obs_shape = [shape.width] if shared else [shape.width * len(shape.signals)]
    n_actions = [int(shape.n_actions.max())] if shared else [int(a) for a in shape.n_actions]
    return {
        "format": META_FORMAT,
        "name": name,
        "algorithm": algorithm,
        "mode": mode,
        "network": scenario.name,
        "fingerprint": scenario.fingerprint(),
        "signals": list(shape.signals),
        "observation_shape": obs_shape,
        "n_actions": n_actions,
        "env_options": options_dict(options),
        "config": config,
        "num_timesteps": int(num_timesteps),
        "train_seed_limit": TRAIN_SEED_LIMIT,
        "eval_kpis": eval_kpis,
        "code_version": code_version(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def save_artefact(model, base: Path, meta: dict) -> Path:
    """Write ``base.zip`` and ``base.meta.json`` as one set; returns the zip path.

    The meta file seals the set: it records the zip's sha256 and is put in place last
    (:func:`engine.outputs.publish_file_set`), so a kill leaves the previous model, the
    new one, or a zip without meta (refused as incomplete, completed by the next run).
    """
    from engine.controllers.loading import model_paths

    zip_path, meta_path = model_paths(str(base))
    _publish_model(zip_path, meta_path, lambda tmp: model.save(str(tmp)), meta)
    return zip_path


def copy_artefact(src_base: Path, dst_base: Path, **meta_changes: Any) -> Path:
    """Copy a model and its meta (as one set, like :func:`save_artefact`), changing meta fields if asked."""
    import json
    import shutil

    from engine.controllers.loading import model_paths

    src_zip, src_meta = model_paths(str(src_base))
    dst_zip, dst_meta = model_paths(str(dst_base))
    meta = json.loads(src_meta.read_text())
    meta.update(meta_changes)
    _publish_model(dst_zip, dst_meta, lambda tmp: shutil.copyfile(src_zip, tmp), meta)
    return dst_zip


def _publish_model(zip_path: Path, meta_path: Path, write_zip, meta: dict) -> None:
    from engine.outputs import atomic_write_json, code_version, publish_file_set

    def seal(path: Path, hashes: dict[str, str]) -> None:
        artefact = {"files": {zip_path.name: hashes[zip_path.name]}, "code_version": code_version(),
                    "completed_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
        atomic_write_json(path, {**meta, "artefact": artefact})

    publish_file_set({zip_path: write_zip}, meta_path, seal)


__all__ = ["PolicyController", "build_meta", "save_artefact", "copy_artefact", "shipped_model",
           "state_masks"]
