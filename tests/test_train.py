"""Training from configs on the small grid: artefacts, checkpoints, resume, config errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from agents.checkpoint import latest_checkpoint, load_state
from agents.config import load_config, validate_config
from agents.train import Run, train
from engine.errors import ConfigError


def grid_config(grid, out: Path, **changes) -> dict:
    """A tiny shared-policy run: 2 env processes, 60 s episodes (12 decisions)."""
    net, routes = grid
    raw = {
        "name": "grid_tiny",
        "mode": "shared",
        "env": {"network": str(net), "routes": [str(routes)], "period": None, "duration": 60},
        "algorithm": {"name": "MaskablePPO",
                      "hyperparameters": {"n_steps": 8, "batch_size": 32, "n_epochs": 2},
                      "policy_kwargs": {"net_arch": [16, 16]}},
        "total_timesteps": 192,  # 3 updates of 2 processes x 4 signals x 8 steps
        "n_envs": 2,
        "seed": 3,
        "eval": {"every": 128, "seeds": [150001], "duration": 60, "jobs": 1, "baseline": None},
        "checkpoint": {"every": 64, "keep": 2},
        "output": str(out),
    }
    for key, value in changes.items():
        raw[key] = value
    return raw


def write_config(path: Path, raw: dict) -> Path:
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture(scope="module")
def tiny_run(grid, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "grid_tiny"
    raw = grid_config(grid, out, pretrain={"heuristic": "max_pressure", "episodes": 1, "epochs": 2})
    train(validate_config(raw), quiet=True)
    return out


def test_tiny_run_writes_checkpoint_model_and_metadata(tiny_run):
    out = tiny_run
    ckpt = latest_checkpoint(out)
    assert ckpt is not None and (ckpt / "model.zip").is_file() and (ckpt / "rng.pkl").is_file()
    state = load_state(ckpt)
    assert state["num_timesteps"] >= 192
    assert len(state["worker_episodes"]) == 2 and min(state["worker_episodes"]) >= 2  # episodes rolled over
    for name in ("model", "best_model"):
        assert (out / f"{name}.zip").is_file()
        meta = json.loads((out / f"{name}.meta.json").read_text())
        for key in ("fingerprint", "signals", "observation_shape", "n_actions", "algorithm", "env_options",
                    "config", "code_version", "eval_kpis"):
            assert key in meta, key
        assert meta["mode"] == "shared" and len(meta["signals"]) == 4
        assert meta["eval_kpis"]["mean_delay_s"] > 0
    assert 0.0 <= state["pretrained"]["accuracy"] <= 1.0 and state["pretrained"]["samples"] == 2 * 4 * 12
    history = json.loads((out / "history.json").read_text())
    steps = [e["step"] for e in history["eval"]]
    assert steps[0] == 0 and steps == sorted(steps)  # the imitation policy is evaluated first
    assert history["train"], "training episodes' KPIs are recorded"
    assert (out / "learning_curve.png").stat().st_size > 1000
    assert list((out / "tb").glob("events.out.tfevents.*"))


def test_best_model_kpis_are_what_simulate_gives(tiny_run, grid):
    """The run's evaluation goes through the same loader and loop as `cqsignal simulate`."""
    from engine.controllers.loading import load_controller
    from engine.loop import LoopOptions
    from engine.runner import run_controller
    from engine.scenario import Scenario

    net, routes = grid
    meta = json.loads((tiny_run / "best_model.meta.json").read_text())
    scenario = Scenario.load(str(net), routes=[str(routes)], seed=150001, duration=60)
    scenario = scenario.with_options(emissions=False)
    controller = load_controller(str(tiny_run / "best_model.zip"), scenario, say=lambda _: None)
    assert controller.adaptive and controller.name == "grid_tiny"
    kpis = run_controller(scenario, controller, LoopOptions())
    assert kpis.mean_delay_s == pytest.approx(meta["eval_kpis"]["mean_delay_s"])


def test_model_from_another_network_is_refused(tiny_run):
    from engine.controllers.loading import load_controller
    from engine.scenario import Scenario

    scenario = Scenario.load("chongqing", period="am_peak", duration=60)
    with pytest.raises(ConfigError, match="trained on another network"):
        load_controller(str(tiny_run / "model.zip"), scenario)
    cli = subprocess.run([sys.executable, "-m", "engine.cli", "simulate", "--controller",
                          str(tiny_run / "model.zip"), "--duration", "60"], capture_output=True, text=True)
    assert cli.returncode == 2
    assert cli.stderr.count("\n") == 1 and "trained on another network" in cli.stderr


