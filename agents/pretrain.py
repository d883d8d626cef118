"""Pretraining by imitation: start RL from a heuristic's behaviour instead of from random.

A random signal policy gridlocks the corridor, and RL from there needs far more
simulated hours than one session on two cores gives. So the training env's
workers first let a heuristic (max pressure by default) drive for a few
episodes; the policy learns to choose what it chose (cross-entropy over the
allowed actions) and the value head learns the discounted return of those
episodes, so that RL then starts near the heuristic, with sensible advantages,
and improves on it with the reward. A config turns this on with ``pretrain:``.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from agents.train import Run


def collect(venv, heuristic: str, steps: int) -> dict[str, np.ndarray]:
    """``steps`` lockstep steps of the heuristic: observations, masks, actions, rewards, dones."""
    obs = venv.reset()
    out = {"obs": [], "masks": [], "actions": [], "rewards": [], "dones": []}
    for _ in range(steps):
        masks = venv.action_masks()
        actions, (next_obs, rewards, dones, _infos) = venv.step_teacher(heuristic)
        out["obs"].append(obs)
        out["masks"].append(masks)
        out["actions"].append(actions)
        out["rewards"].append(rewards)
        out["dones"].append(dones)
        obs = next_obs
    return {k: np.stack(v) for k, v in out.items()}  # (steps, num_envs, ...)


def discounted_returns(rewards: np.ndarray, dones: np.ndarray, gamma: float) -> np.ndarray:
    """Return from each step to its episode's end (or the data's end), per sub-env."""
    out = np.zeros_like(rewards, dtype=np.float64)
    acc = np.zeros(rewards.shape[1])
    for t in range(rewards.shape[0] - 1, -1, -1):
        acc = rewards[t] + gamma * acc * (1.0 - dones[t])
        out[t] = acc
    return out


def behaviour_clone(model, data: dict[str, np.ndarray], epochs: int, batch_size: int, lr: float,
                    seed: int, masked: bool, shared: bool) -> dict[str, float]:
    """Fit the policy to the heuristic's actions and the value head to the returns."""
    import torch as th

    gamma = float(getattr(model, "gamma", 0.99))
    returns = discounted_returns(data["rewards"], data["dones"], gamma)
    obs = th.as_tensor(data["obs"].reshape(-1, *data["obs"].shape[2:]), dtype=th.float32)
    masks = data["masks"].reshape(-1, data["masks"].shape[-1])
    actions_np = data["actions"].reshape(obs.shape[0], -1)
    actions = th.as_tensor(actions_np.squeeze(-1) if actions_np.shape[1] == 1 else actions_np)
    target = th.as_tensor(returns.reshape(-1), dtype=th.float32)
    mask_t = th.as_tensor(masks)
    policy = model.policy
    optimiser = th.optim.Adam(policy.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    n = obs.shape[0]
    policy.set_training_mode(True)
    for _ in range(epochs):
        for idx in np.array_split(rng.permutation(n), max(1, math.ceil(n / batch_size))):
            kwargs = {"action_masks": mask_t[idx]} if masked else {}
            values, log_prob, _ = policy.evaluate_actions(obs[idx], actions[idx], **kwargs)
            loss = -log_prob.mean() + 0.5 * ((values.flatten() - target[idx]) ** 2).mean()
            optimiser.zero_grad()
            loss.backward()
            th.nn.utils.clip_grad_norm_(policy.parameters(), 0.5)
            optimiser.step()
    policy.set_training_mode(False)
    with th.no_grad():  # how often the policy's most likely action is the heuristic's, where it had a choice
        kwargs = {"action_masks": masks} if masked else {}
        chosen, _ = policy.predict(obs.numpy(), deterministic=True, **kwargs)
        values = policy.predict_values(obs).flatten()
    chosen = np.asarray(chosen).reshape(actions_np.shape)
    free = masks.sum(axis=1) > 1 if shared else np.ones(n, dtype=bool)
    agree = np.all(chosen == actions_np, axis=1)
    return {"samples": int(n), "accuracy": float(agree[free].mean()) if free.any() else math.nan,
            "value_r2": float(1.0 - ((values - target) ** 2).mean() / max(float(target.var()), 1e-12))}


def _scenario_duration(opts) -> float:
    from engine.scenario import Scenario

    return Scenario.load(opts.network, period=opts.periods()[0], routes=opts.routes,
                         begin=opts.begin).duration


def pretrain(run: Run) -> dict[str, float]:
    """Collect the heuristic's episodes in the run's workers and clone them into the model."""
    cfg = run.config.pretrain
    opts = run.options
    t0 = time.perf_counter()
    duration = opts.duration or _scenario_duration(opts)  # None: the scenario's own
    steps = cfg.episodes * math.ceil(duration / opts.delta)
    data = collect(run.venv, cfg.heuristic, steps)
    stats = behaviour_clone(run.model, data, cfg.epochs, cfg.batch_size, cfg.learning_rate,
                            run.config.seed, masked=run.config.algorithm.name == "MaskablePPO",
                            shared=run.shared)
    stats["wall_s"] = time.perf_counter() - t0
    stats["heuristic"] = cfg.heuristic
    return stats
