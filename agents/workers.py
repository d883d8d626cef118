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

from engine.runs import THREAD_VARS


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


class UnwatchedDelay:
    """Delay the env's reward cannot see, charged to the signal the vehicles will reach first.

    The engine's delay reward sums over each signal's watched incoming lanes. On
    the corridor those are the approach segments (``*.app``, the bays by the stop
    line); the link sections upstream of them and the vehicles still waiting to
    enter the network are not watched. Once a bay is full, more queue upstream
    cost a policy nothing, and trained policies learned to hide queues there
    (queue on the bays fell while the delay KPI rose). This term adds, in the
    delay reward's units, the delay on unwatched edges that lead into a watched
    approach (``n x (1 - v / v_max)``, like the reward) and the waiting time of
    vehicles not yet inserted (the KPI's ``departDelay``). Training only: it is
    not part of the observation, so deployed policies need nothing extra.
    """

    def __init__(self, core, weight: float) -> None:
        from engine.rewards import DELAY_SCALE

        self.core = core
        self.api = core.loop.sim.api
        self.edge_signal = {lane.rsplit("_", 1)[0]: k for k, ix in enumerate(core.layout.intersections)
                            for lane in ix.in_lanes}
        self.n = len(core.layout.intersections)
        self.scale = weight * core.options.delta / DELAY_SCALE
        self._first: dict[str, int] = {}
        self._feeders: list[tuple[str, int, float]] | None = None  # (edge, signal, max speed)

    def reset(self) -> None:
        self._first.clear()

    def _find_feeders(self) -> list[tuple[str, int, float]]:
        """Unwatched edges upstream of each watched approach, back to the previous signal or a source."""
        from engine.plan.measure import approaches  # the one tracing of approach links

        ixs = self.core.layout.intersections
        index = {ix.id: k for k, ix in enumerate(ixs)}
        links = approaches(self.core.base.net_file, {ix.id: ix for ix in ixs})
        return [(edge, index[sid], self.api.lane.getMaxSpeed(f"{edge}_0"))
                for sid, approach_list in links.items() for a in approach_list
                for edge in a.edges if edge not in self.edge_signal]

    def __call__(self) -> np.ndarray:
        api = self.api
        if self._feeders is None:
            self._feeders = self._find_feeders()
        counts = np.zeros(self.n)
        for edge, k, vmax in self._feeders:
            n = api.edge.getLastStepVehicleNumber(edge)
            if n:
                counts[k] += n * max(0.0, 1.0 - api.edge.getLastStepMeanSpeed(edge) / vmax)
        for vid in api.simulation.getPendingVehicles():
            k = self._first.get(vid)
            if k is None:  # the first signal on its route (source edges may lead to an approach)
                route = api.vehicle.getRoute(vid)
                k = self._first[vid] = next((self.edge_signal[e] for e in route if e in self.edge_signal), -1)
            if k >= 0:
                counts[k] += 1
        return counts * self.scale


def run_worker(conn: Connection, spec: dict) -> None:  # noqa: C901 - one message loop, a branch per command
    """Serve ``step``/``reset``/``state``/``close`` messages until closed."""
    from engine.procs import die_with_parent

    die_with_parent(spec.get("ancestor"))  # an env worker ends with its trainer, kill -9 included
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
    unwatched = UnwatchedDelay(core, spec["unwatched_delay"]) if spec.get("unwatched_delay") else None
    episode = int(spec["episode"])
    busy = 0.0
    current: dict = {}

    def start() -> np.ndarray:
        nonlocal episode
        seed, period = episode_draw(spec["seed"], spec["index"], episode, periods, spec["seed_limit"])
        current.update(seed=seed, period=period, episode=episode)
        episode += 1
        if unwatched is not None:
            unwatched.reset()
        return core.reset(seed, period)

    def step(actions: np.ndarray) -> tuple:
        if shared:  # padded actions (only unmasked algorithms pick them) keep the green
            actions = np.where(actions < core.n_actions, actions, core.loop.signals.phase)
        rows, rewards, done, info = core.step(actions)
        if unwatched is not None and not done:
            rewards = rewards - unwatched()
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
