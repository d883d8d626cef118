"""The process behind each parallel environment: one SUMO (libsumo) per process.

A worker owns an :class:`engine.env_core.EnvCore`, resets it by itself when an
episode ends (so one message per step does the whole round trip) and answers
with observation rows, rewards and the next action masks. It imports neither
torch nor stable-baselines3, and runs single-threaded numerics, so that two
workers and the learner share two cores without oversubscription.
"""

from __future__ import annotations

import os
import time
import traceback
from multiprocessing.connection import Connection

import numpy as np

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")


def episode_draw(seed: int, worker: int, episode: int, periods: tuple, limit: int) -> tuple[int, object]:
    """Demand seed and period of a worker's n-th episode: reproducible, and restored on resume."""
    rng = np.random.default_rng([seed, worker, episode])
    return int(rng.integers(0, limit)), periods[int(rng.integers(len(periods)))]


def pack_masks(masks: list[np.ndarray], width: int, shared: bool) -> np.ndarray:
    """Per-signal masks as one array: (signals, width) padded False, or flat (single agent)."""
    if not shared:
        return np.concatenate(masks).astype(bool)
    out = np.zeros((len(masks), width), dtype=bool)
    for k, m in enumerate(masks):
        out[k, : len(m)] = m
    return out


class EntryWait:
    """Vehicles waiting to enter the network, charged to the signal whose approach they enter.

    The delay KPI counts a trip's ``departDelay`` (and charges dropped vehicles
    their full wait), but the engine's delay reward sees only vehicles on lanes:
    once a starved approach is full, more starvation costs it nothing. This term
    adds those vehicle-seconds (in the delay reward's units), so the training
    signal matches the KPI. It reads SUMO's pending vehicles: a training-only
    shaping term, not part of the observation.
    """

    def __init__(self, core, weight: float) -> None:
        from engine.rewards import DELAY_SCALE

        self.api = core.loop.sim.api
        self.edge_signal = {lane.rsplit("_", 1)[0]: k for k, ix in enumerate(core.layout.intersections)
                            for lane in ix.in_lanes}
        self.n = len(core.layout.intersections)
        self.scale = weight * core.options.delta / DELAY_SCALE
        self._first: dict[str, int] = {}

    def reset(self) -> None:
        self._first.clear()

    def __call__(self) -> np.ndarray:
        counts = np.zeros(self.n)
        for vid in self.api.simulation.getPendingVehicles():
            k = self._first.get(vid)
            if k is None:  # the first signal on its route (source edges may lead to an approach)
                route = self.api.vehicle.getRoute(vid)
                k = self._first[vid] = next((self.edge_signal[e] for e in route if e in self.edge_signal), -1)
            if k >= 0:
                counts[k] += 1
        return counts * self.scale


def run_worker(conn: Connection, spec: dict) -> None:
    """Serve ``step``/``reset``/``state``/``close`` messages until closed."""
    for var in THREAD_VARS:
        os.environ[var] = "1"
    from engine.env_core import EnvCore, env_options

    try:
        core = EnvCore(env_options(**spec["options"]))
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises it
        conn.send(("error", _portable(exc)))
        conn.close()
        return
    conn.send(("ok", None))
    periods, shared = core.periods, spec["shared"]
    width = int(core.n_actions.max())
    entry_wait = EntryWait(core, spec["entry_wait"]) if spec.get("entry_wait") else None
    episode = int(spec["episode"])
    busy = 0.0
    current: dict = {}

    def start() -> np.ndarray:
        nonlocal episode
        seed, period = episode_draw(spec["seed"], spec["index"], episode, periods, spec["seed_limit"])
        current.update(seed=seed, period=period, episode=episode)
        episode += 1
        if entry_wait is not None:
            entry_wait.reset()
        return core.reset(seed, period)

    def step(actions: np.ndarray) -> tuple:
        if shared:  # padded actions (only unmasked algorithms pick them) keep the green
            actions = np.where(actions < core.n_actions, actions, core.loop.signals.phase)
        rows, rewards, done, info = core.step(actions)
        if entry_wait is not None and not done:
            rewards = rewards - entry_wait()
        extra = None
        if done:
            extra = {"terminal": rows, "kpis": info.get("kpis"), "error": info.get("error"), **current}
            rows = start()
        return rows, rewards, done, pack_masks(core.masks(), width, shared), extra

    teacher = None
    while True:
        try:
            cmd, data = conn.recv()
        except (EOFError, KeyboardInterrupt):
            break
        t0 = time.perf_counter()
        try:
            if cmd == "step":
                reply = step(data)
            elif cmd == "teacher":  # a heuristic decides; the reply says what it chose
                if teacher is None or teacher.name != data:
                    teacher = make_teacher(data, core.base)
                actions = teacher_actions(teacher.decide(core.loop.state()), core.loop.signals.phase,
                                          core.options.action_mode)
                reply = (actions, *step(actions))
            elif cmd == "reset":
                rows = start()
                reply = (rows, pack_masks(core.masks(), width, shared))
            elif cmd == "state":
                reply = {"episode": episode, "busy_s": busy, "cpu_s": time.process_time()}
            elif cmd == "close":
                core.close()
                conn.send(("ok", None))
                break
            else:
                raise ValueError(f"unknown worker command {cmd!r}")
        except Exception as exc:  # noqa: BLE001 - the parent raises it in the learner
            conn.send(("error", _portable(exc)))
            continue
        busy += time.perf_counter() - t0
        conn.send(("ok", reply))
    conn.close()


def make_teacher(name: str, scenario):
    """An adaptive heuristic whose decisions pretraining imitates."""
    from engine.controllers import make_controller
    from engine.errors import ConfigError

    teacher = make_controller(name, scenario)
    if not teacher.adaptive:
        raise ConfigError(f"pretrain.heuristic '{name}' runs fixed programs; choose an adaptive one "
                          "(max_pressure, greedy, sotl, actuated)")
    return teacher


def teacher_actions(targets: np.ndarray, phase: np.ndarray, action_mode: str) -> np.ndarray:
    """A heuristic's targets (-1: keep) as env actions: the green to hold, or switch flags."""
    targets = np.asarray(targets, dtype=np.int64)
    if action_mode == "phase":
        return np.where(targets >= 0, targets, phase).astype(np.int64)
    return ((targets >= 0) & (targets != phase)).astype(np.int64)


def _portable(exc: Exception) -> Exception:
    """The exception itself if it is a one-line user error, else its traceback as text."""
    from engine.errors import CqSignalError

    if isinstance(exc, CqSignalError):
        return exc
    return RuntimeError("".join(traceback.format_exception(exc)).strip())
