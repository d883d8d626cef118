"""Simulating plans: a fixed-time controller that runs a plan's programs, and seed-averaged KPIs.

A plan runs in SUMO as an additional file (SUMO runs the program loaded last),
through the same :func:`engine.runner.run_controller` as every other
controller, so its KPIs are the ones ``simulate`` and ``bench`` report. Route
files are generated once per seed and reused by every candidate plan.
"""

from __future__ import annotations

import dataclasses
import statistics
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.errors import ConfigError, SimulationError
from engine.loop import LoopOptions, TrafficState
from engine.metrics import KPIs
from engine.plan.export import programs_xml, write_text_atomic
from engine.plan.model import Plan, PeriodPlan
from engine.runner import run_controller
from engine.runs import RunFailed, run_all
from engine.scenario import Scenario
from engine.signals import Intersection


class PlanPrograms:
    """Fixed-time controller: SUMO runs the programs of an exported plan file.

    With several programs per signal (a time-of-day export), only one period's
    programs are loaded, ``period`` or else the scenario's (the WAUT is left
    out: a period's run starts at simulation time 0, not at its time of day).
    """

    adaptive = False

    def __init__(self, additional: Path, name: str = "plan", period: str | None = None) -> None:
        self.additional = Path(additional)
        if not self.additional.is_file():
            raise ConfigError(f"plan file not found: {self.additional}")
        self.name = name
        self.period = period

    def setup(self, loop) -> None:
        """Add the programs to the scenario (called before the loop starts SUMO)."""
        path = _period_only(self.additional, self.period or loop.scenario.period, loop.workdir)
        loop.scenario = plan_scenario(loop.scenario, (path,), loop.workdir)

    def decide(self, state: TrafficState) -> np.ndarray:
        return np.full(len(state.phase), -1, dtype=np.int64)


def plan_scenario(scenario: Scenario, programs: Sequence[Path], workdir: Path) -> Scenario:
    """``scenario`` running the programs in the additional files ``programs`` (loaded last: SUMO runs
    the program loaded last) instead of its own time-of-day switching.

    A WAUT in the scenario's own additional files (a city's program switching) would start its
    program and switch back to it whatever is loaded after it, so its ``wautJunction`` entries for
    the signals ``programs`` program are left out: those files are copied into ``workdir`` without
    them (relative ``file`` attributes made absolute, so outputs land where they did). Files
    without such entries are used as they are. ConfigError for an unreadable file.
    """
    ids: set[str] = set()
    for path in programs:
        ids |= {el.get("id") for el in _xml_root(Path(path)).iter("tlLogic")}
    files = []
    for n, path in enumerate(scenario.additional_files):
        root = _xml_root(path)
        parents = {child: parent for parent in root.iter() for child in parent}
        dropped = [el for el in root.iter("wautJunction") if el.get("junctionID") in ids]
        if not dropped:
            files.append(path)
            continue
        for el in dropped:
            parents[el].remove(el)
        for el in root.iter():
            value = el.get("file")
            if value and not Path(value).is_absolute():
                el.set("file", str((path.parent / value).resolve()))
        out = Path(workdir) / f"{n}_{path.stem}.no_waut.xml"
        write_text_atomic(out, ET.tostring(root, encoding="unicode"))
        files.append(out)
    return scenario.with_options(additional_files=(*files, *(Path(p) for p in programs)))


def _xml_root(path: Path) -> ET.Element:
    try:
        return ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        raise ConfigError(f"{path}: not a readable additional file ({exc})") from None


def _period_only(path: Path, period: str | None, workdir: Path) -> Path:
    """``path`` itself, or a copy holding only ``period``'s programs when it has several per signal."""
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise ConfigError(f"{path}: malformed XML ({exc})") from None
    logics = root.findall("tlLogic")
    programs = {el.get("programID") for el in logics}
    if len(programs) <= 1 and root.find("WAUT") is None:
        return path
    if period not in programs:
        raise ConfigError(f"{path}: no programs for period {period!r}; name one of "
                          f"{', '.join(sorted(p for p in programs if p))}")
    keep = ET.Element("additional")
    keep.extend(el for el in logics if el.get("programID") == period)
    out = Path(workdir) / f"{path.stem}.{period}.add.xml"
    write_text_atomic(out, ET.tostring(keep, encoding="unicode"))
    return out


@dataclass(frozen=True)
class Evaluation:
    """A plan's KPIs on each evaluation seed and the search objective."""

    kpis: tuple[KPIs, ...]
    objective: float

    @property
    def mean_delay(self) -> float:
        return statistics.fmean(k.mean_delay_s for k in self.kpis)

    @property
    def mean_stops(self) -> float:
        return statistics.fmean(k.mean_stops for k in self.kpis)


def objective(kpis: Sequence[KPIs], stops_weight: float) -> float:
    """Mean delay (+ weight x stops) over seeds: what the search minimises."""
    return statistics.fmean(k.mean_delay_s + stops_weight * k.mean_stops for k in kpis)


