"""One benchmark run: a controller on a scenario with one seed, in a process of its own.

libsumo allows one simulation per process, so every run gets a fresh process
(:func:`engine.runs.run_all`, local or Ray); :func:`execute` never raises: a failure becomes the row's
``error`` so the rest of the benchmark goes on.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from engine.metrics import KPIs

NO_PERIOD = "-"  # networks with fixed route files have no period of day

ID_COLUMNS = ["controller", "network", "period", "scale", "seed"]
COLUMNS = ID_COLUMNS + KPIs.names() + ["wall_s", "error"]


@dataclass(frozen=True)
class RunSpec:
    """Everything a worker needs (plain values, so it pickles to any process or node)."""

    controller: str  # label in tables
    heuristic: str | None  # registry name, or None for a model
    model: str | None  # absolute path of a model file
    network: str  # label in tables
    source: str  # embedded network name or absolute path
    routes: tuple[str, ...]
    period: str | None
    scale: float
    seed: int
    duration: float
    delta: int = 5
    min_green: float = 10.0
    max_green: float = 60.0
    begin: float = 0.0
    max_depart_delay: float = -1.0  # SUMO's convention: -1 never drops
    time_to_teleport: float = 300.0  # -1: never teleports
    inputs: str = ""  # hash of the contents of its network, route, demand and model files and the code version

    @property
    def key(self) -> tuple:
        """Identity of the run in the results table."""
        return (self.controller, self.network, self.period or NO_PERIOD, self.scale, self.seed)

    @property
    def digest(self) -> str:
        """Hash of every input (options, and through ``inputs`` the files' contents and the code
        version), so that a resumed benchmark reuses only identical runs."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]

    @property
    def slug(self) -> str:
        c, n, p, x, s = self.key
        return f"{c}__{n}__{p}__x{x:g}__s{s}".replace("/", "_")

    def identity(self) -> dict:
        return dict(zip(ID_COLUMNS, self.key))


def failed_row(spec: RunSpec, error: str, wall_s: float = math.nan) -> dict:
    """A row for a run that produced no KPIs."""
    return {**spec.identity(), **{k: math.nan for k in KPIs.names()}, "wall_s": wall_s,
            "error": error or "failed"}


def execute(spec: RunSpec, progress: Callable[[float, float], None] | None = None) -> dict:
    """Run ``spec`` and return its row (KPIs, wall time, empty error) or a failed row."""
    from engine.controllers.loading import load_controller
    from engine.errors import ConfigError
    from engine.loop import LoopOptions
    from engine.runner import run_controller
    from engine.runs import one_line
    from engine.scenario import Scenario

    start = time.perf_counter()
    try:
        scenario = Scenario.load(spec.source, period=spec.period, seed=spec.seed, scale=spec.scale,
                                 duration=spec.duration, routes=spec.routes, begin=spec.begin,
                                 max_depart_delay=spec.max_depart_delay,
                                 time_to_teleport=spec.time_to_teleport)
        if scenario.demand_file is None:
            scenario.check_routes(warn=False)  # the bench said it once, at config time
        if spec.model is not None and not Path(spec.model).is_file():
            raise ConfigError(f"model file not found: {spec.model}")
        controller = load_controller(spec.model or spec.heuristic, scenario)
        options = LoopOptions(adaptive=controller.adaptive, delta=spec.delta,
                              min_green=spec.min_green, max_green=spec.max_green)
        kpis = run_controller(scenario, controller, options, progress=progress)
    except Exception as exc:  # noqa: BLE001 - recorded, never raised: one bad run must not stop the rest
        return failed_row(spec, one_line(exc), time.perf_counter() - start)
    return {**spec.identity(), **kpis.to_dict(), "wall_s": time.perf_counter() - start, "error": ""}
