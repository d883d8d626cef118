"""Decision time of the heuristics' Numba kernels, their Python references, and a SUMO step.

One run times every kernel on the corridor's real layout and on a synthetic
network of many intersections (random but well-formed arrays), each against its
plain-Python reference, and times one libsumo step of the corridor, so that the
table says what a decision costs next to the simulation it steers.

    python -m benchmarks.controllers [--synthetic 1000] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from engine.controllers import kernels, reference
from engine.controllers.kernels import Incidence, incidence, synthetic_incidence
from engine.layout import build_layout
from engine.scenario import Scenario

KERNELS = ("max_pressure", "greedy", "sotl", "actuated")


def _calls(
    inc: Incidence, seed: int = 0
) -> dict[str, tuple[Callable[[], object], Callable[[], object]]]:
    """(kernel call, reference call) per heuristic, on random traffic for ``inc``."""
    rng = np.random.default_rng(seed)
    n_lanes, n_int, n_p = inc.n_lanes, inc.n_intersections, inc.mov_phases.shape[1]
    count = rng.integers(0, 12, size=n_lanes).astype(float)
    halting = np.floor(count * rng.random(n_lanes))
    speed = rng.uniform(0.0, 14.0, size=n_lanes)
    length = rng.uniform(30.0, 300.0, size=n_lanes)
    phase = rng.integers(0, inc.n_phases).astype(np.int64)
    free = rng.random(n_int) < 0.7
    in_phase = rng.uniform(0.0, 60.0, size=n_int)
    waited = rng.uniform(0.0, 150.0, size=(n_int, n_p))
    kappa_k, kappa_r = np.zeros((n_int, n_p)), np.zeros((n_int, n_p))
    mp = (inc, count, halting, phase, free, in_phase, waited, 15.0, 120.0, count - halting, 2.0, 55.0)
    return {
        "max_pressure": (
            lambda: kernels.max_pressure(*mp),
            lambda: reference.max_pressure_ref(*mp),
        ),
        "greedy": (
            lambda: kernels.greedy(inc, halting, phase, free),
            lambda: reference.greedy_ref(inc, halting, phase, free),
        ),
        "sotl": (
            lambda: kernels.sotl(inc, count, halting, phase, free, kappa_k, 5.0, 150.0, 3.0),
            lambda: reference.sotl_ref(inc, count, halting, phase, free, kappa_r, 5.0, 150.0, 3.0),
        ),
        "actuated": (
            lambda: kernels.actuated(inc, count, speed, length, phase, free, 3.0),
            lambda: reference.actuated_ref(inc, count, speed, length, phase, free, 3.0),
        ),
    }


def _time(fn: Callable[[], object], budget_s: float, min_calls: int = 3) -> float:
    """Median seconds per call, calling for about ``budget_s`` (after one warm-up call)."""
    fn()
    samples: list[float] = []
    start = time.perf_counter()
    while len(samples) < min_calls or time.perf_counter() - start < budget_s:
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
        if len(samples) >= 10_000:
            break
    return float(np.median(samples))


def sumo_step_time(steps: int = 300, warmup: int = 300) -> float:
    """Mean seconds of one libsumo step of the corridor at the AM peak (fixed programs)."""
    from engine.loop import ControlLoop, LoopOptions

    scenario = Scenario.load("chongqing", period="am_peak", seed=1, duration=warmup + steps + 10)
    loop = ControlLoop(
        scenario, LoopOptions(adaptive=False), workdir=Path(tempfile.mkdtemp(prefix="cqbench-"))
    )
    try:
        loop.reset()
        for _ in range(warmup):
            loop.sim.step()
        t = time.perf_counter()
        for _ in range(steps):
            loop.sim.step()
        return (time.perf_counter() - t) / steps
    finally:
        loop.close()


def run(synthetic: int = 1000, budget_s: float = 0.3, sumo_steps: int = 300) -> dict:
    """Every measurement, as a JSON-ready dict."""
    corridor = incidence(build_layout(Scenario.of_network("chongqing").net_file))
    networks = {"corridor": corridor, "synthetic": synthetic_incidence(synthetic, seed=1)}
    step = sumo_step_time(sumo_steps)
    rows = []
    for net_name, inc in networks.items():
        n = inc.n_intersections
        for name, (kernel, ref) in _calls(inc).items():
            t_kernel, t_ref = _time(kernel, budget_s), _time(ref, budget_s)
            rows.append(
                {
                    "kernel": name,
                    "network": net_name,
                    "intersections": n,
                    "movements": len(inc.mov_int),
                    "numba_us_per_call": t_kernel * 1e6,
                    "numba_us_per_intersection": t_kernel * 1e6 / n,
                    "python_us_per_call": t_ref * 1e6,
                    "python_us_per_intersection": t_ref * 1e6 / n,
                    "speedup": t_ref / t_kernel,
                    "numba_share_of_sumo_step": t_kernel / step,
                }
            )
    return {
        "sumo_step_us": step * 1e6,
        "sumo_step_network": "corridor (chongqing, am_peak, libsumo)",
        "sumo_step_us_per_intersection": step * 1e6 / corridor.n_intersections,
        "rows": rows,
    }


def print_table(result: dict) -> None:
    from rich.table import Table

    from engine.report import console

    table = Table(
        title="decision time, per call and per signal (median); % of one corridor SUMO step"
    )
    for col in (
        "kernel",
        "network",
        "signals",
        "Numba µs",
        "Numba µs/sig",
        "Python µs/sig",
        "speed-up",
        "% of step",
    ):
        table.add_column(col, justify="left" if col in ("kernel", "network") else "right")
    for r in result["rows"]:
        table.add_row(
            r["kernel"],
            r["network"],
            str(r["intersections"]),
            f"{r['numba_us_per_call']:.1f}",
            f"{r['numba_us_per_intersection']:.3f}",
            f"{r['python_us_per_intersection']:.1f}",
            f"{r['speedup']:.0f}x",
            f"{100 * r['numba_share_of_sumo_step']:.2f} %",
        )
    console.print(table)
    console.print(
        f"one SUMO step, {result['sumo_step_network']}: {result['sumo_step_us']:.0f} µs "
        f"({result['sumo_step_us_per_intersection']:.0f} µs per signal)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.controllers", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--synthetic", type=int, default=1000, help="intersections in the synthetic network"
    )
    parser.add_argument(
        "--budget", type=float, default=0.3, help="seconds of timing per kernel and network"
    )
    parser.add_argument("--sumo-steps", type=int, default=300, help="SUMO steps to time")
    parser.add_argument(
        "--json", action="store_true", help="print the results as JSON instead of a table"
    )
    args = parser.parse_args(argv)
    if args.synthetic < 1 or args.budget <= 0 or args.sumo_steps < 1:
        print(
            "benchmarks.controllers: --synthetic, --budget and --sumo-steps must be positive",
            file=sys.stderr,
        )
        return 2
    result = run(args.synthetic, args.budget, args.sumo_steps)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_table(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
