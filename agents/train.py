"""``cqsignal train``: one training run from a config, resumable.

The run folder (``output``) ends up holding::

    config.yaml             the validated config (with --set overrides)
    checkpoints/            atomic checkpoints; latest.json points at the newest
    tb/                     TensorBoard logs (training and evaluation KPIs)
    eval/                   the model under evaluation
    best_model.zip (+ .meta.json)   best by evaluation delay
    model.zip (+ .meta.json)        the final model
    history.json            training episodes and evaluations
    learning_curve.png
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any

import yaml

from agents.callbacks import TrainCallback
from agents.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from agents.config import TrainConfig, algorithm_class
from agents.evaluate import EVAL_KPIS, compare, jobs_for, run_jobs, summarise
from agents.policy import build_meta, copy_artefact, save_artefact
from agents.vec_env import SignalVecEnv
from engine.errors import ConfigError
from engine.metrics import write_json_atomic
from engine.outputs import OutputLock, atomic_write_text
from engine.report import console

INPUTS_FILE = "inputs.json"  # the contents and code a run started from; --resume requires the same
MANIFEST_FILES = ("config.yaml", INPUTS_FILE, "model.zip", "model.meta.json", "best_model.zip",
                  "best_model.meta.json", "history.json", "learning_curve.png")
# Config keys that may change when a run is resumed (the rest must match the checkpoint's).
_RESUMABLE_CHANGES = ("total_timesteps", "eval", "checkpoint", "export", "n_envs", "torch_threads")


class Run:
    """The state of one training run: folder, envs, evaluations, history."""

    def __init__(self, config: TrainConfig, resume: bool = False, quiet: bool = False) -> None:
        self.config = config
        self.out = Path(config.output)
        self.quiet = quiet
        self.options = config.env_options()
        self.shared = config.mode == "shared"
        self.checkpoint = latest_checkpoint(self.out)
        if resume and self.checkpoint is None:
            raise ConfigError(f"{self.out}: no checkpoint to resume from (start without --resume)")
        if not resume and (self.checkpoint is not None or (self.out / "model.zip").exists()):
            raise ConfigError(f"{self.out}: holds a run already; pass --resume to continue it, "
                              "or choose another output")
        if resume:
            self._check_same_run()
            self._check_same_inputs()
        self.state: dict[str, Any] = {
            "history": {"train": [], "eval": []}, "baseline": None, "best": None,
            "last_eval_step": 0, "last_checkpoint_step": 0, "wall_s": 0.0, "env_steps": 0,
            "pretrained": None, "critic_warmed": None,
        }
        self.venv: SignalVecEnv | None = None
        self.model = None
        self._t0 = time.perf_counter()
        self._wall_base = 0.0
        self._steps_base = 0
        self._eval_s = 0.0

    # -- lifecycle ----------------------------------------------------------------
    def _check_same_run(self) -> None:
        saved_file = self.out / "config.yaml"
        if not saved_file.is_file():
            return
        saved = yaml.safe_load(saved_file.read_text()) or {}
        now = self.config.to_dict()
        for key in sorted(set(saved) | set(now)):
            if key not in _RESUMABLE_CHANGES and saved.get(key) != now.get(key):
                raise ConfigError(f"--resume: '{key}' differs from the run in {self.out} "
                                  f"(was {saved.get(key)!r}); only {', '.join(_RESUMABLE_CHANGES)} may change")

    def inputs(self) -> dict[str, Any]:
        """What the run's results depend on besides its config: the contents of the network,
        route and demand files, and the code version."""
        from engine.outputs import code_version, file_hashes, scenario_files
        from engine.scenario import Scenario

        scenario = Scenario.of_network(self.options.network)
        if self.options.routes:  # the env's own route files replace the network's demand
            scenario = dataclasses.replace(scenario, route_files=tuple(Path(r) for r in self.options.routes),
                                           demand_file=None)
        return {"files": file_hashes(scenario_files(scenario)), "code_version": code_version()}

    def _check_same_inputs(self) -> None:
        saved_file = self.out / INPUTS_FILE
        if not saved_file.is_file():
            return  # a run from before inputs were recorded
        import json

        saved, now = json.loads(saved_file.read_text()), self.inputs()
        for path, digest in now["files"].items():
            if saved["files"].get(path, digest) != digest:
                raise ConfigError(f"--resume: {path} changed since the run in {self.out} started; "
                                  "train anew into another output")
        if saved.get("code_version") != now["code_version"]:
            raise ConfigError(f"--resume: the run in {self.out} was started by cqsignal "
                              f"{_version(saved.get('code_version'))}, this is {_version(now['code_version'])}; "
                              "train anew into another output")

    def build(self) -> None:
        """Start the environment workers and create (or restore) the model."""
        import torch
        from stable_baselines3.common.logger import configure

        torch.set_num_threads(self.config.torch_threads)
        cls = algorithm_class(self.config.algorithm.name)
        episodes = None
        if self.checkpoint is not None:
            from agents.checkpoint import load_state

            saved = load_state(self.checkpoint)
            episodes = saved.get("worker_episodes")
            episodes = _spread(episodes, self.config.n_envs)
        self.venv = SignalVecEnv(self.options, self.config.n_envs, self.shared, seed=self.config.seed,
                                 reward_scale=self.config.reward_scale, episodes=episodes)
        if self.checkpoint is not None:
            self.model, saved = load_checkpoint(self.checkpoint, cls, self.venv)
            self.state.update({k: v for k, v in saved.items() if k in self.state})
            self._wall_base, self._steps_base = float(self.state["wall_s"]), int(self.state["env_steps"])
        else:
            self.model = self._new_model(cls)
        self.out.mkdir(parents=True, exist_ok=True)
        _write_yaml(self.out / "config.yaml", self.config.to_dict())
        if self.checkpoint is None or not (self.out / INPUTS_FILE).is_file():
            write_json_atomic(self.out / INPUTS_FILE, self.inputs())
        self.model.set_logger(configure(str(self.out / "tb"), ["tensorboard"]))

    def _new_model(self, cls):
        algo = self.config.algorithm
        hyper = {k: _schedule(v) for k, v in algo.hyperparameters.items()}
        try:
            return cls(algo.policy, self.venv, seed=self.config.seed, device="cpu", verbose=0,
                       policy_kwargs=_policy_kwargs(algo.policy_kwargs) or None, **hyper)
        except (TypeError, ValueError, AssertionError, KeyError) as exc:
            raise ConfigError(f"algorithm: {algo.name} rejects these settings ({exc})") from None

    def train(self) -> Path:
        """Train to ``total_timesteps``, evaluate, and write the artefacts; the best model's path.

        The run folder and the export are locked for the whole run: a second run into
        either refuses in one line.
        """
        from contextlib import ExitStack

        with ExitStack() as locks:
            locks.enter_context(OutputLock(self.out))
            if self.config.export:
                locks.enter_context(OutputLock(Path(self.config.export)))
            return self._train()

    def _train(self) -> Path:
        from engine.outputs import MANIFEST

        (self.out / MANIFEST).unlink(missing_ok=True)  # the folder is complete again only at the end
        self.build()
        try:
            if self.config.eval.baseline and self.state["baseline"] is None:
                self.evaluate_baseline()
            if self.config.pretrain is not None and self.state["pretrained"] is None:
                self.run_pretraining()
            callback = TrainCallback(self)
            if self.config.critic_warmup is not None and not self.state.get("critic_warmed"):
                self.run_critic_warmup(callback)
            remaining = self.config.total_timesteps - self.model.num_timesteps
            if remaining > 0:
                self.model.learn(remaining, callback=callback, reset_num_timesteps=self.model.num_timesteps == 0,
                                 progress_bar=False)
            if self.state["last_eval_step"] < self.model.num_timesteps or not self.state["history"]["eval"]:
                self.evaluate()
            self.save_checkpoint()
            final = self._meta(self.state["history"]["eval"][-1]["kpis"])
            save_artefact(self.model, self.out / "model", final)
            self.plot()
            best = self.out / "best_model.zip"
            self.write_manifest()
            if self.config.export:
                exported = copy_artefact(self.out / "best_model", Path(self.config.export),
                                         name=Path(self.config.export).name, inputs=self.inputs()["files"])
                console.print(f"exported the best model to {exported}")
            return best
        finally:
            self.close()

    def run_critic_warmup(self, callback) -> None:
        """Fit the critic to the current (imitated) policy's returns with the actor frozen."""
        from agents.pretrain import warm_up_critic

        steps = self.config.critic_warmup.timesteps
        if not self.quiet:
            console.print(f"critic warm-up: {steps:,} timesteps with the actor frozen")
        start = int(self.model.num_timesteps)
        warm_up_critic(self.model, steps, callback)
        self.state["critic_warmed"] = {"from_step": start, "to_step": int(self.model.num_timesteps)}
        self.save_checkpoint()

    def run_pretraining(self) -> None:
        """Imitate the configured heuristic, evaluate that policy (step 0) and checkpoint it."""
        from agents.pretrain import pretrain

        if not self.quiet:
            p = self.config.pretrain
            console.print(f"pretraining: imitating {p.heuristic} for {p.episodes} episode(s) per env process")
        stats = pretrain(self)
        self.state["pretrained"] = stats
        for key in ("accuracy", "value_r2"):
            self.model.logger.record(f"pretrain/{key}", stats[key])
        if not self.quiet:
            console.print(f"pretrained on {stats['samples']:,} samples in {stats['wall_s']:.0f} s: "
                          f"agrees with {stats['heuristic']} on {100 * stats['accuracy']:.1f} % of free "
                          f"decisions, value R2 {stats['value_r2']:.2f}")
        self.evaluate()
        self.save_checkpoint()

    def close(self) -> None:
        if self.venv is not None:
            self.venv.close()
            self.venv = None

    # -- evaluation and checkpoints -------------------------------------------------
    def due(self, every: int, last: int) -> bool:
        return self.model.num_timesteps // every > last // every

    def _meta(self, eval_kpis: dict | None) -> dict:
        return build_meta(self.config.name, self.config.algorithm.name, self.config.mode, self.options,
                          self.venv.shape, self.config.to_dict(), self.model.num_timesteps, eval_kpis)

    def _eval_jobs(self, controller: str):
        ev = self.config.eval
        return jobs_for(controller, self.options, self.config.eval_periods(), ev.seeds, ev.duration)

    def _run_eval(self, controller: str) -> list[dict]:
        ev = self.config.eval
        return run_jobs(self._eval_jobs(controller), ev.jobs or self.config.n_envs, ray=ev.ray)

    def evaluate_baseline(self) -> None:
        t0 = time.perf_counter()
        name = self.config.eval.baseline
        results = self._run_eval(name)
        self.state["baseline"] = {"controller": name, "kpis": summarise(results), "runs": _runs(results)}
        self._eval_s += time.perf_counter() - t0
        if not self.quiet:
            k = self.state["baseline"]["kpis"]
            console.print(f"baseline {name}: delay {k['mean_delay_s']:.1f} s/veh, queue "
                          f"{k['mean_queue_veh']:.1f} veh, throughput {k['throughput_veh_h']:.0f} veh/h "
                          f"({len(results)} runs)")

    def evaluate(self) -> dict[str, float]:
        """Evaluate the current policy on the held-out seeds; keep it if it is the best so far."""
        t0 = time.perf_counter()
        step = int(self.model.num_timesteps)
        candidate = self.out / "eval" / "candidate"
        save_artefact(self.model, candidate, self._meta(None))
        results = self._run_eval(str(candidate) + ".zip")
        kpis = summarise(results)
        entry = {"step": step, "kpis": kpis, "runs": _runs(results), "wall_s": self.wall_s()}
        base = self.state["baseline"]
        if base and base.get("runs"):
            diff, pct = compare(entry["runs"], base["runs"])
            entry["vs_baseline"] = {"baseline": base["controller"], "n": diff.n,
                                    **{k: (None if math.isnan(v) else float(v)) for k, v in
                                       (("mean", diff.mean), ("low", diff.low), ("high", diff.high),
                                        ("percent", pct))}}
        self.state["history"]["eval"].append(entry)
        self.state["last_eval_step"] = step
        best = self.state["best"]
        if best is None or kpis["mean_delay_s"] < best["mean_delay_s"]:
            self.state["best"] = {"step": step, "mean_delay_s": kpis["mean_delay_s"]}
            copy_artefact(candidate, self.out / "best_model", eval_kpis=kpis,
                          eval_runs=entry["runs"], name=self.config.name)
        for key in EVAL_KPIS:
            self.model.logger.record(f"eval/{key}", kpis[key])
        base = self.state["baseline"]
        if base:
            self.model.logger.record(f"eval/{base['controller']}_mean_delay_s", base["kpis"]["mean_delay_s"])
        self.model.logger.dump(step)
        self.write_history()
        self.plot()  # the curve so far, to look at while it trains
        self._eval_s += time.perf_counter() - t0
        if not self.quiet:
            console.print(self.describe_eval(entry))
        return kpis

    def describe_eval(self, entry: dict) -> str:
        k = entry["kpis"]
        best = self.state["best"]
        line = (f"step {entry['step']:,}: eval delay {k['mean_delay_s']:.1f} s/veh, queue "
                f"{k['mean_queue_veh']:.1f} veh, throughput {k['throughput_veh_h']:.0f} veh/h; "
                f"best {best['mean_delay_s']:.1f} at step {best['step']:,}")
        base = self.state["baseline"]
        if base:
            line += f"; {base['controller']} {base['kpis']['mean_delay_s']:.1f}"
        vs = entry.get("vs_baseline")
        if vs and vs["low"] is not None:
            line += (f" (paired difference {vs['mean']:+.1f} s/veh, 95 % CI {vs['low']:+.1f} to "
                     f"{vs['high']:+.1f}, n = {vs['n']})")
        return line

    def save_checkpoint(self) -> Path:
        self.state["last_checkpoint_step"] = int(self.model.num_timesteps)
        self.state["wall_s"] = self.wall_s()
        self.state["env_steps"] = self.env_steps()
        workers = self.venv.worker_state()
        state = {**self.state, "worker_episodes": [w["episode"] for w in workers]}
        path = save_checkpoint(self.out, self.model, state, keep=self.config.checkpoint.keep)
        self.write_history()
        return path

    def record_episode(self, info: dict) -> None:
        kpis = info["kpis"]
        demand = info.get("demand", {})
        entry = {"step": int(self.model.num_timesteps), "period": demand.get("period"),
                 "seed": demand.get("seed"), **{k: kpis[k] for k in EVAL_KPIS}}
        self.state["history"]["train"].append(entry)
        for key in ("mean_delay_s", "mean_queue_veh", "throughput_veh_h"):
            self.model.logger.record_mean(f"train_episode/{key}", kpis[key])

    def wall_s(self) -> float:
        """Seconds this run has trained, over every resumption."""
        return self._wall_base + time.perf_counter() - self._t0

    def env_steps(self) -> int:
        """Network decisions simulated (each worker's step counts once), over every resumption."""
        return self._steps_base + (self.venv.env_steps if self.venv is not None else 0)

    def write_manifest(self) -> None:
        """``manifest.json``: the run's final artefacts with their sha256, inputs, config, code version."""
        from engine.outputs import MANIFEST, build_manifest

        manifest = build_manifest(self.out, self.inputs()["files"], self.config.to_dict(), "cqsignal train",
                                  only=MANIFEST_FILES)
        write_json_atomic(self.out / MANIFEST, manifest)

    def write_history(self) -> None:
        write_json_atomic(self.out / "history.json", {"baseline": self.state["baseline"],
                                                      "best": self.state["best"], **self.state["history"]})

    def plot(self) -> Path:
        from agents.curve import learning_curve

        return learning_curve(self.state, self.out / "learning_curve.png", self.config.name)


