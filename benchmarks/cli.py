"""``cqsignal bench CONFIG.yaml``: every controller on the same scenarios and seeds.

Exit status: 0 when every run succeeded, 1 when any run failed (its error is in
the table and the summary), 2 for a bad config or option.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

EXIT_RUNS_FAILED = 1


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="compare controllers over scenarios, periods, scales and seeds",
                       description=__doc__.splitlines()[0])
    p.add_argument("config", help="benchmark YAML (see configs/bench_quick.yaml)")
    p.add_argument("--workers", type=int, default=None,
                   help="parallel runs (default: the config's, else one per CPU)")
    p.add_argument("--out", default=None, help="output folder (default: out/bench_<config name>)")
    p.add_argument("--ray", default=None, metavar="ADDRESS",
                   help="run on a Ray cluster ('auto', 'ray://host:10001', or 'local'); needs the ray extra")
    p.add_argument("--resume", action="store_true",
                   help="reuse finished runs with identical inputs from the output folder's runs.jsonl")
    p.add_argument("--report", default=None, metavar="PATH",
                   help="also write the summary to PATH (e.g. benchmarks/RESULTS.md)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_bench)


def _command(args: argparse.Namespace) -> str:
    parts = ["cqsignal", "bench", args.config]
    for flag in ("workers", "out", "ray", "report"):
        value = getattr(args, flag)
        if value is not None:
            parts += [f"--{flag}", str(value)]
    return shlex.join(parts)


def cmd_bench(args: argparse.Namespace) -> int:
    from benchmarks.compare import print_summary, run_bench, write_report
    from benchmarks.config import load_config
    from engine.errors import ConfigError
    from engine.report import console

    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {args.workers}")
    config, base = load_config(args.config)
    out = Path(args.out) if args.out else Path("out") / f"bench_{config.name}"
    result = run_bench(config, base, out, workers=args.workers, ray_address=args.ray,
                       resume=args.resume, progress=not args.no_progress, source=args.config)
    summary = write_report(result, config, _command(args), Path(args.report) if args.report else None)
    print_summary(result, config)
    console.print(f"{len(result.table)} runs in {result.wall_s:.0f} s ({result.backend}, "
                  f"{result.workers} workers); wrote {out / 'runs.csv'}, runs.parquet, {summary}"
                  + (f" and {args.report}" if args.report else ""))
    if result.failed:
        console.print(f"[red]{result.failed} run(s) failed[/]: see the 'error' column of {out / 'runs.csv'}")
        return EXIT_RUNS_FAILED
    return 0
