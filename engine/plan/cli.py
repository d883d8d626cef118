"""``cqsignal plan CONFIG.yaml [--out DIR] [--from-model MODEL]``."""

from __future__ import annotations

import argparse
from pathlib import Path

from engine.cli import add_ray_arg


def add_parser(sub) -> None:
    """Register the ``plan`` subcommand (engine.cli imports this module if present)."""
    p = sub.add_parser("plan", help="generate validated fixed time-of-day signal plans (SUMO WAUT, CSV, report)")
    p.add_argument("config", help="plan config (YAML), e.g. configs/plan_chongqing.yaml")
    p.add_argument("--out", default="out/plan",
                   help="folder for plan.add.xml, timing_sheet.csv, plan.json, report.html "
                        "(and demand/<period>/, the twins calibrated to counts the config gives)")
    p.add_argument("--from-model", default=None, metavar="MODEL",
                   help="distil this policy (model path or heuristic name) into fixed plans instead of searching")
    p.add_argument("--method", choices=("webster", "green_wave", "optimise"), default=None,
                   help="override the config's method for every period")
    p.add_argument("--trials", type=int, default=None, help="override the optimiser's trial budget")
    p.add_argument("--workers", type=int, default=None, help="simulations at once (default: the config's)")
    add_ray_arg(p)
    p.add_argument("--no-report", action="store_true", help="skip the report's before/after simulations")
    p.add_argument("-q", "--quiet", action="store_true", help="no per-trial lines")
    p.set_defaults(func=cmd_plan)


def cmd_plan(args: argparse.Namespace) -> int:
    from engine.plan.config import load_plan_config
    from engine.plan.pipeline import distil_plan, make_plan
    from engine.outputs import check_out
    from engine.report import console, progress_bar

    check_out(args.out, PLAN_FILES, command="cqsignal plan")  # a bad --out is refused before any work
    cfg = load_plan_config(args.config)
    updates: dict = {}
    if args.method:
        updates.update(method=args.method, methods={})
    if args.trials is not None:
        if args.trials < 1:
            from engine.errors import ConfigError

            raise ConfigError(f"--trials must be >= 1, got {args.trials}")
        updates["optimiser"] = cfg.optimiser.model_copy(update={"trials": args.trials})
    if args.workers is not None:
        if args.workers < 1:
            from engine.errors import ConfigError

            raise ConfigError(f"--workers must be >= 1, got {args.workers}")
        updates["evaluation"] = cfg.evaluation.model_copy(update={"workers": args.workers})
    if args.ray:
        evaluation = updates.get("evaluation", cfg.evaluation)
        updates["evaluation"] = evaluation.model_copy(update={"ray": args.ray})
    if args.no_report:
        updates["report"] = cfg.report.model_copy(update={"enabled": False})
    if updates:
        cfg = cfg.model_copy(update=updates)

    def log(line: str) -> None:
        if not args.quiet or not line.startswith("trial"):
            console.print(line, highlight=False, markup=False, soft_wrap=True)

    from engine.outputs import model_files, namespace_options, scenario_files, staged_output
    from engine.plan.sources import source_files
    from engine.scenario import Scenario

    out = Path(args.out)
    inputs = [Path(args.config), *scenario_files(Scenario.of_network(cfg.network)), *source_files(cfg),
              *model_files(args.from_model)]
    # the folder is built beside --out and replaces it whole at the end (engine/outputs.py)
    with staged_output(out, command="cqsignal plan", inputs=inputs, known=PLAN_FILES, say=console.print,
                       options={**namespace_options(args), "config": cfg.model_dump(mode="json")}) as stage:
        if args.from_model:
            run = distil_plan(cfg, args.from_model, stage.path, log, config_path=args.config)
        else:
            run = make_plan(cfg, stage.path, log, progress_factory=lambda label: progress_bar(label, 1.0),
                            config_path=args.config)
        files = {kind: stage.final(path) for kind, path in run.files.items()}
    console.print(_summary(run.summary))
    for kind, path in files.items():
        console.print(f"wrote {kind}: {path}")
    console.print(f"plan run wall time {run.wall_s:.0f} s")
    return 0


# what plan --out wrote before manifests (a folder of only these may be replaced)
PLAN_FILES = ("plan.add.xml", "timing_sheet.csv", "plan.json", "report.html")


def _summary(rows):
    from rich.table import Table

    table = Table(title="plan")
    cols = [("period", "period", "{}"), ("method", "method", "{}"), ("cycle", "cycle [s]", "{:g}"),
            ("band_forward_s", "band fwd [s]", "{:.0f}"), ("band_backward_s", "band bwd [s]", "{:.0f}"),
            ("start_objective", "start obj.", "{:.2f}"), ("objective", "best obj.", "{:.2f}"),
            ("policy_delay_s", "policy delay", "{:.1f}"), ("plan_delay_s", "plan delay", "{:.1f}"),
            ("gap_s", "gap [s/veh]", "{:+.1f}")]
    used = [c for c in cols if any(r.get(c[0]) is not None for r in rows)]
    for _, title, _f in used:
        table.add_column(title)
    for r in rows:
        table.add_row(*(f.format(r[k]) if r.get(k) is not None else "" for k, _, f in used))
    return table
