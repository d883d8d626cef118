"""The one runner of simulations (engine.runs): outcomes in task order, a failure or a dead
worker is an outcome of its own run, progress streams back, one thread per worker, and the
same call on Ray gives the same KPIs as local processes (a real simulation on a corpus network).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.runs import RunFailed, run_all


def _work(task: tuple, progress) -> object:
    kind, value = task
    if kind == "raise":
        raise ValueError(f"boom {value}\nsecond line")
    if kind == "die":
        os._exit(value)
    if kind == "slow":
        progress(10.0, 100.0)
        time.sleep(0.7)
        progress(60.0, 100.0)
        time.sleep(0.2)
    if kind == "sleep":  # tests/test_outputs.py: killed with the process that asked for it
        print(os.getpid(), flush=True)
        time.sleep(value)
    if kind == "threads":
        return os.environ.get("OMP_NUM_THREADS")
    return value * 2


def test_outcomes_come_in_task_order_and_a_failure_fails_only_its_run():
    tasks = [("ok", 1), ("raise", 7), ("die", 3), ("ok", 2), ("threads", 0)]
    seen = []
    out = run_all(_work, tasks, workers=2, on_done=lambda t, o: seen.append(t))
    assert out[0] == 2 and out[3] == 4
    assert out[1] == RunFailed("ValueError: boom 7")
    assert out[2] == RunFailed("worker process died (exit code 3)")
    assert out[4] == "1"  # one BLAS thread per simulation process
    assert sorted(seen) == sorted(tasks)


@pytest.mark.parametrize("inline", [False, True])
def test_progress_streams_back_from_a_worker_and_inline(inline):
    got: list[float] = []
    out = run_all(_work, [("slow", 5)], inline=inline, on_progress=lambda t, s: got.append(s))
    assert out == [10] and got[0] == 10.0
    assert got == [10.0, 60.0]  # a worker sends at most one tick per 0.5 s; these are 0.7 s apart


def test_a_missing_ray_cluster_is_one_config_error():
    """In a process of its own: a failed client connection leaves Ray unusable in that process."""
    pytest.importorskip("ray", reason="the optional 'ray' extra is not installed")
    code = ("from engine.errors import ConfigError\nfrom engine.runs import run_all\n"
            "try:\n    run_all(print, [1], ray='ray://127.0.0.1:1')\n"
            "except ConfigError as exc:\n    print('refused:', exc)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).parents[1])
    assert "refused: ray address 'ray://127.0.0.1:1': cannot connect" in done.stdout, done.stderr[-2000:]


@pytest.mark.slow
def test_evaluation_on_ray_equals_local_processes(grid):
    """Model evaluation's jobs on a private Ray instance and on local processes: the same KPIs."""
    pytest.importorskip("ray", reason="the optional 'ray' extra is not installed")
    import ray

    from agents.evaluate import Job, run_jobs

    net, routes = grid
    jobs = [Job(controller=c, network=str(net), period=None, seed=s, duration=300, routes=(str(routes),),
                max_depart_delay=None) for c in ("fixed", "max_pressure") for s in (1, 2)]
    local = run_jobs(jobs, workers=2)
    on_ray = run_jobs(jobs, workers=2, ray="local")
    assert not ray.is_initialized()
    for a, b in zip(local, on_ray):
        assert a["controller"] == b["controller"] and a["seed"] == b["seed"]
        assert a["mean_delay_s"] == pytest.approx(b["mean_delay_s"], rel=1e-9)
        assert a["trips"] == b["trips"] > 0
    assert local[0]["mean_delay_s"] != local[2]["mean_delay_s"]  # the controllers differ, as they should