class PlanEvaluator:
    """Runs period plans (or the network's defaults) on fixed seeds with cached routes.

    The simulations of a batch (plans x seeds) go to :func:`engine.runs.run_all`:
    with ``workers`` > 1 that many worker processes at once (libsumo holds one
    simulation per process), with ``ray`` on a Ray cluster; with one worker and no
    Ray, in this process.
    """

    def __init__(self, scenario: Scenario, seeds: Sequence[int], duration: float, scale: float = 1.0,
                 stops_weight: float = 0.0, workdir: Path | None = None, emissions: bool = False,
                 workers: int = 1, ray: str | None = None) -> None:
        # no emission device by default: a quarter of SUMO's step time, and the search needs no CO2
        self.base = dataclasses.replace(scenario.with_options(duration=duration, scale=scale), emissions=emissions)
        self.seeds = tuple(seeds)
        self.stops_weight = stops_weight
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="cqsignal-plan-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.workers = max(1, int(workers))
        self.ray = ray
        self.runs = 0
        self._files = 0

    def scenario(self, seed: int) -> Scenario:
        """The base scenario for ``seed`` with its routes generated once."""
        sc = self.base.with_options(seed=seed)
        if sc.demand_file is None:
            return sc
        routes = sc.prepare_routes(self.workdir)
        return dataclasses.replace(sc, demand_file=None, route_files=routes)

    def run(self, pp: PeriodPlan | None, intersections: Mapping[str, Intersection],
            progress: Callable[[float, float], None] | None = None, out: Path | None = None,
            seeds: Sequence[int] | None = None) -> Evaluation:
        """KPIs of ``pp`` (None: the network's own programs) on every seed (or on ``seeds``)."""
        return self.run_many([pp], intersections, progress=progress, out=out, seeds=seeds)[0]

    def run_many(self, plans: Sequence[PeriodPlan | tuple[Path, ...] | None],
                 intersections: Mapping[str, Intersection], progress: Callable[[float, float], None] | None = None,
                 out: Path | None = None, seeds: Sequence[int] | None = None) -> list[Evaluation]:
        """One :class:`Evaluation` per plan, every plan on the same seeds, ``workers`` simulations at a time.

        A plan is a :class:`PeriodPlan`, None (the network's own programs), or
        additional files of programs that SUMO loads after the network's (it
        runs the last loaded), e.g. another tool's output.

        Raises :class:`SimulationError` naming the first run that failed.
        """
        seeds = tuple(seeds) if seeds is not None else self.seeds
        jobs = []
        for pp in plans:
            add, extra, name = None, (), "fixed"
            if isinstance(pp, PeriodPlan):
                self._files += 1
                add = self.workdir / f"candidate_{pp.period}_{self._files}.add.xml"
                write_text_atomic(add, programs_xml(Plan("candidate", {pp.period: pp}), intersections))
                name = pp.method
            elif pp is not None:
                extra = tuple(Path(f) for f in pp)
            for seed in seeds:
                keep = (out / f"seed{seed}") if out is not None else None
                sc = self.scenario(seed)
                if extra:
                    sc = plan_scenario(sc, extra, self.workdir)
                jobs.append((sc, add, name, keep))
        total = len(jobs) * self.base.duration
        partial: dict[int, float] = {}
        finished = 0

        def advanced(job: tuple, done: float) -> None:
            partial[id(job)] = done
            if progress is not None:
                progress(finished * self.base.duration + sum(partial.values()), total)

        def ended(job: tuple, _outcome) -> None:
            nonlocal finished
            partial.pop(id(job), None)
            finished += 1
            self.runs += 1
            if progress is not None:
                progress(finished * self.base.duration + sum(partial.values()), total)

        results = run_all(_simulate, jobs, workers=self.workers, ray=self.ray, on_done=ended,
                          on_progress=advanced, preload=("engine.plan.evaluate",), inline=True)
        for job, result in zip(jobs, results):
            if isinstance(result, RunFailed):
                raise SimulationError(f"simulation of {job[2]} (seed {job[0].seed}) failed: {result.error}")
        n = len(seeds)
        return [Evaluation(tuple(results[k * n:(k + 1) * n]), objective(results[k * n:(k + 1) * n],
                                                                         self.stops_weight))
                for k in range(len(plans))]

    def close(self) -> None:
        """Nothing to release: every run has its own process (kept for ``with`` blocks)."""

    def __enter__(self) -> PlanEvaluator:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _simulate(job: tuple, progress: Callable[[float, float], None] | None = None) -> KPIs:
    """One simulation of a batch (module level, so worker processes can run it)."""
    from engine.controllers import FixedTime

    scenario, additional, name, keep = job
    controller = FixedTime(scenario) if additional is None else PlanPrograms(additional, name=name)
    return run_controller(scenario, controller, LoopOptions(adaptive=False), progress=progress, out=keep)
