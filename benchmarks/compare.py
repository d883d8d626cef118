"""The benchmark: expand a config into runs, run them in parallel, write tables, summary, plots.

Common random numbers: a run's seed fixes both the generated routes and SUMO's
``--seed``, so every controller meets exactly the same vehicles for a seed and
differences between controllers are paired over seeds.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from benchmarks.config import BenchConfig, ScenarioEntry
from benchmarks.results import Journal, reusable, to_table, write_table, write_text_atomic
from benchmarks.summary import console_table, failures_table, groups, markdown_tables, sweep_table
from benchmarks.worker import RunSpec, execute, failed_row
from engine.errors import ConfigError, CqSignalError
from engine.metrics import write_json_atomic
from engine.outputs import content_key, file_hashes, model_files, scenario_files
from engine.report import console
from engine.runs import RunFailed, run_all


@dataclass
class Plan:
    """The runs of a benchmark, in table order, and notes about what was left out."""

    specs: list[RunSpec]
    notes: list[str] = field(default_factory=list)
    inputs: dict[str, str] = field(default_factory=dict)  # every input file's sha256, by path


def _path(base: Path, value: str) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else (base / p).resolve()


def _heuristics() -> set[str]:
    from engine.controllers import CONTROLLERS, _load_builtin

    _load_builtin()
    return set(CONTROLLERS)


def _scenario_source(entry: ScenarioEntry, base: Path, where: str) -> tuple[str, tuple[str, ...]]:
    import networks

    path = _path(base, entry.network)
    if entry.network in networks.available():
        source = entry.network
    elif path.exists():
        source = str(path)
    else:
        raise ConfigError(f"{where}.network: '{entry.network}' is neither an embedded network "
                          f"({', '.join(networks.available())}) nor a file ({path})")
    routes = []
    for i, r in enumerate(entry.routes):
        rp = _path(base, r)
        if not rp.is_file():
            raise ConfigError(f"{where}.routes.{i}: file not found: {rp}")
        routes.append(str(rp))
    return source, tuple(routes)


Controllers = list[tuple[str, str | None, str | None]]  # (name, heuristic, model path)


def _controllers(config: BenchConfig, base: Path, source: str, notes: list[str]) -> Controllers:
    """The controllers to run: heuristics by name, models by path (optional ones may be skipped)."""
    controllers: Controllers = []
    known = None
    for i, c in enumerate(config.controllers):
        if c.model is None:
            known = known if known is not None else _heuristics()
            if c.name not in known:
                raise ConfigError(f"{source}: controllers.{i}: unknown controller '{c.name}' "
                                  f"(choose from {', '.join(sorted(known))}, or give a model file)")
            controllers.append((c.name, c.name, None))
            continue
        model = _path(base, c.model)
        if model.is_dir():
            raise ConfigError(f"{source}: controllers.{i}.model: {model} is a folder, not a model .zip")
        if not model.is_file() and c.optional:
            notes.append(f"controller '{c.name}' skipped: model file {model} not found (optional)")
            continue
        controllers.append((c.name, None, str(model)))
    if not controllers:
        raise ConfigError(f"{source}: controllers: none left to run")
    return controllers


def plan_runs(config: BenchConfig, base: Path, source: str = "config") -> Plan:
    """Every (controller, scenario, period, scale, seed) run, checked before anything starts."""
    from engine.scenario import Scenario

    notes: list[str] = []
    controllers = _controllers(config, base, source, notes)
    names = [c[0] for c in controllers]
    if config.baseline_name not in names:
        raise ConfigError(f"{source}: baseline: '{config.baseline_name}' was skipped")

    specs: dict[tuple, RunSpec] = {}
    labels: dict[str, tuple] = {}
    inputs: dict[str, str] = {}
    model_hashes = {model: file_hashes(model_files(model)) for _, _, model in controllers if model}
    for hashes in model_hashes.values():
        inputs.update(hashes)
    for j, entry in enumerate(config.scenarios):
        where = f"{source}: scenarios.{j}"
        src, routes = _scenario_source(entry, base, where)
        window = {"begin": entry.begin if entry.begin is not None else config.begin, "end": entry.end,
                  "duration": entry.duration or (None if entry.end is not None else config.duration),
                  "max_depart_delay": _first(entry.max_depart_delay, config.max_depart_delay),
                  "time_to_teleport": _first(entry.time_to_teleport, config.time_to_teleport)}
        periods: list[str | None] = list(entry.periods) if entry.periods else [None]
        try:
            loaded = [Scenario.load(src, period=p, routes=routes, **window) for p in periods]
            resolved = [sc.period for sc in loaded]
            if loaded[0].demand_file is None:
                loaded[0].check_routes()  # an empty route file or window: refused before any run
            label = entry.label or Scenario.of_network(src).name
        except CqSignalError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        sc = loaded[0]
        _check_controllers(config, sc, controllers, where)
        files = file_hashes(scenario_files(sc))  # a resumed run is reused only on the same contents
        inputs.update(files)
        duration = sc.duration
        sumo = {"begin": sc.begin, "max_depart_delay": sc.max_depart_delay,
                "time_to_teleport": sc.time_to_teleport}
        if labels.setdefault(label, (src, routes, duration, sc.begin)) != (src, routes, duration, sc.begin):
            raise ConfigError(f"{where}: label '{label}' already names another network, routes or "
                              "duration: give this entry its own 'label'")
        for period in resolved:
            for scale in entry.scales or config.scales:
                for seed in entry.seeds or config.seeds:
                    for name, heuristic, model in controllers:
                        spec = RunSpec(
                            controller=name, heuristic=heuristic, model=model, network=label,
                            source=src, routes=routes, period=period, scale=float(scale),
                            seed=int(seed), duration=float(duration), delta=config.loop.delta,
                            min_green=config.loop.min_green, max_green=config.loop.max_green, **sumo,
                            inputs=content_key({**files, **model_hashes.get(model, {})}))
                        specs.setdefault(spec.key, spec)
    return Plan(_table_order(list(specs.values()), names), notes, inputs)


def _check_controllers(config: BenchConfig, scenario, controllers: Controllers, where: str) -> None:
    """Refuse, before any run, settings every run of this scenario would fail on.

    The decision interval must cover the network's longest yellow (for adaptive
    controllers), and a model must fit the network and the loop timing it was trained with.
    """
    from engine.controllers import CONTROLLERS
    from engine.controllers.loading import check_model, read_meta
    from engine.env_core import EnvOptions
    from engine.layout import build_layout
    from engine.loop import LoopOptions

    loop = config.loop
    adaptive = [c for c in controllers if c[2] is not None or getattr(CONTROLLERS.get(c[1]), "adaptive", True)]
    if not adaptive:
        return
    try:
        layout = build_layout(scenario.net_file, None, tuple(scenario.additional_files), require=False)
        if layout.intersections:
            LoopOptions(adaptive=True, delta=loop.delta, min_green=loop.min_green,
                        max_green=loop.max_green).validate(layout)
    except CqSignalError as exc:
        raise ConfigError(f"{where}: loop: {exc}") from None
    for name, _heuristic, model in adaptive:
        if model is None or not Path(model).is_file():
            continue  # a missing model fails its own runs (or was skipped as optional)
        try:
            meta = read_meta(model)
            check_model(model, scenario)
        except CqSignalError as exc:
            raise ConfigError(f"{where}: controller '{name}': {exc}") from None
        defaults = EnvOptions()
        for key in ("delta", "min_green", "max_green"):
            value, here = meta.env_options.get(key, getattr(defaults, key)), getattr(loop, key)
            if float(value) != float(here):
                raise ConfigError(f"{where}: controller '{name}': model {meta.zip_path.name} was trained "
                                  f"with {key}={float(value):g}, loop.{key} is {here:g}")


def _first(*values):
    """The first value that is not None (a scenario's setting before the config's)."""
    return next((v for v in values if v is not None), None)


def _table_order(specs: list[RunSpec], controllers: list[str]) -> list[RunSpec]:
    """Group by network, period and scale (first appearance), then controller, then seed."""
    first: dict[tuple, int] = {}
    for s in specs:
        first.setdefault((s.network, s.period), len(first))
    return sorted(specs, key=lambda s: (first[(s.network, s.period)], s.scale,
                                        controllers.index(s.controller), s.seed))


@dataclass
class BenchResult:
    table: pd.DataFrame
    out: Path
    wall_s: float
    workers: int
    backend: str
    notes: list[str]
    reused: int
    inputs: dict[str, str] = field(default_factory=dict)
    resumed: bool = False

    @property
    def failed(self) -> int:
        return int((self.table["error"] != "").sum())


class _Bar:
    """One bar over simulated seconds of every run, with runs done and failed."""

    def __init__(self, specs: list[RunSpec], enabled: bool) -> None:
        self.total_s = sum(s.duration for s in specs)
        self.n, self.done, self.failed, self.done_s = len(specs), 0, 0, 0.0
        self.partial: dict[str, float] = {}
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=True,
            disable=not enabled)
        self.task = self.progress.add_task(self._label(), total=max(self.total_s, 1e-9))

    def _label(self) -> str:
        failed = f", [red]{self.failed} failed[/]" if self.failed else ""
        return f"runs {self.done}/{self.n}{failed}"

    def _refresh(self) -> None:
        self.progress.update(self.task, completed=self.done_s + sum(self.partial.values()),
                             description=self._label())

    def running(self, spec: RunSpec, simulated_s: float) -> None:
        self.partial[spec.digest] = simulated_s
        self._refresh()

    def finished(self, spec: RunSpec, row: dict) -> None:
        self.partial.pop(spec.digest, None)
        self.done += 1
        self.done_s += spec.duration
        self.failed += bool(row.get("error"))
        self._refresh()


def run_bench(config: BenchConfig, base: Path, out: Path, workers: int | None = None,
              ray_address: str | None = None, resume: bool = False, progress: bool = True,
              source: str = "config", known: dict[str, dict] | None = None) -> BenchResult:
    """Run the whole benchmark into ``out``; failed runs are rows with an error, never raised.

    With ``resume``, finished rows of ``known`` (by digest: the same options, file contents
    and code version; default: ``out``'s own journal) are reused instead of run again.
    """
    plan = plan_runs(config, base, source)
    workers = workers or config.workers or os.cpu_count() or 1
    ray_address = ray_address or (config.ray.address if config.ray else None)
    out.mkdir(parents=True, exist_ok=True)
    journal = Journal(out / "runs.jsonl")
    if not resume:
        rows = {}
    elif known is not None:
        rows = reusable(known, plan.specs)
    else:
        rows = journal.reusable(plan.specs)
    journal.start(rows)
    todo = [s for s in plan.specs if s.digest not in rows]
    for note in plan.notes:
        console.print(f"[yellow]note:[/] {note}")
    if resume:
        console.print(f"reusing {len(rows)} of {len(plan.specs)} rows (finished runs with the same inputs, "
                      "options and code version)")

    bar = _Bar(todo, enabled=progress)

    def done(spec: RunSpec, row: dict) -> None:
        rows[spec.digest] = row
        journal.add(spec, row)
        bar.finished(spec, row)
        if row.get("error"):
            bar.progress.console.print(f"[red]failed[/] {spec.slug}: {row['error']}")

    start = time.perf_counter()
    with bar.progress:
        run_all(execute, todo, workers=workers, ray=ray_address, on_progress=bar.running,
                on_done=lambda spec, outcome: done(spec, _row(spec, outcome)),
                name=lambda spec: spec.slug, log_dir=out / "logs", preload=("benchmarks.worker",))
    wall = time.perf_counter() - start
    table = to_table([rows[s.digest] for s in plan.specs])
    result = BenchResult(table, out, wall, workers, f"ray ({ray_address})" if ray_address else "local",
                         plan.notes, len(plan.specs) - len(todo), plan.inputs, resume)
    write_table(table, out)
    return result


def _row(spec: RunSpec, outcome: dict | RunFailed) -> dict:
    return failed_row(spec, outcome.error) if isinstance(outcome, RunFailed) else outcome


def write_report(result: BenchResult, config: BenchConfig, command: str,
                 extra: Path | None = None, final: Path | None = None) -> Path:
    """``summary.md`` and plots in the output folder; also the same summary at ``extra``.

    ``final``: where the output folder will be published (it is built in a staging
    folder), so that ``extra`` links to the plots' final place.
    """
    from benchmarks.plots import make_plots

    plots = make_plots(result.table, result.out / "plots")
    summary = result.out / "summary.md"
    write_text_atomic(summary, _markdown(result, config, command, plots, summary.parent))
    if extra is not None:
        moved = [(final / p.relative_to(result.out)) if final is not None else p for p in plots]
        write_text_atomic(extra, _markdown(result, config, command, moved, extra.resolve().parent))
    write_json_atomic(result.out / "bench.json", {
        "config": config.name, "command": command, "runs": len(result.table),
        "failed": result.failed, "reused": result.reused, "wall_s": round(result.wall_s, 1),
        "resumed": result.resumed,
        "workers": result.workers, "backend": result.backend, "notes": result.notes,
    })
    return summary


def _markdown(result: BenchResult, config: BenchConfig, command: str, plots: list[Path],
              here: Path) -> str:
    t = result.table
    seeds = sorted(set(t["seed"]))
    durations = sorted({s for s in set(t["duration_s"].dropna())}) or [config.duration or 0.0]
    text = [
        f"# Benchmark: {config.name}\n\n",
        f"Regenerate with:\n\n```\n{command}\n```\n\n",
        (f"{len(t)} runs of {', '.join(f'{d:g}' for d in durations)} s simulated each: controllers "
        f"{_list(t['controller'])}; network {_list(t['network'])}; periods {_list(t['period'])}; "
        f"demand scales {_list(f'x{x:g}' for x in sorted(set(t['scale'])))}; seeds "
        f"{_list(seeds)}. Every controller sees the same vehicles for a seed (the seed drives both "
        "route generation and SUMO). Confidence intervals are 95 % Student-t intervals over seeds; "
        "n is the number of seeds that ran.\n\n"),
    ]
    text += [f"- note: {n}\n" for n in result.notes]
    text.append("\n## Comparison\n\n")
    text.append(markdown_tables(groups(t, config.baseline_name), config.baseline_name))
    sweep = sweep_table(t)
    if sweep:
        text.append("## Demand sweep\n\n" + sweep)
    if plots:
        text.append("## Plots\n\n")
        text += [f"![{p.stem}]({os.path.relpath(p, here)})\n\n" for p in plots]
    failures = failures_table(t)
    if failures:
        text.append(f"## Failed runs ({result.failed})\n\n" + failures + "\n")
    where = f"local processes on a {os.cpu_count()}-CPU machine" if result.backend == "local" else result.backend
    reused = (f" (reused {result.reused} of {len(t)} rows from an earlier invocation: same inputs, options "
              "and code version)") if result.reused or result.resumed else ""
    text.append(f"_Wall time {result.wall_s:.0f} s with {result.workers} worker(s), {where}{reused}; "
                f"{len(t)} runs, {result.failed} failed; the runs' own wall times add up to "
                f"{t['wall_s'].sum():.0f} s._\n")
    return "".join(text)


def _list(values) -> str:
    return ", ".join(str(v) for v in dict.fromkeys(values))


def print_summary(result: BenchResult, config: BenchConfig) -> None:
    for g in groups(result.table, config.baseline_name):
        console.print(console_table(g, config.baseline_name))
