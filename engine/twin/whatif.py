"""What-if runs: the next horizon under a candidate plan, from the current traffic state.

Demand for the horizon comes from the forecast: each count location's flow per
5-min interval (the forecast's mean, low or high) becomes edge counts that
calibrate's route sampling (:mod:`engine.calibrate.sampler`, SUMO's
``routeSampler.py``) turns into vehicles. The run starts from

* ``state``: SUMO's saved state of the field (every vehicle where it is), or
* counts only (``state`` None): an empty network loaded for ``warmup_s`` with the
  demand the loops counted in that time, under the plan that ran then — what a
  deployment without vehicle positions can do.

It then runs the candidate's programs for the horizon, SUMO's microscopic model
or, for screening, its mesoscopic one with junction control. The result is
the horizon's total delay: SUMO's ``timeLoss`` summed over every edge
(``edgeData``, internal edges included) plus the seconds vehicles waited to enter.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from engine.calibrate.counts import Count
from engine.twin.forecast import FlowForecast

COUNT_STEP_S = 300.0
LEVELS = ("low", "mean", "high")


@dataclass(frozen=True)
class WhatIf:
    """One what-if run (picklable: it goes to a worker process)."""

    name: str
    net_file: Path
    routes: tuple[Path, ...]  # horizon demand (and, counts-only, the warm-up demand)
    programs: Path  # additional file: tlLogic programs of ``program`` (and ``warmup_program``)
    program: str
    begin: float  # s, the decision time
    end: float  # s, begin + horizon
    workdir: Path
    state: Path | None = None  # SUMO state of the field at ``begin``; None: counts-only warm-up
    warmup_s: float = 0.0
    warmup_program: str | None = None
    meso: bool = False
    seed: int = 0


@dataclass(frozen=True)
class WhatIfResult:
    name: str
    delay_veh_h: float  # time lost on the network plus waited to enter, over the horizon
    backlog_veh_h: float  # of which waiting to enter
    arrived: int  # vehicles that finished their trip in the horizon


def horizon_counts(forecasts: Mapping[str, FlowForecast], begin: float, horizon_s: float,
                   level: str = "mean") -> list[Count]:
    """Edge counts (vehicles per 5-min interval) from ``begin`` for ``horizon_s``, at a forecast level."""
    if level not in LEVELS:
        raise ValueError(f"level {level!r}: one of {LEVELS}")
    out = []
    for loc, f in sorted(forecasts.items()):
        values = {"low": f.low, "mean": f.mean, "high": f.high}[level]
        n = min(len(values), int(math.ceil(horizon_s / f.step_s - 1e-9)))
        for i in range(n):
            b = begin + i * f.step_s
            out.append(Count(b, b + f.step_s, loc, None, max(0.0, float(values[i])) * f.step_s / 3600.0,
                             "forecast"))
    return out


def sample_demand(counts: Sequence[Count], routes: Sequence[tuple[str, ...]], candidates: Path,
                  begin: float, end: float, out: Path, seed: int, prefix: str) -> Path:
    """Vehicles matching ``counts`` over [begin, end), drawn from the candidate ``routes`` (routeSampler).

    The counts are first made consistent with each other (:func:`engine.calibrate.reconcile.reconcile`),
    as ``calibrate`` does; ``candidates`` is the route file of ``routes``. Vehicle ids start with ``prefix``.
    """
    from engine.calibrate.reconcile import reconcile
    from engine.calibrate.sampler import run_route_sampler, write_count_data

    counts = list(counts)
    work = out.parent
    edge_file, turn_file = work / f"{out.stem}.edgedata.xml", work / f"{out.stem}.turns.xml"
    write_count_data(counts, 0.0, edge_file, turn_file, reconcile(counts, routes))
    run_route_sampler(candidates, edge_file, None, begin, end, out, seed,
                      'type="car" departLane="best" departSpeed="max"', work / f"{out.stem}.log", prefix=prefix)
    return out


def run_whatif(task: WhatIf, progress=None) -> WhatIfResult:
    """Run ``task`` in this process (libsumo: one per process; :func:`engine.runs.run_all` gives each its own)."""
    import libsumo as ls

    from engine.sim import sumo_binary

    task.workdir.mkdir(parents=True, exist_ok=True)
    edge_out = task.workdir / f"{task.name}.edgedata.xml"
    meandata = task.workdir / f"{task.name}.meandata.add.xml"
    meandata.write_text(
        f'<additional>\n    <edgeData id="whatif" file="{edge_out}" begin="{task.begin:g}" end="{task.end:g}" '
        'withInternal="true" excludeEmpty="true"/>\n</additional>\n', encoding="utf-8")
    start = task.begin - (task.warmup_s if task.state is None else 0.0)
    args = [sumo_binary(), "--net-file", str(task.net_file), "--begin", f"{start:g}", "--end", f"{task.end:g}",
            "--route-files", ",".join(str(r) for r in task.routes),
            "--additional-files", f"{task.programs},{meandata}",
            "--seed", str(task.seed), "--no-step-log", "true", "--no-warnings", "true",
            "--duration-log.disable", "true", "--time-to-teleport", "300",
            "--error-log", str(task.workdir / f"{task.name}.errors.log")]
    if task.state is not None:
        args += ["--load-state", str(task.state)]
    if task.meso:
        args += ["--mesosim", "true", "--meso-junction-control", "true"]
    ls.start(args)
    try:
        signals = ls.trafficlight.getIDList()
        if task.state is None and task.warmup_program:
            _switch(ls, signals, task.warmup_program)
            ls.simulationStep(task.begin)
        _switch(ls, signals, task.program)
        backlog = 0.0
        arrived = 0
        t = ls.simulation.getTime()
        while t < task.end - 1e-9:
            ls.simulationStep()
            t = ls.simulation.getTime()
            backlog += len(ls.simulation.getPendingVehicles())
            arrived += ls.simulation.getArrivedNumber()
    finally:
        ls.close()
    import xml.etree.ElementTree as ET

    lost = sum(float(e.get("timeLoss", 0.0)) for e in ET.parse(edge_out).getroot().iter("edge"))
    return WhatIfResult(task.name, (lost + backlog) / 3600.0, backlog / 3600.0, arrived)


def _switch(ls, signals: Sequence[str], program: str) -> None:
    """Every signal onto ``program`` (SUMO keeps the program's own offset: its position in the cycle)."""
    for tls in signals:
        if program in {lg.programID for lg in ls.trafficlight.getAllProgramLogics(tls)}:
            ls.trafficlight.setProgram(tls, program)
