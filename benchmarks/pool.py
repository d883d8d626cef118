"""Run benchmark specs in parallel local processes: a fresh process per run.

A fresh process per run is what libsumo needs (one simulation per process)
and it isolates crashes: a worker that dies (a segfault in SUMO, the OOM
killer) fails its own run and no other. Processes come from a forkserver that
has already imported the engine, so a run starts in milliseconds, not seconds.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection, wait
from pathlib import Path

from benchmarks.worker import RunSpec, execute, failed_row

OnProgress = Callable[[RunSpec, float], None]  # simulated seconds so far
OnDone = Callable[[RunSpec, dict], None]
_PROGRESS_EVERY_S = 0.5


def _context() -> mp.context.BaseContext:
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["benchmarks.worker", "engine.runner", "engine.controllers.loading",
                                   "engine.controllers.heuristics"])
        return ctx
    return mp.get_context("spawn")


def _child(conn: Connection, spec: RunSpec, log: str | None, ancestor: int | None = None) -> None:
    """Worker process: run one spec, stream progress, send the row, exit (or die with the bench)."""
    from engine.procs import die_with_parent

    die_with_parent(ancestor)  # kill -9 of the bench must not leave this run going
    if log is not None:  # SUMO writes to the C-level streams: keep them off the progress bar
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    last = 0.0

    def progress(done: float, total: float) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= _PROGRESS_EVERY_S:
            last = now
            conn.send(("progress", done))

    row = execute(spec, progress)
    conn.send(("done", row))
    conn.close()


def run_local(specs: Sequence[RunSpec], workers: int, on_done: OnDone,
              on_progress: OnProgress | None = None, log_dir: Path | None = None) -> None:
    """Run every spec, at most ``workers`` at a time; ``on_done`` gets each row as it comes."""
    ctx = _context()
    pending = deque(specs)
    running: dict[Connection, tuple[mp.process.BaseProcess, RunSpec]] = {}
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
    try:
        while pending or running:
            while pending and len(running) < max(1, workers):
                spec = pending.popleft()
                log = str(log_dir / f"{spec.slug}.log") if log_dir is not None else None
                parent, child = ctx.Pipe(duplex=False)
                proc = ctx.Process(target=_child, args=(child, spec, log, os.getpid()), daemon=True)
                proc.start()
                child.close()
                running[parent] = (proc, spec)
            wait(list(running) + [p.sentinel for p, _ in running.values()], timeout=1.0)
            for conn in list(running):
                proc, spec = running[conn]
                alive = proc.is_alive()  # before draining: a dead worker's last words are already buffered
                row = None
                try:
                    while conn.poll():
                        kind, payload = conn.recv()
                        if kind == "progress":
                            if on_progress is not None:
                                on_progress(spec, payload)
                        else:
                            row = payload
                except (EOFError, OSError):
                    pass
                if row is None and alive:
                    continue
                proc.join()
                conn.close()
                del running[conn]
                if row is None:
                    row = failed_row(spec, f"worker process died (exit code {proc.exitcode})")
                _drop_empty_log(log_dir, spec)
                on_done(spec, row)
    finally:
        for proc, _ in running.values():
            proc.terminate()
        for proc, _ in running.values():
            proc.join(timeout=5)
        if log_dir is not None and log_dir.is_dir() and not any(log_dir.iterdir()):
            log_dir.rmdir()


def _drop_empty_log(log_dir: Path | None, spec: RunSpec) -> None:
    if log_dir is None:
        return
    log = log_dir / f"{spec.slug}.log"
    if log.is_file() and log.stat().st_size == 0:
        log.unlink()
