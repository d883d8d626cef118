"""The process behind each parallel environment: one SUMO (libsumo) per process.

A worker owns an :class:`engine.env_core.EnvCore`, resets it by itself when an
episode ends (so one message per step does the whole round trip) and answers
with observation rows, rewards and the next action masks. It imports neither
torch nor stable-baselines3, and runs single-threaded numerics, so that two
workers and the learner share two cores without oversubscription.
"""

from __future__ import annotations

import time
import traceback
from multiprocessing.connection import Connection

import numpy as np

from engine.runs import limit_threads


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


def run_worker(conn: Connection, spec: dict) -> None:  # noqa: C901 - one message loop, a branch per command
    """Serve ``step``/``reset``/``state``/``close`` messages until closed."""
    from engine.procs import die_with_parent

    die_with_parent(spec.get("ancestor"))  # an env worker ends with its trainer, kill -9 included
    limit_threads()
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
    episode = int(spec["episode"])
    busy = 0.0
    current: dict = {}

    def start() -> np.ndarray:
        nonlocal episode
        seed, period = episode_draw(spec["seed"], spec["index"], episode, periods, spec["seed_limit"])
        current.update(seed=seed, period=period, episode=episode)
        episode += 1
        return core.reset(seed, period)

    def step(actions: np.ndarray) -> tuple:
        if shared:  # padded actions (only unmasked algorithms pick them) keep the green
            actions = np.where(actions < core.n_actions, actions, core.loop.signals.phase)
        rows, rewards, done, info = core.step(actions)  # the env's reward, as gym.make gives it
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
                phase = core.loop.signals.phase
                actions = within_masks(teacher_actions(teacher.decide(core.loop.state()), phase,
                                                       core.options.action_mode), core.masks(),
                                       phase if core.options.action_mode == "phase" else None)
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


def within_masks(actions: np.ndarray, masks: list[np.ndarray], phase: np.ndarray | None = None) -> np.ndarray:
    """The teacher behind the env's masks, as a policy is: where its action is not allowed (the
    starvation guard names a phase while max pressure would change to another), an allowed
    one, other than the current green ``phase`` where there is one (the guard's phase).
    Imitation labels outside the mask are unlearnable (their masked log-likelihood has no
    minimum) and taught the policy to avoid long-waiting phases."""
    actions = np.asarray(actions, dtype=np.int64).copy()
    for k, m in enumerate(masks):
        if not m[actions[k]]:
            allowed = np.flatnonzero(m)
            others = allowed[allowed != int(phase[k])] if phase is not None else allowed
            actions[k] = int(others[0] if len(others) else allowed[0])  # a change stays a change
    return actions


def _portable(exc: Exception) -> Exception:
    """The exception itself if it is a one-line user error, else its traceback as text."""
    from engine.errors import CqSignalError

    if isinstance(exc, CqSignalError):
        return exc
    return RuntimeError("".join(traceback.format_exception(exc)).strip())
