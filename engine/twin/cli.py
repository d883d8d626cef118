"""``cqsignal twin CONFIG.yaml [--out DIR]``: the predictive twin's closed loop over a scenario."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

TWIN_FILES = ("report.html", "results.json", "decisions.jsonl", "counts.csv")
COMMAND = "cqsignal twin"
# results.json: the unit of each value (keys as in the file; * stands for a controller or method name)
RESULTS_UNITS = {
    "seed": "-",
    "controllers.*.kpis.duration_s": "s", "controllers.*.kpis.begin_s": "s (simulation clock)",
    "controllers.*.kpis.trips": "vehicles", "controllers.*.kpis.arrived": "vehicles",
    "controllers.*.kpis.never_inserted": "vehicles", "controllers.*.kpis.backlog": "vehicles",
    "controllers.*.kpis.dropped": "vehicles", "controllers.*.kpis.teleports": "vehicles",
    "controllers.*.kpis.mean_delay_s": "s/veh", "controllers.*.kpis.mean_travel_time_s": "s/veh",
    "controllers.*.kpis.mean_stops": "stops/veh", "controllers.*.kpis.mean_queue_veh": "veh per signal",
    "controllers.*.kpis.max_queue_veh": "veh", "controllers.*.kpis.throughput_veh_h": "veh/h",
    "controllers.*.kpis.co2_kg": "kg", "controllers.*.kpis.max_depart_delay_s": "s",
    "controllers.*.kpis.time_to_teleport_s": "s", "controllers.*.kpis.persons": "persons",
    "controllers.*.kpis.mean_ped_delay_s": "s/person", "controllers.*.kpis.mean_ped_wait_s": "s/person",
    "controllers.*.wall_s": "s (wall-clock time of the field run)",
    "controllers.*.plans": "[time of day in s since midnight, plan label] at every change",
    "controllers.*.delay_5min": "s/veh (mean delay of the vehicles due in each 5-min bin from the window's start)",
    "controllers.*.monitor_violations": "count (null without --monitor)",
    "forecast_accuracy.*.*.mape": "%", "forecast_accuracy.*.*.rmse": "veh/h",
    "forecast_accuracy.*.*.coverage": "share (0-1) of actual flows inside the prediction interval",
    "forecast_accuracy.*.*.n": "forecasts",
    "decision_wall_s.median": "s (wall-clock time per decision)", "decision_wall_s.max": "s",
    "decision_wall_s.n": "decisions",
    "config.field.window": "s since midnight",
}


def add_parser(sub) -> None:
    """Register the ``twin`` subcommand (engine.cli imports this module if present)."""
    p = sub.add_parser("twin", help="closed loop: detector counts -> forecast -> what-if -> signal plans (report)")
    p.add_argument("config", help="twin scenario (YAML), e.g. configs/twin_surge.yaml; relative paths in it "
                                  "(plans, plan_config, a network path) are resolved against the current working "
                                  "directory, not the config's folder. The whole config, and its edges against the "
                                  "network, is checked before any simulation")
    p.add_argument("--out", default="out/twin",
                   help="folder for report.html, results.json (its 'units' map gives each value's unit), "
                        "decisions.jsonl, counts.csv; refused if it holds another command's output")
    p.add_argument("--seed", type=int, default=None, help="the field's demand seed (default: the config's)")
    p.add_argument("--controllers", default=None,
                   help="comma-separated: twin, twin_actuated, oracle, tod, actuated, max_pressure "
                        "(default: twin + the config's baselines)")
    p.add_argument("--monitor", action="store_true",
                   help="check every second of every run with the independent safety monitor (slower)")
    p.add_argument("--cache", default=None,
                   help="folder that keeps the history profile between runs (default: ~/.cache/cqsignal/twin)")
    p.set_defaults(func=cmd_twin)


def cmd_twin(args: argparse.Namespace) -> int:
    from engine.errors import ConfigError
    from engine.outputs import atomic_write_json, atomic_write_text, check_out, namespace_options, staged_output
    from engine.report import console, kpi_table, progress_bar
    from engine.twin.closed_loop import delay_over_time, history_profile, resolve, run_field
    from engine.twin.config import CONTROLLERS, check_against_network, load_twin_config
    from engine.twin.report import forecast_accuracy, render_report

    out = Path(args.out)
    check_out(out, TWIN_FILES, command=COMMAND)  # a bad --out (another command's output too) is refused first
    cfg = load_twin_config(args.config)
    if args.seed is not None:
        if not 0 <= args.seed <= 2**31 - 1:
            raise ConfigError(f"--seed must be in 0..2147483647, got {args.seed}")
        cfg = cfg.model_copy(update={"seed": args.seed})
    controllers = ["twin", *cfg.baselines] if args.controllers is None else \
        [c.strip() for c in args.controllers.split(",") if c.strip()]
    bad = [c for c in controllers if c not in CONTROLLERS]
    if bad or not controllers:
        raise ConfigError(f"--controllers: unknown {bad[0]!r} (choose from {', '.join(CONTROLLERS)})" if bad
                          else "--controllers: none given")
    controllers = list(dict.fromkeys(controllers))
    setting = resolve(cfg, args.config)  # every file and plan checked before any simulation
    check_against_network(cfg, args.config, setting.base.net_file, setting.base.demand_file, setting.intersections)
    cache = Path(args.cache).expanduser() if args.cache else Path("~/.cache/cqsignal/twin").expanduser()
    spec = cfg.field
    console.print(f"[bold]{cfg.name}[/]: {cfg.description or spec.period} — seed {cfg.seed}, "
                  f"controllers {', '.join(controllers)}")
    inputs = [Path(args.config), cfg.plans, cfg.plan_config, setting.base.net_file, setting.base.demand_file]
    with staged_output(out, command=COMMAND, inputs=inputs, known=TWIN_FILES, say=console.print,
                       options={**namespace_options(args), "config": cfg.model_dump(mode="json")}) as stage:
        work = stage.path / "runs"
        profile = None
        if any(c in ("twin", "twin_actuated", "oracle") for c in controllers):
            with progress_bar("history (normal day)", 1.0):
                profile = history_profile(setting, cache, cfg.twin.horizon_s)
        runs = {}
        decisions_file = stage.path / "decisions.jsonl"
        for name in controllers:
            t0 = time.perf_counter()

            def logged(record: dict, name: str = name) -> None:
                with open(decisions_file, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps({"controller": name, **record}) + "\n")
                console.print(f"  {record['clock']} {name}: {record['chosen']} — {record['reason']} "
                              f"({record['wall_s']['total']:.0f} s)", highlight=False)

            with progress_bar(f"field: {name}", spec.duration) as advance:
                runs[name] = run_field(setting, name, work / name, profile=profile, monitor=args.monitor,
                                       on_decision=logged, progress=advance)
            runs[name].wall_s = time.perf_counter() - t0
            if runs[name].violations:
                raise ConfigError(f"{name}: the safety monitor saw {len(runs[name].violations)} violation(s), "
                                  f"first: {runs[name].violations[0]}")
        if not decisions_file.exists():
            decisions_file.write_text("", encoding="utf-8")
        main = "twin" if "twin" in runs else controllers[0]
        (stage.path / "counts.csv").write_bytes(runs[main].counts.read_bytes())
        results = {
            "units": RESULTS_UNITS, "config": cfg.model_dump(mode="json"), "seed": cfg.seed,
            "controllers": {n: {"kpis": r.kpis.to_dict(), "wall_s": round(r.wall_s, 1),
                                "plans": [[t, p] for t, p in r.plans],
                                "delay_5min": delay_over_time(r.tripinfo, spec.begin, spec.begin + spec.duration),
                                "monitor_violations": len(r.violations) if args.monitor else None}
                            for n, r in runs.items()},
        }
        if profile is not None and "twin" in runs:
            results["forecast_accuracy"] = forecast_accuracy(runs["twin"].counts, profile, spec.begin, cfg.twin)
        walls = [d["wall_s"]["total"] for r in runs.values() for d in r.decisions]
        if walls:
            results["decision_wall_s"] = {"median": float(sorted(walls)[len(walls) // 2]), "max": max(walls),
                                          "n": len(walls)}
        atomic_write_json(stage.path / "results.json", results)
        atomic_write_text(stage.path / "report.html", render_report(results, {n: r.decisions for n, r in runs.items()},
                                                                     runs[main].counts, profile))
        for r in runs.values():  # keep the outputs a reader needs, not SUMO's working files
            _prune(work / r.controller)
    console.print(kpi_table({n: r["kpis"] for n, r in results["controllers"].items()}))
    console.print(f"wrote {out / 'report.html'}, {out / 'results.json'} and {out / 'decisions.jsonl'}")
    return 0


def _prune(folder: Path) -> None:
    import shutil

    for name in ("tripinfo.xml", "statistics.xml"):  # SUMO's own outputs: the KPIs can be recomputed
        if (folder / "sumo" / name).is_file():
            shutil.move(folder / "sumo" / name, folder / name)
    for sub in ("twin", "sumo"):
        shutil.rmtree(folder / sub, ignore_errors=True)
    for f in folder.glob("*.rou.xml"):
        f.unlink()
