"""The one way to run many simulations (controllers x scenarios x seeds) in worker processes.

``bench``, plan evaluation (``cqsignal plan``) and model evaluation (``cqsignal
evaluate`` and the evaluations during ``train``) all hand their runs to
:func:`run_all`, on local processes or on a Ray cluster through the same call.

A *work* function is a module-level ``work(task, progress) -> result`` (so any
process can import it); ``progress(done_s, total_s)`` reports simulated seconds.
Every run gets a fresh process, which is what libsumo needs (one simulation per
process) and what isolates crashes: a worker that dies (SUMO segfault, the OOM
killer) fails its own run and no other.

- **Local**: processes come from a forkserver that has already imported the
  engine (and ``preload``), so a run starts in milliseconds. Each worker dies with
  the process that asked for it, kill -9 included (:mod:`engine.procs`), runs
  with one BLAS/torch thread (one core per simulation), and streams its progress.
- **Ray** (``ray="auto"``, ``"ray://host:10001"``, ``"host:6379"`` or ``"local"``):
  one Ray task per run with ``max_calls=1`` (a fresh worker process per run). Every
  node needs cqsignal installed and the network files at the same paths. The
  address is checked first (:func:`check_ray`). After a ``kill -9`` of the command,
  the tasks and a ``local`` instance's GCS and raylet end at once; Ray's own node
  agents (dashboard and runtime-env agents) exit by themselves within about two
  minutes (Ray's supervision, not cqsignal's).
- **Inline** (``inline=True`` with one worker and no Ray): in this process, for
  callers that run no other simulation themselves.

A run that raises or whose process dies comes back as a :class:`RunFailed`
outcome, never as an exception: the caller decides whether one failure stops
the rest (plan evaluation, training) or becomes a row's error (bench).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, TypeVar

from engine.errors import ConfigError, CqSignalError

T = TypeVar("T")
Progress = Callable[[float, float], None]
Work = Callable[[Any, "Progress | None"], Any]

# Thread pools of numeric libraries: one thread each, since every process runs one simulation.
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")
_BASE_PRELOAD = ("engine.runner", "engine.controllers.loading", "engine.controllers.heuristics")
_PROGRESS_EVERY_S = 0.5


@dataclass(frozen=True)
class RunFailed:
    """The outcome of a run that raised (``error``: one line) or whose process died."""

    error: str

    def __str__(self) -> str:
        return self.error


def one_line(exc: BaseException) -> str:
    """An exception as one line: the message of a cqsignal error, else its class and message."""
    text = (str(exc).strip() or exc.__class__.__name__).splitlines()[0]
    return text if isinstance(exc, CqSignalError) else f"{exc.__class__.__name__}: {text}"


def limit_threads() -> None:
    """One thread for every numeric library in this process (call before heavy imports)."""
    for var in THREAD_VARS:
        os.environ[var] = "1"
    try:
        import sys

        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(1)
    except Exception:  # noqa: BLE001 - a torch that refuses is not worth failing a run for
        pass


def run_all(work: Work, tasks: Sequence[T], *, workers: int = 1, ray: str | None = None,
            on_done: Callable[[T, Any], None] | None = None,
            on_progress: Callable[[T, float], None] | None = None,
            name: Callable[[T], str] | None = None, log_dir: Path | None = None,
            preload: Sequence[str] = (), inline: bool = False) -> list[Any]:
    """Run ``work(task, progress)`` for every task; outcomes (result or :class:`RunFailed`) in task order.

    ``workers``: runs at once (local) or CPUs of a ``ray="local"`` instance.
    ``on_done(task, outcome)`` is called as each run ends, in completion order;
    ``on_progress(task, simulated_s)`` as runs advance (local and inline only).
    ``log_dir`` with ``name``: each local worker's stdout/stderr (SUMO's messages) go
    to ``log_dir/<name>.log``, kept only if not empty.

    Raises :class:`ConfigError` if Ray is asked for but missing or unreachable.
    """
    tasks = list(tasks)
    outcomes: list[Any] = [None] * len(tasks)

    def finished(i: int, outcome: Any) -> None:
        outcomes[i] = outcome
        if on_done is not None:
            on_done(tasks[i], outcome)

    if not tasks:
        return outcomes
    if ray is not None:
        _run_ray(work, tasks, ray, workers, finished)
    elif inline and workers <= 1:
        for i, task in enumerate(tasks):
            tick = None if on_progress is None else (lambda done, _total, t=task: on_progress(t, done))
            finished(i, _call(work, task, tick))
    else:
        _run_local(work, tasks, workers, finished, on_progress, name, log_dir, preload)
    return outcomes


def _call(work: Work, task: Any, progress: Progress | None = None) -> Any:
    try:
        return work(task, progress)
    except Exception as exc:  # noqa: BLE001 - an outcome, the caller decides what a failure means
        return RunFailed(one_line(exc))


# -- local processes --------------------------------------------------------------

def _context(preload: Sequence[str]) -> mp.context.BaseContext:
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(list(dict.fromkeys((*_BASE_PRELOAD, *preload))))
        return ctx
    return mp.get_context("spawn")


def _child(conn: Connection, work: Work, task: Any, log: str | None, ancestor: int) -> None:
    """Worker process: run one task, stream progress, send the outcome, exit (or die with the caller)."""
    from engine.procs import die_with_parent

    die_with_parent(ancestor)  # kill -9 of the caller must not leave this run going
    limit_threads()
    if log is not None:  # SUMO writes to the C-level streams: keep them off the caller's terminal
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    last = 0.0

    def progress(done: float, _total: float) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= _PROGRESS_EVERY_S:
            last = now
            conn.send(("progress", done))

    outcome = _call(work, task, progress)
    try:
        conn.send(("done", outcome))
    except Exception as exc:  # noqa: BLE001 - a result that does not pickle
        conn.send(("done", RunFailed(f"result could not be sent back: {one_line(exc)}")))
    conn.close()


def _run_local(work: Work, tasks: list, workers: int, finished: Callable[[int, Any], None],
               on_progress: Callable[[Any, float], None] | None, name: Callable[[Any], str] | None,
               log_dir: Path | None, preload: Sequence[str]) -> None:
    ctx = _context(preload)
    pending = deque(range(len(tasks)))
    running: dict[Connection, tuple[mp.process.BaseProcess, int]] = {}
    logs = log_dir is not None and name is not None
    if logs:
        log_dir.mkdir(parents=True, exist_ok=True)
    try:
        while pending or running:
            while pending and len(running) < max(1, workers):
                i = pending.popleft()
                log = str(log_dir / f"{name(tasks[i])}.log") if logs else None
                parent, child = ctx.Pipe(duplex=False)
                proc = ctx.Process(target=_child, args=(child, work, tasks[i], log, os.getpid()), daemon=True)
                proc.start()
                child.close()
                running[parent] = (proc, i)
            wait(list(running) + [p.sentinel for p, _ in running.values()], timeout=1.0)
            for conn in list(running):
                proc, i = running[conn]
                alive = proc.is_alive()  # before draining: a dead worker's last words are already buffered
                outcome = None
                try:
                    while conn.poll():
                        kind, payload = conn.recv()
                        if kind == "progress":
                            if on_progress is not None:
                                on_progress(tasks[i], payload)
                        else:
                            outcome = payload
                except (EOFError, OSError):
                    pass
                if outcome is None and alive:
                    continue
                proc.join()
                conn.close()
                del running[conn]
                if outcome is None:
                    outcome = RunFailed(f"worker process died (exit code {proc.exitcode})")
                if logs:
                    _drop_empty(log_dir / f"{name(tasks[i])}.log")
                finished(i, outcome)
    finally:
        for proc, _ in running.values():
            proc.terminate()
        for proc, _ in running.values():
            proc.join(timeout=5)
        if logs and log_dir.is_dir() and not any(log_dir.iterdir()):
            log_dir.rmdir()


def _drop_empty(log: Path) -> None:
    if log.is_file() and log.stat().st_size == 0:
        log.unlink()


# -- Ray ------------------------------------------------------------------------------

RAY_CONNECT_TIMEOUT_S = 5.0


def check_ray(address: str) -> None:
    """Refuse, in one line and at once, a Ray address that cannot work.

    ``local`` and ``auto`` need only the ``ray`` extra; ``ray://host:port`` (Ray Client)
    and ``host:port`` (a cluster's GCS) must accept a TCP connection within 5 s. Without
    this check Ray retries an unreachable GCS for minutes and a Client address for 30 s,
    printing its own log lines. Raises :class:`ConfigError`.
    """
    import socket

    if not address or not address.strip():
        raise ConfigError("--ray: give an address ('auto', 'local', 'ray://host:10001' or 'host:6379')")
    try:
        import ray  # noqa: F401
    except ImportError:
        raise ConfigError("--ray needs the optional extra: pip install 'cqsignal[ray]'") from None
    if address in ("local", "auto"):
        return
    target = address.removeprefix("ray://")
    host, sep, port = target.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigError(f"ray address '{address}': expected 'auto', 'local', 'ray://host:port' or 'host:port'")
    try:
        with socket.create_connection((host, int(port)), timeout=RAY_CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        why = exc.strerror or exc.__class__.__name__
        raise ConfigError(f"ray address '{address}': cannot connect ({why})") from None


def _ray_task(work: Work, task: Any) -> Any:
    limit_threads()
    return _call(work, task)


def _run_ray(work: Work, tasks: list, address: str, workers: int,
             finished: Callable[[int, Any], None]) -> None:
    import logging
    import warnings

    check_ray(address)
    import ray

    started = False
    if not ray.is_initialized():
        kwargs: dict = {"include_dashboard": False} if address == "local" else {}
        kwargs["logging_level"] = logging.ERROR  # Ray's own INFO lines would break the one-line contract
        if address == "local" and workers:
            kwargs["num_cpus"] = workers
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ray.init(address=address, log_to_driver=False, **kwargs)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            ray.shutdown()  # a half-made client connection would spoil the next ray.init in this process
            raise ConfigError(f"ray address '{address}': cannot connect ({one_line(exc)})") from None
        started = True
    try:
        remote = ray.remote(num_cpus=1, max_calls=1, max_retries=0)(_ray_task)
        refs = {remote.remote(work, task): i for i, task in enumerate(tasks)}
        waiting = list(refs)
        while waiting:
            done, waiting = ray.wait(waiting, num_returns=1)
            for ref in done:
                try:
                    outcome = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - the worker died or the node was lost
                    outcome = RunFailed(f"ray task failed: {exc.__class__.__name__}")
                finished(refs[ref], outcome)
    finally:
        if started:
            ray.shutdown()


__all__ = ["THREAD_VARS", "RunFailed", "check_ray", "limit_threads", "one_line", "run_all"]
