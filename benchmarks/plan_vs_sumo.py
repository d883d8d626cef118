"""The plan generator against the network's defaults and SUMO's own tools, on the same seeds.

    .venv/bin/python benchmarks/plan_vs_sumo.py --config configs/plan_chongqing.yaml \
        [--plan out/plan/plan.json] [--period am_peak] [--seeds 11 12 13 14 15] [--duration 3600]

Compared, each on every seed with identical route files:

(a) ``default``: the network's own programs;
(b) ``sumo_tools``: SUMO's ``tlsCycleAdaptation.py`` (Webster, one unified cycle,
    3 s yellow, 2 s all-red, cycle 60-180 s) followed by ``tlsCoordinator.py``
    (offsets), both from SUMO's ``tools/``, given the route file of the planning seed;
``netconvert``: the programs netconvert generates for this network when nobody
    has timed it (SUMO's defaults: 90 s cycle, permissive lefts), for context;
``webster`` and ``green_wave``: this package's methods, for context;
``optimise``: the plan from ``--plan`` (a ``cqsignal plan`` output), or one
    searched here with the config's budget (its wall time is reported).

Evaluation seeds default to 11-15, disjoint from the search seeds in the config,
so the optimised plan is scored on demand it never saw. Prints a table and
writes ``results.csv`` and ``summary.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.stats import mean_ci, paired_difference  # noqa: E402
from engine.errors import ConfigError, CqSignalError, SimulationError  # noqa: E402
from engine.plan.config import load_plan_config  # noqa: E402
from engine.plan.evaluate import PlanEvaluator  # noqa: E402
from engine.plan.model import PeriodPlan  # noqa: E402
from engine.plan.pipeline import PlanContext, load_plans, period_plan, plan_search, resolve  # noqa: E402
from engine.sim import sumo_tool  # noqa: E402


METHODS = ("default", "sumo_tools", "netconvert", "webster", "green_wave", "optimise")


def sumo_tools_programs(net_file: Path, routes: Path, workdir: Path, cycle_min: int, cycle_max: int,
                        yellow: float, all_red: float) -> tuple[Path, Path]:
    """Run tlsCycleAdaptation.py then tlsCoordinator.py; the two additional files, in load order."""
    cycles = workdir / "tls_cycle_adaptation.add.xml"
    coord = workdir / "tls_coordinator.add.xml"
    steps = [
        [sys.executable, sumo_tool("tlsCycleAdaptation.py"), "-n", str(net_file), "-r", str(routes), "-b", "0",
         "-y", f"{yellow:g}", "-a", f"{all_red:g}", "--min-cycle", str(cycle_min), "--max-cycle", str(cycle_max),
         "-u", "-o", str(cycles)],
        [sys.executable, sumo_tool("tlsCoordinator.py"), "-n", str(net_file), "-r", str(routes), "-a", str(cycles),
         "-o", str(coord)],
    ]
    for cmd in steps:
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            tail = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["no output"]
            raise SimulationError(f"{Path(cmd[1]).name} failed: {tail[0]}")
    return cycles, coord


def netconvert_programs(net_file: Path, intersections, workdir: Path) -> Path:
    """The programs netconvert itself generates for this network's signals, as an additional file.

    SUMO's default timing for a network nobody has timed: netconvert rebuilds
    every signal's program (``--tls.rebuild``; ``--tls.discard-loaded`` with
    ``--tls.set`` crashes netconvert 1.28 on junctions with crossings) and
    guesses new ones (90 s cycle, yellow from the approach speed, left turns
    permissive with the through green plus a short protected phase), static
    with offset 0 as netconvert writes them for a new signal. Refused if the
    links are numbered differently from the network's own. Both nets are read
    by the network model (:mod:`engine.network`); each guessed program is
    written by sumolib.
    """
    import sumolib

    from engine.network import load_network
    from engine.sim import sumo_binary

    guessed = workdir / "netconvert_guess.net.xml"
    cmd = [sumo_binary("netconvert"), "-s", str(net_file), "--tls.rebuild", "true", "-o", str(guessed)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SimulationError(f"netconvert failed: {(r.stderr or r.stdout).strip().splitlines()[-1:]}")

    def links(network) -> set:
        return {(tid, m.link, m.from_lane, m.to_lane) for tid, ix in network.signals.items() for m in ix.movements}
    own, guess = load_network(net_file), load_network(guessed)
    if links(guess) != links(own):
        raise SimulationError(f"netconvert numbered the signal links of {net_file.name} differently")
    lines = ["<additional>\n"]
    for tid in sorted(intersections):
        program = sumolib.net.TLSProgram("netconvert", 0, "static")
        for state, duration in guess.signals[tid].program:
            program.addPhase(state, duration, next=())  # sumolib writes no next= for an empty tuple
        lines.append(program.toXML(tid))
    lines.append("</additional>\n")
    out = workdir / "netconvert.add.xml"
    out.write_text("".join(lines), encoding="utf-8")
    return out


def plan_bench_parser(doc: str, plan_help: str, seeds: list[int], out: str) -> argparse.ArgumentParser:
    """The options the plan benchmarks share: config, plan, period, seeds, duration, workers, out."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "plan_chongqing.yaml"))
    ap.add_argument("--plan", default=None, help=plan_help)
    ap.add_argument("--period", default="am_peak")
    ap.add_argument("--seeds", type=int, nargs="+", default=seeds)
    ap.add_argument("--duration", type=float, default=3600.0)
    ap.add_argument("--workers", type=int, default=2, help="simulations at once")
    ap.add_argument("--out", default=str(ROOT / "out" / out))
    return ap


