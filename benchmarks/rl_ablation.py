"""Training-recipe ablation: one training run per part of the recipe taken away.

Each variant is the shipped config (``configs/train_multiagent.yaml``) with one part taken
away, at the same budget and seed (run from the repository's root):

    python -m benchmarks.rl_ablation [--timesteps 400000] [--variants ...] [--out runs/ablation] [--table-only]

Variants (``VARIANTS``): ``recipe`` (nothing taken away), ``small_updates`` (the PPO recipe:
critic warm-up, whole-hour updates, schedules), ``no_guard_in_training`` (the starvation
guard in the training mask), ``lane_observation`` (the phase-aligned observation) and
``approach_delay_reward`` (the reward's upstream-delay and entry-wait terms). Each run takes
about 11 min at 400,000 timesteps on a quiet 2-core machine (an hour for all five), and
several times that with other work beside it. A variant whose run folder exists is trained
again from scratch (its folder is replaced).

Each run ends with the training's own evaluation on the validation hours (seeds
150001-150003 x AM and PM peak, full hours, the deployment guard on), paired by seed with
max pressure; the table gives that delay, the paired difference with its 95 % CI (n = 6) and
the wall time. The runs (models, checkpoints) stay in ``--out``; each variant's history and log
and the table go to ``benchmarks/results_rl/ablation/``. ``--table-only`` rebuilds the table.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

CONFIG = "configs/train_multiagent.yaml"
RESULTS = Path("benchmarks/results_rl/ablation")
# variant -> (what it takes away, --set overrides of the shipped config)
VARIANTS: dict[str, tuple[str, list[str]]] = {
    "recipe": ("nothing: the shipped recipe", []),
    "small_updates": (
        "the PPO recipe: no critic warm-up, 896-sample updates (n_steps 64, batch 128, 4 epochs), "
        "lr 5e-5 and clip 0.1 constant, target_kl 0.03 (the config before issue 16)",
        ["critic_warmup=null", "algorithm.hyperparameters.n_steps=64", "algorithm.hyperparameters.batch_size=128",
         "algorithm.hyperparameters.n_epochs=4", "algorithm.hyperparameters.learning_rate=5.0e-5",
         "algorithm.hyperparameters.clip_range=0.1", "algorithm.hyperparameters.target_kl=0.03"]),
    "no_guard_in_training": (
        "the starvation guard in the training mask (deployment still applies it)", ["env.max_red_s=null"]),
    "lane_observation": (
        "the phase-aligned observation: padded per-lane slots (queue, density, pressure) instead",
        ["env.observation=[queue, density, phase, time_in_phase, min_green_passed, pressure]"]),
    "approach_delay_reward": (
        "the reward's unobserved parts: approach delay only (no upstream delay, no entry wait)",
        ["env.reward={delay: 1.0}"]),
}


def run(variant: str, timesteps: int, out: Path) -> None:
    """Train one variant (``cqsignal train``) into ``out/variant``; its log beside it."""
    folder = out / variant
    shutil.rmtree(folder, ignore_errors=True)  # a run folder with checkpoints would be refused
    folder.mkdir(parents=True)
    sets = [f"output={folder / 'run'}", f"total_timesteps={timesteps}", f"eval.every={timesteps}",
            f"checkpoint.every={timesteps}", *VARIANTS[variant][1]]
    cmd = [sys.executable, "-m", "engine.cli", "train", CONFIG, *(a for s in sets for a in ("--set", s))]
    t0 = time.perf_counter()
    with open(folder / "train.log", "w", encoding="utf-8") as log:
        rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT).returncode
    (folder / "wall.json").write_text(json.dumps({"wall_s": round(time.perf_counter() - t0, 1), "rc": rc,
                                                  "command": cmd[1:]}), encoding="utf-8")
    if rc != 0:
        raise SystemExit(f"{variant}: training failed (exit {rc}), see {folder / 'train.log'}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    for src, name in ((folder / "run" / "history.json", "history.json"), (folder / "train.log", "train.log"),
                      (folder / "wall.json", "wall.json")):
        shutil.copy(src, RESULTS / f"{variant}_{name}")


def table(timesteps: int) -> str:
    """ABLATION.md from the variants' histories: the last evaluation of each."""
    lines = [f"# Training-recipe ablation ({timesteps:,} timesteps each, seed 7)", "",
             f"Each row is `{CONFIG}` with one part taken away (`python -m benchmarks.rl_ablation`). Imitation: "
             "the start (step 0, after imitating max pressure); delay: mean over the 6 validation hours "
             "(seeds 150001-150003 x AM, PM; guard on) at the end of training; the difference is paired by "
             "seed with max pressure on the same hours (95 % CI, n = 6). Wall: with other work on the machine.",
             "",
             "| variant | takes away | imitation [s/veh] | delay [s/veh] | vs max pressure [s/veh] | % | wall [min] |",
             "|---|---|---|---|---|---|---|"]
    for name, (what, _) in VARIANTS.items():
        hist, wall = RESULTS / f"{name}_history.json", RESULTS / f"{name}_wall.json"
        if not hist.is_file():
            continue
        evals = json.loads(hist.read_text())["eval"]
        first, last = evals[0], evals[-1]
        d = last["vs_baseline"]
        minutes = json.loads(wall.read_text())["wall_s"] / 60 if wall.is_file() else float("nan")
        lines.append(f"| {name} | {what} | {first['kpis']['mean_delay_s']:.1f} | {last['kpis']['mean_delay_s']:.1f} "
                     f"| {d['mean']:+.1f} "
                     f"({d['low']:+.1f} to {d['high']:+.1f}) | {d['percent']:+.1f} | {minutes:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--timesteps", type=int, default=400_000, help="training budget of every variant")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS),
                   help="which variants to train (default: all)")
    p.add_argument("--out", type=Path, default=Path("runs/ablation"), help="where the runs (models) go")
    p.add_argument("--table-only", action="store_true", help=f"only rebuild {RESULTS}/ABLATION.md")
    args = p.parse_args(argv)
    if not Path(CONFIG).is_file():
        p.error(f"{CONFIG} not found: run from the repository's root")
    if not args.table_only:
        for v in args.variants:
            run(v, args.timesteps, args.out)
            print(f"{v}: done", flush=True)
    if not any((RESULTS / f"{v}_history.json").is_file() for v in VARIANTS):
        p.error(f"no variant's results in {RESULTS}: train them first (without --table-only)")
    text = table(args.timesteps)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ABLATION.md").write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
