"""``cqsignal train`` and ``cqsignal evaluate``."""

from __future__ import annotations

import argparse
import math
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``train`` and ``evaluate`` on the cqsignal command line."""
    from engine.cli import add_ray_arg, add_sumo_option_args, duration_arg, positive_int_arg, seed_arg, seed_count_arg

    p = sub.add_parser("train", help="train an RL policy from a YAML config (resumable)")
    p.add_argument("config", help="training config, e.g. configs/train_corridor.yaml")
    p.add_argument("--resume", action="store_true", help="continue the run in the config's output folder")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key (dotted, e.g. --set total_timesteps=2000); repeatable")
    p.add_argument("--quiet", action="store_true", help="no progress bar or evaluation lines")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="a trained model's KPIs beside a heuristic's on the same seeds")
    p.add_argument("model", help="a model .zip (with its .meta.json), or the name of a shipped model")
    p.add_argument("--period", action="append", default=None,
                   help="period(s) to evaluate (default: the model's first training period); repeatable")
    p.add_argument("--seeds", type=seed_count_arg, default=5, help="number of demand seeds (default 5)")
    p.add_argument("--first-seed", type=seed_arg, default=None,
                   help="first seed (default 100001: above the seeds training draws from, below "
                        "those a run's own evaluations use to pick its best model)")
    p.add_argument("--baseline", default="max_pressure", help="heuristic to compare with")
    p.add_argument("--duration", type=duration_arg, default=None,
                   help="simulated seconds (default: the scenario's)")
    add_sumo_option_args(p)  # evaluation default: SUMO's (never drop), not the env's training bound
    p.add_argument("--jobs", type=positive_int_arg("jobs"), default=2, help="parallel simulations")
    add_ray_arg(p)
    p.add_argument("--co2", action="store_true", help="measure CO2 (SUMO's emission device; slower)")
    p.add_argument("--out", default=None, help="write every run's KPIs to this JSON file")
    p.set_defaults(func=cmd_evaluate)


def cmd_train(args: argparse.Namespace) -> int:
    from agents.config import load_config
    from engine.report import console

    config = load_config(args.config, args.overrides)
    from engine.outputs import check_out

    # the run folder (kept across --resume) and the export: refused before any work if unusable or busy
    check_out(config.output, known=("*",), flag="output:")
    if config.export:
        check_out(config.export + ".zip" if not config.export.endswith(".zip") else config.export,
                  file=True, flag="export:", lock=False)
        check_out(config.export, file=True, flag="export:")
    from agents.train import Run  # torch and SB3 load only for a valid config
    run = Run(config, resume=args.resume, quiet=args.quiet)
    if not args.quiet:
        what = "resuming" if args.resume else "training"
        console.print(f"[bold]{what} {config.name}[/]: {config.algorithm.name}, {config.mode} policy, "
                      f"{config.n_envs} env process(es), {config.total_timesteps:,} timesteps -> {run.out}")
    best = run.train()
    if not args.quiet:
        console.print(f"best model: {best} (by evaluation delay); final model: {run.out / 'model.zip'}; "
                      f"learning curve: {run.out / 'learning_curve.png'}")
    return 0


def resolve_model(spec: str) -> str:
    """A model path as given, or the shipped model of that name."""
    from agents.policy import shipped_model

    if Path(spec).is_file() or Path(spec + ".zip").is_file() or "/" in spec or spec.endswith(".zip"):
        return spec
    shipped = shipped_model(spec)
    return str(shipped) if shipped else spec


def cmd_evaluate(args: argparse.Namespace) -> int:
    from agents import TEST_SEED_START, TRAIN_SEED_LIMIT
    from contextlib import ExitStack

    from agents.evaluate import jobs_for
    from engine.controllers.loading import check_model, read_meta
    from engine.env_core import env_options
    from engine.errors import ConfigError
    from engine.outputs import OutputLock, check_out
    from engine.report import console
    from engine.scenario import Scenario

    if args.out:
        check_out(args.out, file=True)  # a folder, an unwritable place or a busy file: refused before any work
    if args.seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {args.seeds}")
    spec = resolve_model(args.model)
    meta = read_meta(spec)
    options = env_options(**meta.env_options)
    periods = args.period or [options.periods()[0]]
    scenario = Scenario.load(options.network, period=periods[0], routes=options.routes, begin=options.begin)
    check_model(spec, scenario)
    limit = int(meta.raw.get("train_seed_limit", TRAIN_SEED_LIMIT))
    first = args.first_seed if args.first_seed is not None else max(TEST_SEED_START, limit + 1)
    from engine.scenario import MAX_SEED

    if first + args.seeds - 1 > MAX_SEED:
        raise ConfigError(f"seeds {first}..{first + args.seeds - 1} go beyond SUMO's range 0..{MAX_SEED}")
    seeds = list(range(first, first + args.seeds))
    if first < limit:
        console.print(f"[yellow]note:[/] seeds below {limit} may have been drawn in training")
    duration = args.duration or scenario.duration
    sumo = {"max_depart_delay": None if args.max_depart_delay is None or args.max_depart_delay < 0
            else args.max_depart_delay, "time_to_teleport": args.time_to_teleport}
    model_jobs = jobs_for(str(meta.zip_path), options, periods, seeds, duration, emissions=args.co2, **sumo)
    base_jobs = jobs_for(args.baseline, options, periods, seeds, duration, emissions=args.co2, **sumo)
    console.print(f"evaluating {meta.zip_path.name} and {args.baseline} on {options.network}, "
                  f"{', '.join(str(p or 'its routes') for p in periods)}, seeds {seeds[0]}..{seeds[-1]}, "
                  f"{duration:g} s each")
    with ExitStack() as stack:
        if args.out:
            stack.enter_context(OutputLock(args.out))  # a second evaluate into the same file refuses
        return _evaluate_and_report(args, meta, scenario, model_jobs, base_jobs)


def _evaluate_and_report(args, meta, scenario, model_jobs, base_jobs) -> int:
    from agents.evaluate import compare, run_jobs, summarise
    from engine.metrics import write_json_atomic
    from engine.outputs import build_manifest, file_hashes, model_files, namespace_options, scenario_files
    from engine.report import console, kpi_table

    results = run_jobs(model_jobs + base_jobs, args.jobs, ray=args.ray)
    mine, base = results[: len(model_jobs)], results[len(model_jobs):]
    label = meta.zip_path.stem
    console.print(kpi_table({label: _mean_all(mine), args.baseline: _mean_all(base)},
                            title=f"mean over {len(mine)} runs"))
    for key, unit in (("mean_delay_s", "s/veh"), ("mean_queue_veh", "veh"), ("throughput_veh_h", "veh/h")):
        diff, pct = compare(mine, base, key)
        ci = "" if math.isnan(diff.half_width) else \
            f" (95 % CI {diff.low:+.1f} to {diff.high:+.1f}, paired by seed, n={diff.n})"
        console.print(f"{key}: {label} - {args.baseline} = {diff.mean:+.1f} {unit}{ci}, {pct:+.1f} %")
    by_period = _by_period(mine, base) if len({r["period"] for r in mine}) > 1 else {}
    for period, row in by_period.items():
        ci = "" if row["low_s"] is None else f" (95 % CI {row['low_s']:+.1f} to {row['high_s']:+.1f}, n={row['n']})"
        (d0, d1), (s0, s1), (n0, n1) = row["delay_s"], row["stops"], row["never_inserted"]
        console.print(f"{period}: delay {d0:.1f} vs {d1:.1f} s/veh, {row['difference_s']:+.1f}{ci}, "
                      f"{row['percent']:+.1f} %; stops {s0:.2f} vs {s1:.2f} /veh; never inserted {n0:.1f} vs "
                      f"{n1:.1f} per run", highlight=False)
    if args.out:
        # one file, written whole; what a folder's manifest says (inputs, options, code version) is inside
        inputs = file_hashes(model_files(meta.zip_path) + scenario_files(scenario))
        about = build_manifest(Path(args.out).parent, inputs, namespace_options(args), "cqsignal evaluate",
                               only=())
        about.pop("files")
        write_json_atomic(Path(args.out), {"model": str(meta.zip_path), "baseline": args.baseline,
                                           "summary": {label: summarise(mine), args.baseline: summarise(base)},
                                           "by_period": by_period, "runs": results, "manifest": about})
        console.print(f"wrote {args.out}")
    return 0


def _by_period(mine: list[dict], base: list[dict]) -> dict[str, dict]:
    """Per period: mean delay (s/veh), stops (/veh) and vehicles never inserted (per run), model and
    baseline, and the delay's paired difference with its 95 % CI (Student t over seeds)."""
    import numpy as np

    from agents.evaluate import compare

    def num(x: float) -> float | None:
        return None if math.isnan(x) else round(x, 3)

    out = {}
    for period in dict.fromkeys(r["period"] for r in mine):
        m = [r for r in mine if r["period"] == period]
        b = [r for r in base if r["period"] == period]
        diff, pct = compare(m, b, "mean_delay_s")

        def pair(key: str, m: list[dict] = m, b: list[dict] = b) -> list[float]:
            return [round(float(np.mean([r[key] for r in rs])), 3) for rs in (m, b)]

        out[str(period)] = {"delay_s": pair("mean_delay_s"), "difference_s": num(diff.mean),
                            "low_s": num(diff.low), "high_s": num(diff.high), "n": diff.n,
                            "percent": round(pct, 2), "stops": pair("mean_stops"),
                            "never_inserted": pair("never_inserted")}
    return out


def _mean_all(results: list[dict]) -> dict:
    from engine.metrics import KPIs

    out = {}
    for key in KPIs.names():
        values = [r[key] for r in results if r.get(key) is not None]
        if not values:
            out[key] = None
        elif key in ("never_inserted", "teleports", "trips", "arrived"):
            out[key] = int(round(sum(values) / len(values)))
        else:
            out[key] = sum(values) / len(values)
    return out