def train(config: TrainConfig, resume: bool = False, quiet: bool = False) -> Path:
    """Run (or resume) the training a config describes; the path of the best model."""
    return Run(config, resume=resume, quiet=quiet).train()


# -- helpers ----------------------------------------------------------------------
def _runs(results: list[dict]) -> list[dict]:
    return [{"period": r["period"], "seed": r["seed"], **{k: r[k] for k in EVAL_KPIS}} for r in results]


def _version(code: dict | None) -> str:
    if not code:
        return "an unknown version"
    commit = code.get("commit")
    return f"{code.get('cqsignal', '?')}" + (f" (commit {commit[:12]})" if commit else "")


def _spread(episodes: list[int] | None, n: int) -> list[int] | None:
    """Episode counters for ``n`` workers (a resumed run may use another number of workers)."""
    if not episodes:
        return None
    top = max(episodes)
    return [episodes[w] if w < len(episodes) else top for w in range(n)]


def _schedule(value: Any) -> Any:
    """``"linear:3e-4"`` or ``"linear:3e-4:1e-5"``: a linearly decaying schedule; else the value."""
    if isinstance(value, str) and value.startswith("linear:"):
        from stable_baselines3.common.utils import LinearSchedule

        from agents.config import parse_schedule

        try:
            start, end = parse_schedule(value, "schedule")
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        return LinearSchedule(start, end, 1.0)
    return value


_ACTIVATIONS = {"tanh": "Tanh", "relu": "ReLU", "elu": "ELU", "leaky_relu": "LeakyReLU"}


def _policy_kwargs(raw: dict[str, Any]) -> dict[str, Any]:
    out = dict(raw)
    if "activation_fn" in out:
        import torch.nn as nn

        name = str(out["activation_fn"]).lower()
        if name not in _ACTIVATIONS:
            raise ConfigError(f"algorithm.policy_kwargs.activation_fn: '{name}' "
                              f"(choose from {', '.join(_ACTIVATIONS)})")
        out["activation_fn"] = getattr(nn, _ACTIVATIONS[name])
    return out


def _write_yaml(path: Path, data: dict) -> None:
    atomic_write_text(path, yaml.safe_dump(data, sort_keys=False))
