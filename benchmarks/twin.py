"""The predictive twin against the baselines, over scenarios and seeds (issue 17's quality bar).

    python -m benchmarks.twin --configs configs/twin_surge.yaml configs/twin_normal.yaml \\
        --seeds 1 2 3 4 5 --out benchmarks/results_twin

runs ``cqsignal twin`` for every config and seed into ``OUT/<scenario>/seed<N>`` (with
``--controllers``: ``seed<N>-<controllers>``; the table merges a seed's folders; a run whose
``results.json`` exists is kept: the command resumes) and writes ``OUT/TWIN.md``: per scenario
and controller the mean delay ± 95 % CI over seeds (n), the change against the time-of-day
plans paired by seed, the twin against the oracle and the decision wall times (forecast
accuracy: :mod:`benchmarks.forecast`, from the same runs' feeds). Where a seed's folders
hold the same controller, the run completed last (``manifest.json``'s ``completed_at``;
folders without one count as oldest) is used.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

from benchmarks.stats import mean_ci, paired_difference


ORDER = ("tod", "twin", "oracle", "twin_actuated", "actuated", "max_pressure")  # rows of each table


def run(configs: list[str], seeds: list[int], out: Path, controllers: str | None, cache: Path) -> None:
    from engine.cli import main as cli

    for config in configs:
        name = Path(config).stem.removeprefix("twin_")
        for seed in seeds:
            dest = out / name / (f"seed{seed}" + (f"-{controllers.replace(',', '+')}" if controllers else ""))
            if (dest / "results.json").is_file():
                continue
            args = ["twin", config, "--out", str(dest), "--seed", str(seed), "--cache", str(cache)]
            if controllers:
                args += ["--controllers", controllers]
            code = cli(args)
            if code:
                sys.exit(code)


def table(out: Path) -> str:
    """TWIN.md from every ``results.json`` under ``out``."""
    lines = ["# Predictive twin: closed loop against the baselines", "",
             "Mean delay over the 16:30–18:30 window (s/veh, all vehicles due, those left outside charged), "
             "mean ± 95 % CI over seeds (n); Δ TOD: paired by seed against the time-of-day plans. "
             "Regenerate: `python -m benchmarks.twin --configs configs/twin_*.yaml --seeds ... --out "
             f"{out}`. A controller's delay is its mean over its own seeds; the Δ columns pair it with TOD "
             "on the seeds both have, so with fewer seeds than TOD they can differ from the difference of "
             "the two means. Decision wall times are as measured in these runs, often with another run "
             "sharing the machine's cores.", ""]
    overview = ["## Overview", "", "Change of mean delay against TOD, paired by seed: s/veh ± 95 % CI "
                "(%, n seeds); the twin also against the oracle.", "",
                "| scenario | twin | oracle | twin vs oracle | twin_actuated | actuated | max_pressure |",
                "|---|---|---|---|---|---|---|"]
    head = len(lines)
    for scenario in sorted(p for p in out.iterdir() if p.is_dir() and p.name != "cache"):
        runs = merged_runs(scenario)
        if not runs:
            continue
        seen = {n for r in runs.values() for n in r["controllers"]}
        names = [n for n in ORDER if n in seen] + sorted(seen - set(ORDER))
        delay = {n: {s: r["controllers"][n]["kpis"]["mean_delay_s"] for s, r in runs.items()
                     if n in r["controllers"]} for n in names}
        lines += [f"## {scenario.name}", "", "| controller | delay [s/veh] | Δ TOD [s/veh] | Δ TOD [%] | "
                  "stops [/veh] | left outside [veh] |", "|---|---|---|---|---|---|"]
        for n in names:
            est = mean_ci(list(delay[n].values()))
            stops = np.mean([r["controllers"][n]["kpis"]["mean_stops"] for r in runs.values() if n in r["controllers"]])
            outside = np.mean([r["controllers"][n]["kpis"]["never_inserted"] for r in runs.values()
                               if n in r["controllers"]])
            if "tod" in delay and n != "tod":
                diff, pct = paired_difference(delay[n], delay["tod"])
                d = f"{diff.mean:+.1f}" + ("" if math.isnan(diff.half_width) else f" ± {diff.half_width:.1f}")
                p = f"{pct:+.1f}"
            else:
                d = p = "–"
            ci = f" ± {est.half_width:.1f}" if not math.isnan(est.half_width) else ""
            lines.append(f"| {n} | {est.mean:.1f}{ci} (n={est.n}) | {d} | {p} | {stops:.2f} | {outside:.0f} |")
        overview.append(f"| {scenario.name} | " + " | ".join(
            _paired(delay, *(("twin", "oracle") if n == "vs oracle" else (n, "tod")))
            for n in ("twin", "oracle", "vs oracle", "twin_actuated", "actuated", "max_pressure")) + " |")
        if _paired(delay, "twin", "oracle") != "–":
            lines += ["", f"Twin against the oracle, paired by seed, in s/veh: {_paired(delay, 'twin', 'oracle')}."]
        walls = [w for r in runs.values() for w in [r.get("decision_wall_s")] if w]
        if walls:
            lines += ["", f"Decision wall time: median {np.median([w['median'] for w in walls]):.0f} s, "
                      f"max {max(w['max'] for w in walls):.0f} s ({sum(w['n'] for w in walls)} decisions)."]
        lines.append("")
    lines[head:head] = overview + [""]
    return "\n".join(lines)


def merged_runs(scenario: Path) -> dict[int, dict]:
    """Seed -> results of a scenario's runs, the controllers of a seed's folders merged (a run
    completed later supersedes an earlier one's controller; the decision wall times from the
    latest run with the twin)."""
    runs: dict[int, dict] = {}
    for f in sorted(scenario.glob("seed*/results.json"), key=completed):
        seed = int(f.parent.name.removeprefix("seed").split("-")[0])
        r = json.loads(f.read_text())
        if seed in runs:
            runs[seed]["controllers"].update(r["controllers"])
            if r.get("decision_wall_s") and ("twin" in r["controllers"] or not runs[seed].get("decision_wall_s")):
                runs[seed]["decision_wall_s"] = r["decision_wall_s"]
        else:
            runs[seed] = r
    return runs


def _paired(delay: dict[str, dict[int, float]], a: str, b: str) -> str:
    """``a`` - ``b`` paired by seed: 's ± ci (%, n)', or '–' without common seeds."""
    if not set(delay.get(a, {})) & set(delay.get(b, {})):
        return "–"
    diff, pct = paired_difference(delay[a], delay[b])
    hw = "" if math.isnan(diff.half_width) else f" ± {diff.half_width:.1f}"
    return f"{diff.mean:+.1f}{hw} ({pct:+.1f} %, n={diff.n})"


def completed(results: Path) -> tuple[str, str]:
    """Sort key of a run folder: its manifest's completion time (runs kept without one first), then name."""
    manifest = results.parent / "manifest.json"
    done = json.loads(manifest.read_text()).get("completed_at", "") if manifest.is_file() else ""
    return done, results.parent.name


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.twin", description=__doc__.splitlines()[0])
    p.add_argument("--configs", nargs="*", default=[], help="twin configs (none: only tabulate --out)")
    p.add_argument("--seeds", type=int, nargs="+", default=[1])
    p.add_argument("--out", default="benchmarks/results_twin")
    p.add_argument("--controllers", default=None, help="as for cqsignal twin (default: twin + the baselines)")
    p.add_argument("--cache", default=None, help="history cache (default: OUT/cache)")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    run(args.configs, args.seeds, out, args.controllers, Path(args.cache) if args.cache else out / "cache")
    if not any(out.glob("*/seed*/results.json")):
        print(f"benchmarks.twin: error: no runs under {out} (give --configs to run some)", file=sys.stderr)
        return 2
    text = table(out)
    (out / "TWIN.md").write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
