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
    """``steps`` lockstep steps of the heuristic: observations, masks, actions, rewards, dones,
    and where an episode hit its time limit the observation it ended in (``terminal``, zeros
    elsewhere; ``truncated`` marks those steps)."""
    obs = venv.reset()
    out = {"obs": [], "masks": [], "actions": [], "rewards": [], "dones": [], "terminal": [], "truncated": []}
    for _ in range(steps):
        masks = venv.action_masks()
        actions, (next_obs, rewards, dones, infos) = venv.step_teacher(heuristic)
        terminal = np.zeros_like(obs)
        truncated = np.zeros(len(infos), dtype=bool)
        for k, info in enumerate(infos):
            if dones[k] and info.get("TimeLimit.truncated") and "terminal_observation" in info:
                terminal[k] = info["terminal_observation"]
                truncated[k] = True
        for key, value in (("obs", obs), ("masks", masks), ("actions", actions), ("rewards", rewards),
                           ("dones", dones), ("terminal", terminal), ("truncated", truncated)):
            out[key].append(value)
        obs = next_obs
    return {k: np.stack(v) for k, v in out.items()}  # (steps, num_envs, ...)


def bootstrapped_rewards(rewards: np.ndarray, truncated: np.ndarray, terminal_values: np.ndarray,
                         gamma: float) -> np.ndarray:
    """Rewards with ``gamma x V(terminal observation)`` added where an episode hit its time limit.

    A time limit is not a terminal state: PPO bootstraps there (SB3 adds the same term
    on ``TimeLimit.truncated``), so the imitation step's value targets must too, or the
    critic PPO starts from is biased near the end of every episode. Shapes (steps, envs).
    """
    return rewards + gamma * np.where(truncated, terminal_values, 0.0)


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
    truncated = data.get("truncated", np.zeros_like(data["dones"], dtype=bool))
    terminal_obs = th.as_tensor(data["terminal"][truncated], dtype=th.float32) if truncated.any() else None
    policy = model.policy

    def value_targets() -> th.Tensor:
        """Discounted returns, bootstrapped at time limits with the critic as it is now."""
        boot = np.zeros(data["rewards"].shape)
        if terminal_obs is not None:
            with th.no_grad():
                boot[truncated] = policy.predict_values(terminal_obs).flatten().numpy()
        rewards = bootstrapped_rewards(data["rewards"], truncated, boot, gamma)
        return th.as_tensor(discounted_returns(rewards, data["dones"], gamma).reshape(-1), dtype=th.float32)

    obs = th.as_tensor(data["obs"].reshape(-1, *data["obs"].shape[2:]), dtype=th.float32)
    masks = data["masks"].reshape(-1, data["masks"].shape[-1])
    actions_np = data["actions"].reshape(obs.shape[0], -1)
    actions = th.as_tensor(actions_np.squeeze(-1) if actions_np.shape[1] == 1 else actions_np)
    mask_t = th.as_tensor(masks)
    # A label the mask forbids has a masked log-likelihood without a minimum (its loss falls
    # forever as the allowed action's logit falls): such samples teach nothing but to avoid what
    # the mask forces, so they leave the policy term (the critic still learns from them).
    n = obs.shape[0]
    allowed = th.as_tensor(label_allowed(masks, actions_np, policy.action_space) if masked else np.ones(n, dtype=bool))
    optimiser = th.optim.Adam(policy.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    policy.set_training_mode(True)
    for _ in range(epochs):
        target = value_targets()
        for idx in np.array_split(rng.permutation(n), max(1, math.ceil(n / batch_size))):
            kwargs = {"action_masks": mask_t[idx]} if masked else {}
            values, log_prob, _ = policy.evaluate_actions(obs[idx], actions[idx], **kwargs)
            ok = allowed[idx]
            imitation = -log_prob[ok].mean() if bool(ok.any()) else log_prob.sum() * 0.0
            loss = imitation + 0.5 * ((values.flatten() - target[idx]) ** 2).mean()
            optimiser.zero_grad()
            loss.backward()
            th.nn.utils.clip_grad_norm_(policy.parameters(), 0.5)
            optimiser.step()
    policy.set_training_mode(False)
    target = value_targets()
    with th.no_grad():  # how often the policy's most likely action is the heuristic's, where it had a choice
        kwargs = {"action_masks": masks} if masked else {}
        chosen, _ = policy.predict(obs.numpy(), deterministic=True, **kwargs)
        values = policy.predict_values(obs).flatten()
    chosen = np.asarray(chosen).reshape(actions_np.shape)
    free = masks.sum(axis=1) > 1 if shared else np.ones(n, dtype=bool)
    agree = np.all(chosen == actions_np, axis=1)
    return {"samples": int(n), "accuracy": float(agree[free].mean()) if free.any() else math.nan,
            "off_mask": int((~allowed).sum()),
            "value_r2": float(1.0 - ((values - target) ** 2).mean() / max(float(target.var()), 1e-12))}


def label_allowed(masks: np.ndarray, actions: np.ndarray, action_space) -> np.ndarray:
    """Per sample: whether its mask allows its action(s). ``masks`` (n, width): one Discrete action
    per row (shared policy), or every signal's mask side by side in ``MultiDiscrete`` order."""
    actions = actions.reshape(len(masks), -1)
    nvec = getattr(action_space, "nvec", None)
    offsets = np.concatenate([[0], np.cumsum(nvec)[:-1]]) if nvec is not None else np.zeros(1, dtype=np.int64)
    return np.take_along_axis(masks, actions + offsets[None, : actions.shape[1]], axis=1).all(axis=1)


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


def actor_parameters(policy) -> list:
    """The parameters of the policy's action head and its own hidden layers (not the critic's).

    SB3's actor-critic MLP policies keep separate ``policy_net`` and ``value_net`` layers
    under ``mlp_extractor`` (no shared layers unless ``net_arch`` asks for them, which a
    critic warm-up refuses: training the critic would move the actor).
    """
    extractor = policy.mlp_extractor
    if getattr(extractor, "shared_net", None) is not None and any(True for _ in extractor.shared_net.parameters()):
        from engine.errors import ConfigError

        raise ConfigError("critic_warmup: the policy shares layers between actor and critic; "
                          "use separate ones (net_arch: {pi: [...], vf: [...]} or a list)")
    return [*extractor.policy_net.parameters(), *policy.action_net.parameters()]


def warm_up_critic(model, timesteps: int, callback=None) -> None:
    """Train only the critic for ``timesteps`` (actor frozen, the learning rate held at its start).

    After imitation the critic is weak and biased, and PPO's first updates would move
    the actor on its advantages; fitting it first to the imitated policy's own returns
    gives RL a sound baseline (the critic warm-up of issue 16, measured there). Rollouts
    come from the frozen actor, so they are on-policy for the critic.
    """
    params = actor_parameters(model.policy)
    saved = [p.requires_grad for p in params]
    schedule = model.lr_schedule
    start = float(schedule(1.0))
    for p in params:
        p.requires_grad_(False)
    model.lr_schedule = lambda _progress: start
    try:
        model.learn(timesteps, callback=callback, reset_num_timesteps=False, progress_bar=False)
    finally:
        model.lr_schedule = schedule
        for p, flag in zip(params, saved):
            p.requires_grad_(flag)
