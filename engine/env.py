"""``cqsignal/Corridor-v0``: one Gymnasium agent controls every signal of a scenario.

Observation: the per-intersection rows of the selected features, flattened.
Action: MultiDiscrete, one entry per signal (a green phase, or stay/advance).
``action_masks()`` gives the allowed actions in sb3-contrib's flat layout.
Episodes last the scenario's duration and end with ``truncated=True`` (a time
limit, not a terminal state); the last ``info`` carries the run's KPIs. The reset
``info`` states SUMO's options the episode runs under: ``max_depart_delay_s`` (300 s
by default in the environments, which drop a vehicle that waited that long to enter
so that training stays fast; None: never) and ``time_to_teleport_s``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from engine.env_core import EnvCore, env_options


class CorridorEnv(gym.Env):
    metadata = {"render_modes": ["human"]}

    def __init__(self, render_mode: str | None = None, **options: Any) -> None:
        if render_mode not in (None, "human"):
            from engine.errors import ConfigError

            raise ConfigError(f"render_mode '{render_mode}': only 'human' (sumo-gui) is supported")
        if render_mode == "human":
            options["gui"] = True
        self.render_mode = render_mode
        self.core = EnvCore(env_options(**options))
        n, width = len(self.core.ids), self.core.observer.width
        self.observation_space = spaces.Box(
            low=np.tile(self.core.observer.low, n).astype(np.float32),
            high=np.tile(self.core.observer.high, n).astype(np.float32),
            shape=(n * width,), dtype=np.float32,
        )
        self.action_space = spaces.MultiDiscrete(self.core.n_actions.astype(np.int64))

    @property
    def signal_ids(self) -> tuple[str, ...]:
        return self.core.ids

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        options = options or {}
        episode_seed = seed if seed is not None else int(self.np_random.integers(0, 2**31 - 1))
        periods = self.core.periods
        period = options.get("period") or periods[int(self.np_random.integers(len(periods)))]
        obs = self.core.reset(episode_seed, period)
        # the bound on waiting to enter (and teleports) this episode's KPIs are measured under
        return obs.reshape(-1), {"seed": episode_seed, "period": period, **self.core.base.sumo_options()}

    def step(self, action):
        obs, rewards, done, info = self.core.step(action)
        return obs.reshape(-1), float(rewards.sum()), False, done, info

    def action_masks(self) -> np.ndarray:
        """Flat boolean mask over every signal's actions (MaskablePPO's MultiDiscrete layout)."""
        return np.concatenate(self.core.masks())

    def close(self) -> None:
        self.core.close()