@pytest.mark.slow
def test_killed_run_resumes_from_its_last_checkpoint(grid, tmp_path):
    out = tmp_path / "killed"
    raw = grid_config(grid, out, total_timesteps=100_000)  # would run for minutes
    raw["eval"]["every"] = 1_000_000
    cfg = write_config(tmp_path / "cfg.yaml", raw)
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "train", str(cfg), "--quiet"],
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    try:
        while time.time() < deadline and proc.poll() is None:
            ckpt = latest_checkpoint(out) if (out / "checkpoints" / "latest.json").is_file() else None
            if ckpt is not None and load_state(ckpt)["num_timesteps"] >= 128:
                break
            time.sleep(0.2)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the trainer and its env workers, at once
        proc.wait()
    killed_at = load_state(latest_checkpoint(out))
    assert killed_at["num_timesteps"] >= 128, proc.stderr.read().decode()[-2000:]

    with pytest.raises(ConfigError, match="holds a run already"):
        Run(validate_config(raw))
    target = killed_at["num_timesteps"] + 128
    raw["total_timesteps"] = target
    run = Run(load_config(write_config(tmp_path / "cfg.yaml", raw)), resume=True, quiet=True)
    run.train()
    state = load_state(latest_checkpoint(out))
    assert state["num_timesteps"] >= target
    assert run.model.num_timesteps == state["num_timesteps"]
    # the workers continued their episode sequence instead of replaying the first demand seeds
    assert all(now > then for now, then in zip(state["worker_episodes"], killed_at["worker_episodes"]))
    kept = [e for e in state["history"]["train"] if e["step"] <= killed_at["num_timesteps"]]
    assert kept == killed_at["history"]["train"]
    meta = json.loads((out / "model.meta.json").read_text())
    assert meta["num_timesteps"] == state["num_timesteps"]


def test_resume_without_checkpoint_is_a_clear_error(grid, tmp_path):
    with pytest.raises(ConfigError, match="no checkpoint to resume from"):
        Run(validate_config(grid_config(grid, tmp_path / "none")), resume=True)


@pytest.mark.parametrize("change, key", [
    ({"total_timestep": 10}, "total_timestep"),
    ({"algorithm": {"name": "MaskablePPO", "hyperparameters": {"n_step": 8}}}, "hyperparameters.n_step"),
    ({"env": {"duraton": 60}}, "env.duraton"),
    ({"env": {"delta": "five"}}, "env.delta"),
    ({"n_envs": 0}, "n_envs"),
    ({"algorithm": {"name": "SAC"}}, "algorithm.name"),
    ({"eval": {"seeds": [5]}}, "eval.seeds"),
    # hyperparameter values SB3 would only trip over after the first evaluations
    ({"algorithm": {"name": "MaskablePPO", "hyperparameters": {"batch_size": -5}}}, "hyperparameters.batch_size"),
    ({"algorithm": {"name": "MaskablePPO", "hyperparameters": {"n_steps": 0}}}, "hyperparameters.n_steps"),
    ({"algorithm": {"name": "MaskablePPO", "hyperparameters": {"n_epochs": 0}}}, "hyperparameters.n_epochs"),
    ({"algorithm": {"name": "PPO", "hyperparameters": {"gamma": 1.5}}}, "hyperparameters.gamma"),
    ({"algorithm": {"name": "PPO", "hyperparameters": {"n_steps": 2.5}}}, "hyperparameters.n_steps"),
    ({"algorithm": {"name": "PPO", "hyperparameters": {"learning_rate": "linear:abc"}}},
     "hyperparameters.learning_rate"),
    ({"algorithm": {"name": "PPO", "hyperparameters": {"clip_range": -0.1}}}, "hyperparameters.clip_range"),
])
def test_config_error_names_the_key(grid, tmp_path, change, key):
    raw = grid_config(grid, tmp_path / "x", **change)
    with pytest.raises(ConfigError) as err:
        validate_config(raw, source="cfg.yaml")
    assert key in str(err.value) and "\n" not in str(err.value)


def test_cli_reports_a_typo_in_one_line(grid, tmp_path):
    raw = grid_config(grid, tmp_path / "x")
    raw["checkpoint"] = {"evry": 5}
    cfg = write_config(tmp_path / "typo.yaml", raw)
    cli = subprocess.run([sys.executable, "-m", "engine.cli", "train", str(cfg)], capture_output=True, text=True)
    assert cli.returncode == 2
    assert cli.stderr.strip().splitlines() == [f"cqsignal: error: {cfg}: unknown key 'checkpoint.evry'"]


def test_set_overrides_nested_keys(grid, tmp_path):
    cfg = write_config(tmp_path / "c.yaml", grid_config(grid, tmp_path / "x"))
    config = load_config(cfg, ["algorithm.hyperparameters.n_steps=16", "env.duration=120", "seed=9"])
    assert config.algorithm.hyperparameters["n_steps"] == 16
    assert config.env_options().duration == 120 and config.seed == 9
    with pytest.raises(ConfigError, match="total_timesteps"):
        load_config(cfg, ["total_timesteps=-1"])


def test_shipped_configs_are_valid():
    root = Path(__file__).resolve().parents[1] / "configs"
    for name in ("train_corridor.yaml", "train_multiagent.yaml", "train_grid.yaml"):
        config = load_config(root / name)
        assert config.env_options().network == ("grid4" if "grid" in name else "chongqing")
