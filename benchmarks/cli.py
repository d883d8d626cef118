"""``cqsignal bench CONFIG.yaml``: every controller on the same scenarios and seeds.

Exit status: 0 when every run succeeded, 1 when any run failed (its error is in
the table and the summary), 2 for a bad config or option.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from engine.cli import add_ray_arg

EXIT_RUNS_FAILED = 1


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="compare controllers over scenarios, periods, scales and seeds",
                       description=__doc__.splitlines()[0])
    p.add_argument("config", help="benchmark YAML (see configs/bench_quick.yaml)")
    p.add_argument("--workers", type=int, default=None,
                   help="parallel runs (default: the config's, else one per CPU)")
    p.add_argument("--out", default=None, help="output folder (default: out/bench_<config name>)")
    add_ray_arg(p)
    p.add_argument("--resume", action="store_true",
                   help="reuse finished runs with identical inputs (file contents, options, code version) "
                        "from the output folder's runs.jsonl, or from an interrupted run's")
    p.add_argument("--report", default=None, metavar="PATH",
                   help="also write the summary to PATH (e.g. benchmarks/RESULTS.md)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_bench)


# what bench --out wrote before manifests (a folder of only these may be replaced)
BENCH_FILES = ("runs.csv", "runs.parquet", "runs.jsonl", "summary.md", "bench.json", "plots", "logs")


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
    from benchmarks.results import read_journal
    from engine.errors import ConfigError
    from engine.outputs import check_out, namespace_options, staged_output
    from engine.report import console

    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {args.workers}")
    config, base = load_config(args.config)
    out = Path(args.out) if args.out else Path("out") / f"bench_{config.name}"
    check_out(out, BENCH_FILES, command="cqsignal bench")  # a bad or busy --out is refused before any run
    if args.report:
        check_out(args.report, file=True, flag="--report", lock=False)
    known: dict[str, dict] = {}

    def salvage(folder: Path) -> None:  # runs finished by an interrupted invocation
        known.update(read_journal(folder / "runs.jsonl"))

    # the folder is built beside --out and replaces it whole at the end (engine/outputs.py)
    with staged_output(out, command="cqsignal bench", options=namespace_options(args), inputs=[args.config],
                       known=BENCH_FILES, salvage=salvage, say=console.print) as stage:
        if args.resume:
            known = {**read_journal(out / "runs.jsonl"), **known}
        result = run_bench(config, base, stage.path, workers=args.workers, ray_address=args.ray,
                           resume=args.resume, progress=not args.no_progress, source=args.config, known=known)
        stage.inputs.update(result.inputs)
        summary = write_report(result, config, _command(args), Path(args.report) if args.report else None,
                               final=out)
        summary = stage.final(summary)
    print_summary(result, config)
    reused = f"; reused {result.reused} of {len(result.table)} rows" if args.resume else ""
    console.print(f"{len(result.table)} runs in {result.wall_s:.0f} s ({result.backend}, "
                  f"{result.workers} workers){reused}; wrote {out / 'runs.csv'}, runs.parquet, {summary}"
                  + (f" and {args.report}" if args.report else ""))
    if result.failed:
        console.print(f"[red]{result.failed} run(s) failed[/]: see the 'error' column of {out / 'runs.csv'}")
        return EXIT_RUNS_FAILED
    return 0