def progress_lines(label: str, duration: float) -> Callable[[float, float], None]:
    """A progress callback for :meth:`PlanEvaluator.run_many` that prints a line per finished simulation."""
    t0 = time.perf_counter()
    shown = [0]

    def show(done: float, total: float) -> None:
        n, of = round(done / duration), round(total / duration)
        if n > shown[0]:
            shown[0] = n
            print(f"{label}: {n}/{of} simulations, {time.perf_counter() - t0:.0f} s", flush=True)
    return show


def load_period(path: str, period: str, ctx: PlanContext) -> PeriodPlan:
    """``period``'s plan from a ``cqsignal plan`` plan.json, checked on ``ctx``'s network
    (:func:`engine.plan.pipeline.load_plans`: a one-line error if it has none or does not fit)."""
    return load_plans(path, ctx, periods=[period]).periods[period]


def bench_context(args: argparse.Namespace) -> PlanContext:
    """The config's context, with ``args.period`` among its periods and ``args.workers`` simulations at once."""
    cfg = load_plan_config(args.config)
    cfg = cfg.model_copy(update={"evaluation": cfg.evaluation.model_copy(update={"workers": args.workers})})
    if args.period not in cfg.periods:
        cfg = cfg.model_copy(update={"periods": [*cfg.periods, args.period]})
    return resolve(cfg)


def start_plan(args: argparse.Namespace) -> tuple[PlanContext, PeriodPlan, str]:
    """The bench context and the plan to start from: ``--plan``'s period or today's programs."""
    ctx = bench_context(args)
    if args.plan:
        return ctx, load_period(args.plan, args.period, ctx), args.plan
    plan = plan_search(ctx, args.period).current_plan()
    if plan is None:
        raise ConfigError("the network's programs do not form a plan under the config's constraints; give --plan")
    return ctx, plan, "the network's current programs"


def paired_changes(key: str, labels: Sequence[str], evals: Sequence, base, seeds: Sequence[int]) -> list[dict]:
    """One row per label: its mean delay and its change from ``base`` (an evaluation), paired by seed; best first."""
    base_delay = statistics.fmean(b.mean_delay_s for b in base.kpis)
    rows = []
    for label, ev in zip(labels, evals):
        diffs = [k.mean_delay_s - b.mean_delay_s for k, b in zip(ev.kpis, base.kpis)]
        stops = [k.mean_stops - b.mean_stops for k, b in zip(ev.kpis, base.kpis)]
        rows.append({key: label, "mean_delay_s": round(ev.mean_delay, 2),
                     "change_s": round(statistics.fmean(diffs), 2),
                     "change_pct": round(100 * statistics.fmean(diffs) / base_delay, 1),
                     "stops_change": round(statistics.fmean(stops), 3),
                     **{f"change_seed{s}": round(d, 2) for s, d in zip(seeds, diffs)}})
    return sorted(rows, key=lambda r: r["change_s"])


