"""Checkpoints a killed run resumes from: written whole or not at all.

A checkpoint is a folder ``checkpoints/step_<n>/`` holding the model (weights
and optimiser state, in SB3's zip), the replay buffer of off-policy algorithms,
the random generators' states and ``state.json`` (step counter, each worker's
episode counter, evaluation history, best delay). It is built under a temporary
name and renamed into place; ``checkpoints/latest.json`` is then replaced to
point at it. A run killed at any moment leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import ConfigError, CqSignalError
from engine.metrics import write_json_atomic

CHECKPOINTS = "checkpoints"
LATEST = "latest.json"


def rng_state(model) -> dict[str, Any]:
    """States of every random generator training draws from."""
    import torch

    # NumPy's global (legacy) generator is the one SB3 and libraries seed and draw from: saved as it is
    return {"random": random.getstate(), "numpy": np.random.get_state(),  # noqa: NPY002
            "torch": torch.get_rng_state().numpy(),
            "action_space": model.action_space.np_random.bit_generator.state}


def set_rng_state(model, state: dict[str, Any]) -> None:
    import torch

    random.setstate(state["random"])
    np.random.set_state(state["numpy"])  # noqa: NPY002 - the global generator SB3 draws from
    torch.set_rng_state(torch.from_numpy(np.asarray(state["torch"], dtype=np.uint8)))
    model.action_space.np_random.bit_generator.state = state["action_space"]


def save_checkpoint(run_dir: Path, model, state: dict[str, Any], keep: int = 2) -> Path:
    """Write a checkpoint of ``model`` at its step count; returns its folder."""
    root = Path(run_dir) / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    name = f"step_{int(model.num_timesteps):010d}"
    final = root / name
    if final.is_dir():
        return final  # this step is saved already
    tmp = root / f".tmp-{name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    model.save(str(tmp / "model.zip"))
    if getattr(model, "replay_buffer", None) is not None:
        model.save_replay_buffer(str(tmp / "replay_buffer.pkl"))
    with open(tmp / "rng.pkl", "wb") as fh:
        pickle.dump(rng_state(model), fh)
    write_json_atomic(tmp / "state.json", {**state, "num_timesteps": int(model.num_timesteps)})
    _fsync_dir(tmp)
    os.replace(tmp, final)
    write_json_atomic(root / LATEST, {"checkpoint": name, "num_timesteps": int(model.num_timesteps)})
    _prune(root, keep, final)
    return final


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The folder ``latest.json`` points at, or None when the run has none."""
    pointer = Path(run_dir) / CHECKPOINTS / LATEST
    if not pointer.is_file():
        return None
    try:
        name = json.loads(pointer.read_text())["checkpoint"]
    except (OSError, ValueError, KeyError, TypeError):
        raise ConfigError(f"{pointer}: unreadable; remove it to resume from an older checkpoint") from None
    folder = pointer.parent / name
    if not (folder / "model.zip").is_file():
        raise ConfigError(f"{pointer}: points at {name}, which is missing")
    return folder


def load_state(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "state.json").read_text())


def load_checkpoint(folder: Path, algorithm_cls, env, **kwargs) -> tuple[Any, dict[str, Any]]:
    """The model (with optimiser, replay buffer and RNG states restored) and the run state."""
    try:
        model = algorithm_cls.load(str(folder / "model.zip"), env=env, device="cpu", **kwargs)
    except CqSignalError:
        raise
    except Exception as exc:  # noqa: BLE001 - a damaged checkpoint is one line naming it
        from engine.controllers.loading import weights_error

        err = weights_error(folder / "model.zip", algorithm_cls.__name__, exc)
        raise ConfigError(f"{err}; remove {folder} to resume from an older checkpoint") from None
    buffer = folder / "replay_buffer.pkl"
    if buffer.is_file():
        model.load_replay_buffer(str(buffer))
    with open(folder / "rng.pkl", "rb") as fh:  # our own run's file, not a user-supplied one
        set_rng_state(model, pickle.load(fh))
    return model, load_state(folder)


def _prune(root: Path, keep: int, newest: Path) -> None:
    folders = sorted(p for p in root.glob("step_*") if p.is_dir())
    for old in folders[: max(0, len(folders) - keep)]:
        if old != newest:
            shutil.rmtree(old, ignore_errors=True)
    for stale in root.glob(".tmp-*"):  # left by a run killed while saving
        if not stale.name.endswith(f"-{os.getpid()}"):
            shutil.rmtree(stale, ignore_errors=True)


def _fsync_dir(folder: Path) -> None:
    for f in folder.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
