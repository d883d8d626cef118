"""Forecast accuracy per horizon (15, 30, 60 min) on the twin's scenarios, from their detector feeds.

    python -m benchmarks.forecast --configs configs/twin_surge.yaml configs/twin_normal.yaml \\
        --runs benchmarks/results_twin [--controller tod] [--out benchmarks/results_twin/FORECAST.md]

For every scenario (a twin config) and every seed run under ``RUNS/<scenario>/seed*/``
(``python -m benchmarks.twin`` writes them), the field's feed of one controller's run
(``runs/<controller>/counts.csv``; by default the time-of-day plans', the counts a city
running its plans would see) is forecast every 5 minutes by each method (``ets``,
``last``, ``profile``; :mod:`engine.twin.forecast`) against the scenario's history profile
(the normal day, from the twin's cache), for every horizon the counts still cover.
Writes MAPE [%], RMSE [veh/h] and the 80 % interval's coverage per scenario, method and
horizon, over all forecasts of all seeds (n).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

from benchmarks.twin import completed
from engine.errors import ConfigError, CqSignalError

HORIZONS = {"15 min": 900.0, "30 min": 1800.0, "60 min": 3600.0}
METHODS = ("ets", "last", "profile")


def scenario_accuracy(config: str, runs: Path, controller: str, cache: Path) -> tuple[str, int, dict]:
    """(scenario, seeds, {method: {horizon label: accuracy}}) for one twin config."""
    from engine.twin.closed_loop import history_profile, resolve
    from engine.twin.config import load_twin_config
    from engine.twin.detectors import COUNTS_PERIOD_S
    from engine.twin.forecast import accuracy, rolling_forecasts
    from engine.twin.report import observed_flows

    cfg = load_twin_config(config)
    name = Path(config).stem.removeprefix("twin_")
    by_seed: dict[int, Path] = {}  # a seed's feed from its run completed last
    for results in sorted((runs / name).glob("seed*/results.json"), key=completed):
        feed = results.parent / "runs" / controller / "counts.csv"
        if feed.is_file():
            by_seed[int(results.parent.name.removeprefix("seed").split("-")[0])] = feed
    feeds = [by_seed[k] for k in sorted(by_seed)]
    if not feeds:
        raise ConfigError(f"{runs / name}: no seed*/runs/{controller}/counts.csv (run python -m benchmarks.twin "
                          f"with the {controller!r} controller)")
    setting = resolve(cfg)
    profile = history_profile(setting, cache, cfg.twin.horizon_s)
    begin = cfg.field.begin
    n = min(len(v) for v in profile.values())
    longest = int(round(max(HORIZONS.values()) / COUNTS_PERIOD_S))
    first = int(round(min(HORIZONS.values()) / COUNTS_PERIOD_S))
    fcs: dict[str, list] = {m: [] for m in METHODS}
    truths = {}
    for k, feed in enumerate(feeds):
        actual = observed_flows(feed, begin, n)
        if not actual or not any(np.isfinite(v).any() for v in actual.values()):
            raise ConfigError(f"{feed}: no counts inside the window")
        counted = int(max(np.flatnonzero(np.isfinite(v)).max(initial=-1) for v in actual.values()) + 1)
        # one location key per feed, so each seed's forecasts meet their own truth (only what was counted)
        truths.update({f"{k}:{loc}": np.nan_to_num(v[:counted], nan=0.0) for loc, v in actual.items()})
        for method in METHODS:
            fcs[method] += [dataclasses.replace(f, location=f"{k}:{f.location}")
                            for f in rolling_forecasts(actual, profile, range(1, counted - first + 1), longest,
                                                       method=method, level=cfg.twin.level)]
    out = {m: {label: acc for label, acc in zip(HORIZONS, accuracy(fcs[m], truths, list(HORIZONS.values())).values())}
           for m in METHODS}
    return name, len(feeds), out


def table(results: list[tuple[str, int, dict]], controller: str) -> str:
    lines = ["# Forecast accuracy on the twin's scenarios", "",
             f"Feeds of the `{controller}` runs; a forecast every 5 minutes per count location, for every "
             "horizon the window still covers; MAPE over locations and times with traffic, RMSE in veh/h, "
             "coverage of the 80 % interval. The `ets` method's two bias thresholds were chosen on "
             "some of these feeds (seeds 1-3 of growth and incident, 3-5 of normal, 4-5 of surge): its "
             "scores on those are in-sample, on the others out of sample. Regenerate: "
             "`python -m benchmarks.forecast --configs configs/twin_*.yaml --runs benchmarks/results_twin`.", ""]
    for name, seeds, acc in results:
        lines += [f"## {name} ({seeds} seed{'s' if seeds != 1 else ''})", "",
                  "| method | " + " | ".join(f"{h} MAPE [%] | {h} RMSE | {h} coverage" for h in HORIZONS) + " |",
                  "|---|" + "---|---|---|" * len(HORIZONS)]
        for method, by in acc.items():
            cells = []
            for h in HORIZONS:
                a = by[h]
                cells += [f"{a['mape']:.1f}", f"{a['rmse']:.0f}", f"{a['coverage']:.2f}"]
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.forecast", description=__doc__.splitlines()[0])
    p.add_argument("--configs", nargs="+", required=True, help="twin configs (one scenario each)")
    p.add_argument("--runs", default="benchmarks/results_twin", help="folder of python -m benchmarks.twin runs")
    p.add_argument("--controller", default="tod", help="whose field feed to forecast (default: tod)")
    p.add_argument("--cache", default=None, help="history cache (default: RUNS/cache)")
    p.add_argument("--out", default=None, help="markdown file (default: RUNS/FORECAST.md)")
    args = p.parse_args(argv)
    runs = Path(args.runs)
    out = Path(args.out) if args.out else runs / "FORECAST.md"
    try:
        if not out.parent.is_dir():
            raise ConfigError(f"--out {out}: folder {out.parent} does not exist")
        results = [scenario_accuracy(c, runs, args.controller, Path(args.cache) if args.cache else runs / "cache")
                   for c in args.configs]
    except CqSignalError as exc:
        print(f"benchmarks.forecast: error: {exc}", file=sys.stderr)
        return 2
    text = table(results, args.controller)
    out.write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
