"""How far is a plan from a local optimum? Every single move from it, simulated.

    .venv/bin/python benchmarks/plan_sensitivity.py [--plan out/plan/plan.json] [--period am_peak] \
        [--seeds 1 2] [--offset-step 8] [--green-step 4] [--workers 2]

Starts from the network's current programs (or a period of ``--plan``) and
simulates each move the ``optimise`` method's refinement can make: one
signal's offset by +- ``--offset-step``, or ``--green-step`` seconds of green
moved from one of its phases to another (cycle kept, minimum greens
respected). Every move runs on the same seeds and route files as the start, so
the change per move is paired. Prints the moves sorted by the change in mean
delay and writes ``sensitivity.csv`` to ``--out``: if no move lowers the delay
by more than the seed-to-seed noise, the plan is a local optimum of the
search's moves, and a better fixed-time plan needs a different structure
(cycle, phase order or phases), not a nudge.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.plan_vs_sumo import (paired_changes, plan_bench_parser, progress_lines, run_guarded,  # noqa: E402
                                     start_plan, write_rows)
from engine.plan.evaluate import PlanEvaluator  # noqa: E402
from engine.plan.pipeline import plan_search  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = plan_bench_parser(__doc__, "plan.json whose period to start from (default: the current programs)", [1, 2],
                           "plan_sensitivity")
    ap.add_argument("--offset-step", type=float, default=8.0)
    ap.add_argument("--green-step", type=float, default=4.0)
    return run_guarded("plan_sensitivity", run, ap.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    ctx, start, source = start_plan(args)
    cfg = ctx.config
    search = plan_search(ctx, args.period)
    moves = search.neighbours(start, args.offset_step, args.green_step)
    print(f"{args.period}: {len(moves)} single moves from {source}, seeds {args.seeds}, "
          f"{args.duration:g} s, {args.workers} workers", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with PlanEvaluator(ctx.scenario.with_options(period=args.period), args.seeds, args.duration,
                   cfg.evaluation.scale, workdir=Path(tempfile.mkdtemp(prefix="cqsignal-sensitivity-")),
                   workers=args.workers) as evaluator:
        evals = evaluator.run_many([start] + [pp for _, pp in moves], ctx.intersections,
                                   progress=progress_lines("plan_sensitivity", args.duration))
    wall = time.perf_counter() - t0
    rows = paired_changes("move", [label for label, _ in moves], evals[1:], evals[0], args.seeds)
    write_rows(out / "sensitivity.csv", rows)
    base = [k.mean_delay_s for k in evals[0].kpis]
    better = [r for r in rows if r["change_s"] < 0]
    print(f"start: {statistics.fmean(base):.2f} s/veh (per seed {' '.join(f'{b:.1f}' for b in base)})")
    for r in rows:
        per_seed = " ".join(f"{r[f'change_seed{s}']:+.1f}" for s in args.seeds)
        print(f"{r['move']:36s} {r['mean_delay_s']:7.2f} s/veh  change {r['change_s']:+6.2f}  (per seed {per_seed})")
    changes = [r["change_s"] for r in rows]
    print(f"{len(rows)} moves: {len(better)} lower the delay; best {min(changes):+.2f} s/veh, "
          f"median {statistics.median(changes):+.2f}, worst {max(changes):+.2f}; "
          f"{evaluator.runs} simulations in {wall:.0f} s; wrote {out / 'sensitivity.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
