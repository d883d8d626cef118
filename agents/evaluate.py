"""Evaluate models and heuristics on full scenarios, in parallel processes.

A job is one controller on one (period, seed); it runs through
:func:`engine.runner.run_controller` with the controller from
:func:`engine.controllers.loading.load_controller`, exactly what
``cqsignal simulate`` does, so evaluation KPIs are the ones a user would see.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

# KPIs averaged and logged for every evaluation (engineering units).
EVAL_KPIS = ("mean_delay_s", "mean_queue_veh", "throughput_veh_h", "mean_stops", "mean_travel_time_s",
             "never_inserted", "teleports")


@dataclass(frozen=True)
class Job:
    """One controller (a model path or a heuristic name) on one scenario."""

    controller: str
    network: str
    period: str | None
    seed: int
    duration: float
    scale: float = 1.0
    routes: tuple[str, ...] = ()
    delta: int = 5
    min_green: float = 10.0
    max_green: float = 60.0
    begin: float | None = None  # None: the scenario's
    max_depart_delay: float | None = 300.0  # None: never drop (SUMO's default)
    time_to_teleport: float | None = None  # None: the scenario's (SUMO's 300 s)
    emissions: bool = False


_FROM_OPTIONS = object()


def jobs_for(controller: str, options, periods: Iterable[str | None], seeds: Iterable[int],
             duration: float, emissions: bool = False, max_depart_delay=_FROM_OPTIONS,
             time_to_teleport=_FROM_OPTIONS) -> list[Job]:
    """Jobs of one controller over periods x seeds, with the env options' timing and (unless
    given) their bound on waiting to enter and time to teleport."""
    mdd = options.max_depart_delay if max_depart_delay is _FROM_OPTIONS else max_depart_delay
    ttt = options.time_to_teleport if time_to_teleport is _FROM_OPTIONS else time_to_teleport
    return [Job(controller=str(controller), network=options.network, period=p, seed=int(s),
                duration=float(duration), scale=options.scale, routes=tuple(options.routes),
                delta=options.delta, min_green=options.min_green, max_green=options.max_green,
                begin=options.begin, max_depart_delay=mdd, time_to_teleport=ttt, emissions=emissions)
            for p in periods for s in seeds]


def run_job(job: Job, progress: Callable[[float, float], None] | None = None) -> dict:
    """Run one job; its KPIs plus what it ran."""
    from engine.controllers.loading import load_controller
    from engine.loop import LoopOptions
    from engine.runner import run_controller
    from engine.scenario import Scenario

    scenario = Scenario.load(job.network, period=job.period, seed=job.seed, scale=job.scale,
                             duration=job.duration, routes=job.routes, begin=job.begin,
                             max_depart_delay=-1.0 if job.max_depart_delay is None else job.max_depart_delay,
                             time_to_teleport=job.time_to_teleport)
    scenario = scenario.with_options(emissions=job.emissions)
    controller = load_controller(job.controller, scenario, say=lambda _line: None)
    options = LoopOptions(adaptive=controller.adaptive, delta=job.delta, min_green=job.min_green,
                          max_green=job.max_green)
    kpis = run_controller(scenario, controller, options, progress=progress)
    return {**kpis.to_dict(), **asdict(job), "label": controller.name}


def run_jobs(jobs: Sequence[Job], workers: int = 1, ray: str | None = None) -> list[dict]:
    """Results in the order of ``jobs``, run by :func:`engine.runs.run_all` (``workers`` processes at
    once, or on the Ray cluster ``ray``; one worker and no Ray: in this process).

    Raises :class:`SimulationError` naming the first job that failed.
    """
    from engine.errors import SimulationError
    from engine.runs import RunFailed, run_all

    results = run_all(run_job, jobs, workers=max(1, int(workers)), ray=ray, inline=True,
                      preload=("agents.evaluate",))
    for job, result in zip(jobs, results):
        if isinstance(result, RunFailed):
            raise SimulationError(f"evaluation of {job.controller} ({job.period or 'routes'}, seed {job.seed}) "
                                  f"failed: {result.error}")
    return results


def summarise(results: Sequence[dict]) -> dict[str, float]:
    """Mean of each evaluation KPI over runs."""
    out = {}
    for key in EVAL_KPIS:
        values = [r[key] for r in results if r.get(key) is not None]
        out[key] = float(np.mean(values)) if values else math.nan
    return out


def compare(model_results: Sequence[dict], baseline_results: Sequence[dict], key: str = "mean_delay_s"):
    """Paired difference model - baseline over the (period, seed) both ran: (Estimate, percent)."""
    from benchmarks.stats import paired_difference  # one t-interval for the whole project

    def run_of(r: dict) -> tuple[str, int]:
        return (r["period"] or "", int(r["seed"]))

    runs = sorted({run_of(r) for r in model_results} | {run_of(r) for r in baseline_results})
    index = {run: i for i, run in enumerate(runs)}
    model = {index[run_of(r)]: float(r[key]) for r in model_results}
    base = {index[run_of(r)]: float(r[key]) for r in baseline_results}
    return paired_difference(model, base)
