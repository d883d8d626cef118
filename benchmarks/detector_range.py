"""What the observation area changes: adaptive controllers with and without the detector range.

Runs each controller with the approach seen only on the lane before the stop
line (``--ranges 0``, the behaviour before the network model) and up to a
detector range (default 150 m), on the same seeds, and prints the paired
difference of mean delay (mean, 95 % CI, n) per controller and period.

    python benchmarks/detector_range.py --periods am_peak pm_peak --seeds 1 2 3 4 5
    python benchmarks/detector_range.py --network short_approach.net.xml --routes r.rou.xml --seeds 1 2 3

Each run is a process of its own (libsumo: one simulation per process).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.plan_vs_sumo import write_rows  # noqa: E402
from benchmarks.stats import mean_ci, paired_difference  # noqa: E402


def _run(job: tuple) -> dict:
    network, routes, period, controller, seed, range_m, duration = job
    from engine.controllers import make_controller
    from engine.loop import LoopOptions
    from engine.runner import run_controller
    from engine.scenario import Scenario

    scenario = Scenario.load(network, period=period, seed=seed, routes=routes, duration=duration)
    t0 = time.perf_counter()
    kpis = run_controller(scenario, make_controller(controller, scenario),
                          LoopOptions(detector_range_m=range_m))
    return {"controller": controller, "period": period or "-", "seed": seed, "range_m": range_m,
            "mean_delay_s": kpis.mean_delay_s, "mean_stops": kpis.mean_stops,
            "throughput_veh_h": kpis.throughput_veh_h, "wall_s": time.perf_counter() - t0}


def _fmt(e) -> str:
    return f"{e.mean:.1f} ± {e.half_width:.1f} (n = {e.n})"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--network", default="chongqing")
    p.add_argument("--routes", nargs="*", default=[])
    p.add_argument("--periods", nargs="*", default=["am_peak", "pm_peak"])
    p.add_argument("--controllers", nargs="+", default=["max_pressure", "actuated"])
    p.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3, 4, 5])
    p.add_argument("--ranges", nargs=2, type=float, default=[0.0, 150.0], metavar=("BEFORE", "AFTER"))
    p.add_argument("--duration", type=float, default=3600.0)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", default="benchmarks/results_detector_range/detector_range.csv")
    args = p.parse_args(argv)
    periods = args.periods if not args.routes else [None]
    jobs = [(args.network, tuple(args.routes), period, c, s, r, args.duration)
            for period in periods for c in args.controllers for s in args.seeds for r in args.ranges]
    rows = []
    with mp.get_context("spawn").Pool(args.workers, maxtasksperchild=1) as pool:
        for row in pool.imap_unordered(_run, jobs):
            rows.append(row)
            print(f"{row['controller']:>12} {row['period']:>8} seed {row['seed']:>2} range {row['range_m']:>5g} m: "
                  f"{row['mean_delay_s']:.1f} s/veh ({row['wall_s']:.0f} s)", flush=True)
    out = Path(args.out)
    write_rows(out, sorted(rows, key=lambda r: (r["period"], r["controller"], r["range_m"], r["seed"])))
    before, after = args.ranges
    print(f"\n| controller | period | delay, {before:g} m [s/veh] | delay, {after:g} m [s/veh] | change (paired) |")
    print("|---|---|---|---|---|")
    for period in periods:
        for c in args.controllers:
            pick = [r for r in rows if r["controller"] == c and r["period"] == (period or "-")]
            b = {r["seed"]: r["mean_delay_s"] for r in pick if r["range_m"] == before}
            a = {r["seed"]: r["mean_delay_s"] for r in pick if r["range_m"] == after}
            eb, ea = mean_ci(list(b.values())), mean_ci(list(a.values()))
            d, pct = paired_difference(a, b)
            print(f"| {c} | {period or '-'} | {_fmt(eb)} | {_fmt(ea)} | {d.mean:+.1f} "
                  f"[{d.low:+.1f}, {d.high:+.1f}] ({pct:+.1f} %, n = {d.n}) |")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
