"""A stable-baselines3 VecEnv over worker processes, one SUMO each.

Two layouts of the same workers:

* ``shared=False`` (single agent): one sub-env per worker; the observation is
  every signal's row flattened, the action MultiDiscrete (one entry per signal),
  the reward the sum over signals: the Gymnasium env's layout.
* ``shared=True`` (parameter sharing): one sub-env per signal of every worker,
  so one policy serves all intersections and each step yields a sample per
  signal. Observations are the padded rows; actions are Discrete(largest phase
  count) with the extra actions masked off; rewards are per intersection.

It speaks to each worker with one message per step (action out; observations,
rewards, masks and any auto-reset back) and keeps the masks, so MaskablePPO's
``env_method("action_masks")`` costs no round trip.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvStepReturn

from agents import TRAIN_SEED_LIMIT
from agents.workers import run_worker
from engine.runs import THREAD_VARS
from engine.env_core import EnvOptions
from engine.errors import CqSignalError, SimulationError


@dataclass(frozen=True)
class EnvShape:
    """Signals, observation row bounds and action counts of an env on its network."""

    signals: tuple[str, ...]
    low: np.ndarray
    high: np.ndarray
    n_actions: np.ndarray

    @property
    def width(self) -> int:
        return int(self.low.shape[0])

    def observation_space(self, shared: bool) -> spaces.Box:
        if shared:
            return spaces.Box(self.low.astype(np.float32), self.high.astype(np.float32), dtype=np.float32)
        n = len(self.signals)
        return spaces.Box(np.tile(self.low, n).astype(np.float32), np.tile(self.high, n).astype(np.float32),
                          dtype=np.float32)

    def action_space(self, shared: bool) -> spaces.Space:
        if shared:
            return spaces.Discrete(int(self.n_actions.max()))
        return spaces.MultiDiscrete(self.n_actions.astype(np.int64))


def env_shape(options: EnvOptions) -> EnvShape:
    """What the env will look like, read from the network without starting SUMO."""
    from engine.layout import build_layout
    from engine.observations import Observer
    from engine.scenario import Scenario

    periods = options.periods()
    scenario = Scenario.load(options.network, period=periods[0], routes=options.routes)
    for p in periods[1:]:
        Scenario.load(options.network, period=p, routes=options.routes)  # names a bad period
    layout = build_layout(scenario.net_file, options.signals)
    observer = Observer(options.observation, layout, options.max_green)
    n = len(layout.intersections)
    n_actions = layout.n_phases.copy() if options.action_mode == "phase" else np.full(n, 2)
    return EnvShape(layout.ids, observer.low.copy(), observer.high.copy(), n_actions.astype(np.int64))


def options_dict(options: EnvOptions) -> dict[str, Any]:
    """EnvOptions as plain JSON-able values (tuples become lists), without ``extra``."""
    out = {}
    for name in EnvOptions.__dataclass_fields__:
        if name == "extra":
            continue
        value = getattr(options, name)
        if isinstance(value, tuple):
            value = list(value)
        elif hasattr(value, "items"):
            value = dict(value)
        out[name] = value
    return out


@contextmanager
def _single_threaded_children():
    """Children inherit one-thread settings for OpenMP/BLAS/Numba; the parent keeps its own."""
    saved = {v: os.environ.get(v) for v in THREAD_VARS}
    os.environ.update({v: "1" for v in THREAD_VARS})
    try:
        yield
    finally:
        for v, old in saved.items():
            if old is None:
                os.environ.pop(v, None)
            else:
                os.environ[v] = old


class SignalVecEnv(VecEnv):
    """``n_workers`` SUMO processes stepped in lockstep, as one VecEnv."""

    def __init__(self, options: EnvOptions, n_workers: int, shared: bool, seed: int = 0,
                 reward_scale: float = 1.0, episodes: Sequence[int] | None = None,
                 seed_limit: int = TRAIN_SEED_LIMIT) -> None:
        self.options = options
        self.shape = env_shape(options)
        self.shared = shared
        self.n_workers = n_workers
        self.n_signals = len(self.shape.signals)
        self.per_worker = self.n_signals if shared else 1
        self.reward_scale = float(reward_scale)
        self._closed = True
        self._waiting = False
        ctx = mp.get_context("spawn")
        self._conns, self._procs = [], []
        episodes = list(episodes) if episodes is not None else [0] * n_workers
        plain = {k: v for k, v in options_dict(options).items()}
        with _single_threaded_children():
            for w in range(n_workers):
                parent, child = ctx.Pipe()
                spec = {"options": plain, "index": w, "seed": int(seed), "shared": shared,
                        "episode": int(episodes[w]) if w < len(episodes) else 0, "seed_limit": seed_limit,
                        "ancestor": os.getpid()}
                proc = ctx.Process(target=run_worker, args=(child, spec), daemon=True,
                                   name=f"cqsignal-env-{w}")
                proc.start()
                child.close()
                self._conns.append(parent)
                self._procs.append(proc)
        self._closed = False
        try:
            for conn in self._conns:
                self._receive(conn)
        except BaseException:
            self.close()
            raise
        num_envs = n_workers * self.per_worker
        self._masks = np.ones((num_envs, self._mask_width()), dtype=bool)
        self._returns = np.zeros(num_envs)
        self._lengths = np.zeros(num_envs, dtype=np.int64)
        self._t0 = time.time()
        self.env_steps = 0  # decisions of the whole network, summed over workers
        super().__init__(num_envs, self.shape.observation_space(shared), self.shape.action_space(shared))

    def _mask_width(self) -> int:
        return int(self.shape.n_actions.max()) if self.shared else int(self.shape.n_actions.sum())

    # -- messaging ---------------------------------------------------------------
    def _receive(self, conn) -> Any:
        try:
            status, payload = conn.recv()
        except (EOFError, ConnectionResetError):
            raise SimulationError("an environment worker process died (see its message above)") from None
        if status == "error":
            if isinstance(payload, CqSignalError):
                raise payload
            raise RuntimeError(f"environment worker failed:\n{payload}")
        return payload

    def _rows(self, rows: np.ndarray) -> np.ndarray:
        return rows if self.shared else rows.reshape(1, -1)

    def _rewards(self, rewards: np.ndarray) -> np.ndarray:
        """The env's rewards (shared with ``reward_share`` there), times ``reward_scale``: one per
        signal (shared policy) or their sum (single agent)."""
        r = rewards if self.shared else np.array([rewards.sum()])
        return r * self.reward_scale

    # -- VecEnv ------------------------------------------------------------------
    def reset(self):
        for conn in self._conns:
            conn.send(("reset", None))
        obs = []
        for w, conn in enumerate(self._conns):
            rows, masks = self._receive(conn)
            obs.append(self._rows(rows))
            self._set_masks(w, masks)
        self._returns[:] = 0.0
        self._lengths[:] = 0
        self.reset_infos = [{} for _ in range(self.num_envs)]
        self._reset_seeds()
        self._reset_options()
        return np.concatenate(obs).astype(np.float32)

    def step_async(self, actions: np.ndarray) -> None:
        acts = np.asarray(actions).reshape(self.n_workers, self.n_signals)
        for conn, a in zip(self._conns, acts):
            conn.send(("step", a))
        self._waiting = True

    def step_wait(self) -> VecEnvStepReturn:
        replies = [self._receive(conn) for conn in self._conns]
        self._waiting = False
        return self._collect(replies)

    def step_teacher(self, heuristic: str) -> tuple[np.ndarray, VecEnvStepReturn]:
        """Let a heuristic decide every signal this step: (its actions per sub-env, step results)."""
        for conn in self._conns:
            conn.send(("teacher", heuristic))
        replies = [self._receive(conn) for conn in self._conns]
        chosen = [actions if self.shared else actions.reshape(1, -1) for actions, *_ in replies]
        return np.concatenate(chosen), self._collect([reply[1:] for reply in replies])

    def _collect(self, replies: list[tuple]) -> VecEnvStepReturn:
        """One step's results from every worker's (rows, rewards, done, masks, extra)."""
        obs, rews, dones, infos = [], [], [], []
        for w, (rows, rewards, done, masks, extra) in enumerate(replies):
            obs.append(self._rows(rows))
            rews.append(self._rewards(rewards))
            dones.append(np.full(self.per_worker, bool(done)))
            self._set_masks(w, masks)
            infos.extend(self._infos(w, rewards, extra))
        self.env_steps += self.n_workers
        return (np.concatenate(obs).astype(np.float32), np.concatenate(rews).astype(np.float32),
                np.concatenate(dones), infos)

    def _set_masks(self, w: int, masks: np.ndarray) -> None:
        lo = w * self.per_worker
        self._masks[lo: lo + self.per_worker] = masks.reshape(self.per_worker, -1)

    def _infos(self, w: int, rewards: np.ndarray, extra: dict | None) -> list[dict]:
        lo = w * self.per_worker
        idx = slice(lo, lo + self.per_worker)
        self._returns[idx] += self._rewards(rewards)
        self._lengths[idx] += 1
        infos: list[dict] = [{} for _ in range(self.per_worker)]
        if extra is None:
            return infos
        terminal = self._rows(extra["terminal"]).astype(np.float32)
        for k, info in enumerate(infos):
            info["terminal_observation"] = terminal[k]
            info["TimeLimit.truncated"] = True  # a time limit, not a terminal state: bootstrap
            info["episode"] = {"r": float(self._returns[lo + k]), "l": int(self._lengths[lo + k]),
                               "t": round(time.time() - self._t0, 6)}
        infos[0]["kpis"] = extra["kpis"]  # once per network episode, not once per signal
        infos[0]["demand"] = {k: extra[k] for k in ("seed", "period", "episode")}
        if extra.get("error"):
            infos[0]["sumo_error"] = extra["error"]
        self._returns[idx] = 0.0
        self._lengths[idx] = 0
        return infos

    def action_masks(self) -> np.ndarray:
        """Allowed actions of every sub-env, (num_envs, mask width)."""
        return self._masks.copy()

    def env_method(self, method_name: str, *method_args, indices: VecEnvIndices = None, **method_kwargs):
        if method_name != "action_masks":
            raise AttributeError(f"SignalVecEnv sub-envs have no method {method_name!r}")
        return [self._masks[i].copy() for i in self._get_indices(indices)]

    def has_attr(self, attr_name: str) -> bool:
        return attr_name in ("action_masks", "render_mode")

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        if attr_name == "render_mode":
            return [None for _ in self._get_indices(indices)]
        raise AttributeError(f"SignalVecEnv sub-envs have no attribute {attr_name!r}")

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        raise AttributeError(f"SignalVecEnv sub-envs cannot set {attr_name!r}")

    def env_is_wrapped(self, wrapper_class, indices: VecEnvIndices = None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]

    def worker_state(self) -> list[dict]:
        """Per worker: next episode number, seconds busy stepping, CPU seconds."""
        if self._waiting:
            self.step_wait()
        for conn in self._conns:
            conn.send(("state", None))
        return [self._receive(conn) for conn in self._conns]

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for conn in self._conns:
            try:
                conn.send(("close", None))
            except (BrokenPipeError, OSError):
                pass
        for conn in self._conns:
            try:
                if conn.poll(10):
                    conn.recv()
            except (EOFError, OSError):
                pass
            conn.close()
        for proc in self._procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)
