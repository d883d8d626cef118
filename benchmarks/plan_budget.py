"""Two or more ``cqsignal plan`` outputs on held-out seeds: does a smaller search budget lose delay?

    .venv/bin/python benchmarks/plan_budget.py --plans thorough=benchmarks/results_plan/plan.json \
        fast=out/plan_fast/plan.json --periods am_peak pm_peak [--seeds 11 12 13 14 15]

Every plan's period programs run on every seed with identical route files (seeds 11-15
by default, disjoint from the search seeds 1-3 of the shipped plan configs, so no plan
has seen them). Per period: mean delay ± 95 % CI over seeds, and each plan against the
first, paired by seed. Writes ``results.csv`` and ``summary.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.plan_vs_sumo import (bench_context, load_period, progress_lines, run_guarded,  # noqa: E402
                                     write_rows)
from benchmarks.stats import mean_ci, paired_difference  # noqa: E402
from engine.errors import ConfigError  # noqa: E402
from engine.plan.evaluate import PlanEvaluator  # noqa: E402


def run(args) -> int:
    plans: dict[str, str] = {}
    for item in args.plans:
        label, sep, path = item.partition("=")
        if not sep or not label or not path:
            raise ConfigError(f"--plans {item!r}: give LABEL=PATH/plan.json")
        if label in plans:
            raise ConfigError(f"--plans: label {label!r} used twice")
        plans[label] = path
    if len(plans) < 2:
        raise ConfigError("--plans: give at least two plans to compare")
    for name, values in (("--seeds", args.seeds), ("--periods", args.periods)):
        if len(set(values)) != len(values):
            raise ConfigError(f"{name}: each at most once, got {' '.join(map(str, values))}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--out {out}: cannot create it ({exc.strerror})") from None
    rows, lines = [], [f"{len(args.seeds)} held-out seeds ({' '.join(map(str, args.seeds))}), {args.duration:g} s "
                       "each; mean ± 95 % CI over seeds; changes paired by seed against the first plan", ""]
    for period in args.periods:
        args.period = period
        ctx = bench_context(args)
        periods = {label: load_period(path, period, ctx) for label, path in plans.items()}
        scenario = ctx.scenario.with_options(period=period)
        with PlanEvaluator(scenario, args.seeds, args.duration, ctx.config.evaluation.scale,
                           workdir=Path(tempfile.mkdtemp(prefix="cqsignal-plan-budget-")),
                           workers=args.workers) as evaluator:
            evals = evaluator.run_many(list(periods.values()), ctx.intersections,
                                       progress=progress_lines(f"plan_budget {period}", args.duration))
        delay = {}
        for label, ev in zip(periods, evals):
            delay[label] = {seed: k.mean_delay_s for seed, k in zip(args.seeds, ev.kpis)}
            rows += [{"period": period, "plan": label, "seed": seed, **k.to_dict()}
                     for seed, k in zip(args.seeds, ev.kpis)]
        first = next(iter(plans))
        lines += [f"## {period}", "", "| plan | cycle [s] | mean delay [s/veh] | stops [/veh] | "
                  f"vs {first} |", "|---|---|---|---|---|"]
        for (label, pp), ev in zip(periods.items(), evals):
            est = mean_ci(list(delay[label].values()))
            stops = mean_ci([k.mean_stops for k in ev.kpis])
            if label == first:
                vs = ""
            else:
                diff, pct = paired_difference(delay[label], delay[first])
                vs = f"{diff.mean:+.1f}{_pm(diff.half_width)} s ({pct:+.1f} %)"
            lines.append(f"| {label} | {pp.cycle:g} | {est.mean:.1f}{_pm(est.half_width)} | "
                         f"{stops.mean:.2f} | {vs} |")
        lines.append("")
    lines += [f"{label}: {path}" for label, path in plans.items()]
    write_rows(out / "results.csv", rows)
    text = "\n".join(lines) + "\n"
    (out / "summary.md").write_text(text, encoding="utf-8")
    print(text)
    return 0


def _pm(half_width: float) -> str:
    """`` ± h``, or nothing where one seed gives no interval."""
    return "" if math.isnan(half_width) else f" ± {half_width:.1f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "plan_chongqing.yaml"),
                    help="plan config: the network, its demand and constraints")
    ap.add_argument("--seeds", type=int, nargs="+", default=[11, 12, 13, 14, 15])
    ap.add_argument("--duration", type=float, default=3600.0)
    ap.add_argument("--workers", type=int, default=2, help="simulations at once")
    ap.add_argument("--out", default=str(ROOT / "out" / "plan_budget"))
    ap.add_argument("--plans", nargs="+", required=True, metavar="LABEL=PLAN.json",
                    help="cqsignal plan outputs to compare; the first is the reference")
    ap.add_argument("--periods", nargs="+", default=["am_peak", "pm_peak"])
    return run_guarded("plan_budget", run, ap.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