def write_rows(path: Path, rows: list[dict]) -> None:
    """``rows`` as a CSV file with their keys as the header, written atomically."""
    from engine.outputs import atomic_path

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def run_guarded(name: str, run_fn, args: argparse.Namespace) -> int:
    """``run_fn(args)``, with bad input reported as one line naming it and exit status 2."""
    try:
        if args.workers < 1:
            raise ConfigError(f"--workers must be >= 1, got {args.workers}")
        return run_fn(args)
    except CqSignalError as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    ap = plan_bench_parser(__doc__, "plan.json from `cqsignal plan` (else searched here)", [11, 12, 13, 14, 15],
                           "plan_vs_sumo")
    ap.add_argument("--tools-seed", type=int, default=1, help="seed of the route file SUMO's tools plan from")
    ap.add_argument("--methods", nargs="+", choices=METHODS,
                    default=["default", "sumo_tools", "netconvert", "webster", "green_wave", "optimise"])
    return run_guarded("plan_vs_sumo", run, ap.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    ctx = bench_context(args)
    cfg = ctx.config
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="cqsignal-bench-plan-"))
    scenario = ctx.scenario.with_options(period=args.period)
    log = print

    plans, notes = {}, {}
    for method in ("webster", "green_wave"):
        if method in args.methods:
            plans[method] = period_plan(ctx, args.period, method, log)[0]
    if "optimise" in args.methods:
        if args.plan:
            plans["optimise"] = load_period(args.plan, args.period, ctx)
            notes["optimise"] = f"from {args.plan}"
        else:
            t0 = time.perf_counter()
            plans["optimise"] = period_plan(ctx, args.period, "optimise", log)[0]
            notes["optimise"] = f"searched here in {time.perf_counter() - t0:.0f} s"
    tools: tuple[Path, ...] = ()
    guessed: tuple[Path, ...] = ()
    if "netconvert" in args.methods:
        guessed = (netconvert_programs(scenario.net_file, ctx.intersections, work),)
        notes["netconvert"] = "netconvert's own programs for this network (its tls defaults)"
    if "sumo_tools" in args.methods:
        planning = PlanEvaluator(scenario, [args.tools_seed], args.duration, cfg.evaluation.scale,
                                 workdir=work / "tools")
        routes = planning.scenario(args.tools_seed).route_files[0]
        c = cfg.constraints
        tools = sumo_tools_programs(scenario.net_file, routes, work, c.cycle_min_s, c.cycle_max_s, c.yellow_s,
                                    c.all_red_s)
        notes["sumo_tools"] = f"planned from seed {args.tools_seed} routes"

    programs = {"default": None, "sumo_tools": tools, "netconvert": guessed, **plans}
    t0 = time.perf_counter()
    with PlanEvaluator(scenario, args.seeds, args.duration, cfg.evaluation.scale, workdir=work,
                   workers=args.workers) as evaluator:
        evals = evaluator.run_many([programs[m] for m in args.methods], ctx.intersections,
                                   progress=progress_lines("plan_vs_sumo", args.duration))
    wall = time.perf_counter() - t0
    rows = []
    for method, ev in zip(args.methods, evals):
        for seed, k in zip(args.seeds, ev.kpis):
            rows.append({"method": method, "seed": seed, **k.to_dict()})
            print(f"{method:11s} seed {seed}: delay {k.mean_delay_s:7.2f} s/veh, stops {k.mean_stops:.2f}, "
                  f"never inserted {k.never_inserted}", flush=True)
    notes["simulations"] = f"{len(rows)} runs in {wall:.0f} s with {args.workers} workers"
    write_rows(out / "results.csv", rows)
    text = summary(rows, args, plans, notes)
    (out / "summary.md").write_text(text)
    print(text)
    return 0


def summary(rows: list[dict], args, plans: dict, notes: dict) -> str:
    """Mean ± 95 % CI per method, and paired (by seed) changes against (a) and (b)."""
    by: dict[str, dict[int, dict]] = {}
    for r in rows:
        by.setdefault(r["method"], {})[r["seed"]] = r

    def kpi(m: str, key: str) -> dict[int, float]:
        return {seed: r[key] for seed, r in by[m].items()}

    def change(m: str, base: str) -> str:
        if base not in by or m == base:
            return ""
        diff, pct = paired_difference(kpi(m, "mean_delay_s"), kpi(base, "mean_delay_s"))
        return f"{pct:+.1f} % ({diff.mean:+.1f} ± {diff.half_width:.1f} s)"

    refs = [(r, title) for r, title in (("default", "vs (a) default"), ("sumo_tools", "vs (b) SUMO tools"),
                                        ("netconvert", "vs netconvert")) if r in by]
    lines = [f"period {args.period}, {len(args.seeds)} seeds ({' '.join(map(str, args.seeds))}), "
             f"{args.duration:g} s each; mean ± 95 % CI over seeds; changes paired by seed", "",
             "| method | cycle [s] | mean delay [s/veh] | stops [/veh] | travel time [s] | throughput [veh/h] "
             "| never inserted | " + " | ".join(t for _, t in refs) + " |",
             "|---|---|---|---|---|---|---|" + "---|" * len(refs)]
    for m in by:
        cells = []
        for key, fmt in (("mean_delay_s", ".1f"), ("mean_stops", ".2f"), ("mean_travel_time_s", ".1f"),
                         ("throughput_veh_h", ".0f"), ("never_inserted", ".0f")):
            est = mean_ci(list(kpi(m, key).values()))
            cells.append(f"{est.mean:{fmt}} ± {est.half_width:{fmt}}")
        cyc = f"{plans[m].cycle:g}" if m in plans else ""
        lines.append(f"| {m} | {cyc} | {' | '.join(cells)} | " + " | ".join(change(m, r) for r, _ in refs) + " |")
    for m, note in notes.items():
        lines.append(f"\n{m}: {note}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
