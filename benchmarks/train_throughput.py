"""Aggregate env steps/s while training, with 1 and 2 environment processes.

    python benchmarks/train_throughput.py [--steps 512] [--rounds 2] [--variants ...] [--json OUT]

Variants (each measured in a fresh process, 1 and 2 envs alternating, so that
a shared machine's load drifts over both alike):

* ``independent``: N processes each stepping the env with random legal
  actions, no learner: the ceiling for N envs.
* ``sb3``: stable-baselines3's ``SubprocVecEnv`` over ``CorridorEnv`` with
  MaskablePPO, torch's default threads: what a user gets out of the box.
* ``sb3_1thread``: the same with one torch thread in the learner and one
  OpenMP/BLAS/Numba thread in the workers: what thread oversubscription costs.
* ``ours``: :class:`agents.vec_env.SignalVecEnv` (single agent), the same
  MaskablePPO, one torch thread.
* ``shared``: the same workers as one parameter-shared policy (7 samples per
  network decision, so the learner does 7x the gradient work per env step).
* ``recipe``: ``shared`` with the env of the shipped training config
  (``configs/train_multiagent.yaml``: phase-aligned observation, the starvation
  guard in the mask, the reward terms), AM peak: what ``cqsignal train`` runs.

An env step is one decision for the whole network (every signal). Rates are
wall-clock over the learning loop only (process start and SUMO's first load
excluded); CPU seconds (learner + workers) are reported too, since on a machine
shared with other work the wall rate moves with everybody's load.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

ENV = {"network": "chongqing", "period": "am_peak", "duration": 900.0}
PPO = {"n_steps": 128, "batch_size": 64, "n_epochs": 10}
VARIANTS = ("independent", "sb3", "sb3_1thread", "ours", "shared", "recipe")
RECIPE = "configs/train_multiagent.yaml"


def _cpu_children() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _cpu_self() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _independent_worker(steps: int, seed: int, barrier, out) -> None:
    import numpy as np

    from engine.env import CorridorEnv

    env = CorridorEnv(**ENV)
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    barrier.wait()
    t0 = time.perf_counter()
    for _ in range(steps):
        mask = env.action_masks()
        parts, at = [], 0
        for n in env.action_space.nvec:
            allowed = np.flatnonzero(mask[at: at + n])
            parts.append(rng.choice(allowed))
            at += n
        _, _, term, trunc, _ = env.step(np.array(parts))
        if term or trunc:
            env.reset(seed=int(rng.integers(1 << 20)))
    out.put(time.perf_counter() - t0)
    env.close()


def measure_independent(n: int, steps: int) -> dict:
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(n), ctx.Queue()
    per = steps // n
    procs = [ctx.Process(target=_independent_worker, args=(per, 10 + i, barrier, out)) for i in range(n)]
    cpu0 = _cpu_children()
    for p in procs:
        p.start()
    walls = [out.get() for _ in procs]
    for p in procs:
        p.join()
    return {"wall_s": max(walls), "env_steps": per * n, "cpu_s": _cpu_children() - cpu0}


def measure_training(variant: str, n: int, steps: int) -> dict:
    import torch
    from sb3_contrib import MaskablePPO

    if variant in ("sb3", "sb3_1thread"):
        from stable_baselines3.common.vec_env import SubprocVecEnv

        if variant == "sb3_1thread":
            from engine.runs import THREAD_VARS

            torch.set_num_threads(1)
            os.environ.update({v: "1" for v in THREAD_VARS})

        from engine.env import CorridorEnv

        venv = SubprocVecEnv([lambda i=i: CorridorEnv(**ENV) for i in range(n)])
        venv.seed(10)
        per_step = n
    else:
        torch.set_num_threads(1)
        from agents.vec_env import SignalVecEnv
        from engine.env_core import env_options

        if variant == "recipe":
            from agents.config import load_config

            root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
            options = load_config(os.path.join(root, RECIPE), ["env.period=am_peak", "env.duration=900"]).env_options()
        else:
            options = env_options(**ENV)
        venv = SignalVecEnv(options, n, shared=variant in ("shared", "recipe"), seed=10)
        per_step = n
    model = MaskablePPO("MlpPolicy", venv, seed=0, device="cpu", verbose=0, **PPO)
    # steps counted by SB3 are sub-env steps: n per network decision here, 7n when shared
    sb3_steps = steps * (venv.num_envs // per_step)
    workers0 = venv.worker_state() if variant in ("ours", "shared", "recipe") else None
    cpu0 = _cpu_self()
    t0 = time.perf_counter()
    model.learn(sb3_steps)
    wall = time.perf_counter() - t0
    learner_cpu = _cpu_self() - cpu0
    out = {"wall_s": wall, "env_steps": model.num_timesteps * per_step // venv.num_envs,
           "learner_cpu_s": learner_cpu, "torch_threads": torch.get_num_threads()}
    if workers0 is not None:  # the workers' own account of the learning loop
        workers1 = venv.worker_state()
        out["worker_cpu_s"] = sum(b["cpu_s"] - a["cpu_s"] for a, b in zip(workers0, workers1))
        out["worker_busy_s"] = [round(b["busy_s"] - a["busy_s"], 2) for a, b in zip(workers0, workers1)]
    venv.close()
    out["cpu_s"] = learner_cpu + _cpu_children()  # children: whole lives, start-up included
    return out


def one(variant: str, n: int, steps: int) -> dict:
    load = os.getloadavg()[0]
    if variant == "independent":
        res = measure_independent(n, steps)
    else:
        res = measure_training(variant, n, steps)
    res.update(variant=variant, n_envs=n, load_before=load,
               steps_per_s=res["env_steps"] / res["wall_s"])
    return res


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=512, help="env steps per measurement")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--json", default=None, help="write every measurement here")
    parser.add_argument("--one", nargs=2, metavar=("VARIANT", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(one(args.one[0], int(args.one[1]), args.steps)))
        return 0
    rows = []
    for r in range(args.rounds):
        for variant in args.variants:
            for n in ((1, 2) if r % 2 == 0 else (2, 1)):
                proc = subprocess.run([sys.executable, __file__, "--one", variant, str(n),
                                       "--steps", str(args.steps)], capture_output=True, text=True)
                if proc.returncode != 0:
                    print(proc.stderr, file=sys.stderr)
                    return 1
                row = json.loads(proc.stdout.strip().splitlines()[-1])
                rows.append(row)
                print(f"round {r + 1} {variant:12s} n={n}: {row['steps_per_s']:6.1f} env steps/s "
                      f"(wall {row['wall_s']:.1f} s, CPU {row['cpu_s']:.1f} s, load {row['load_before']:.1f})",
                      flush=True)
    print("\nspeed-up with 2 envs (ratio of mean rates over rounds):")
    for variant in args.variants:
        rate = {n: [x["steps_per_s"] for x in rows if x["variant"] == variant and x["n_envs"] == n]
                for n in (1, 2)}
        m1, m2 = sum(rate[1]) / len(rate[1]), sum(rate[2]) / len(rate[2])
        print(f"  {variant:12s} 1 env {m1:6.1f}/s, 2 envs {m2:6.1f}/s: {m2 / m1:.2f}x")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
