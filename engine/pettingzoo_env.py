"""PettingZoo ParallelEnv: one agent per signalised intersection, same core as the Gymnasium env.

Observations are padded to a common width (largest lane and phase count), so a
single shared policy can serve every intersection. Each agent's
``infos[agent]["action_mask"]`` lists its allowed actions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from engine.env_core import ActionError, EnvCore, ResetNeeded, env_options


class SignalParallelEnv(ParallelEnv):
    metadata = {"name": "cqsignal_parallel_v0", "render_modes": []}

    def __init__(self, **options: Any) -> None:
        self.core = EnvCore(env_options(**options))
        self.possible_agents = list(self.core.ids)
        self.agents: list[str] = []
        self._obs_space = spaces.Box(self.core.observer.low.astype(np.float32),
                                     self.core.observer.high.astype(np.float32), dtype=np.float32)
        # one space object per agent, made once (PettingZoo expects the same object on every call;
        # an lru_cache on the methods would keep every env alive)
        self._action_spaces = {a: spaces.Discrete(int(n)) for a, n in zip(self.possible_agents, self.core.n_actions)}
        self._rng = np.random.default_rng()

    def observation_space(self, agent: str) -> spaces.Box:
        self._agent(agent)
        return self._obs_space

    def action_space(self, agent: str) -> spaces.Discrete:
        return self._action_spaces[self._agent(agent)]

    def _agent(self, agent: str) -> str:
        if agent not in self._action_spaces:
            raise ActionError(f"unknown agent {agent!r} (agents: {', '.join(self.possible_agents)})")
        return agent

    def reset(self, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        episode_seed = seed if seed is not None else int(self._rng.integers(0, 2**31 - 1))
        periods = self.core.periods
        period = (options or {}).get("period") or periods[int(self._rng.integers(len(periods)))]
        rows = self.core.reset(episode_seed, period)
        self.agents = list(self.possible_agents)
        return self._split(rows), self._infos({"seed": episode_seed, "period": period,
                                               **self.core.base.sumo_options()})

    def step(self, actions: dict[str, int]):
        self.core._check_open("step()")
        if not self.agents:
            raise ResetNeeded("step() called before reset() or on a finished episode: call reset() first")
        if not isinstance(actions, Mapping):
            raise ActionError(f"actions must be a dict of agent -> action, got {type(actions).__name__}")
        missing = [a for a in self.possible_agents if a not in actions]
        if missing:
            raise ActionError(f"no action for agent {missing[0]!r} (every agent acts each step: "
                              f"{', '.join(self.possible_agents)})")
        unknown = [a for a in actions if a not in self.possible_agents]
        if unknown:
            raise ActionError(f"unknown agent {unknown[0]!r} (agents: {', '.join(self.possible_agents)})")
        ordered = [actions[a] for a in self.possible_agents]
        rows, rewards, done, info = self.core.step(ordered)
        obs = self._split(rows)
        rew = {a: float(r) for a, r in zip(self.possible_agents, rewards)}
        terminations = {a: False for a in self.possible_agents}
        truncations = {a: done for a in self.possible_agents}
        infos = self._infos(info)
        if done:
            self.agents = []
        return obs, rew, terminations, truncations, infos

    def _split(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        return {a: rows[k] for k, a in enumerate(self.possible_agents)}

    def _infos(self, shared: dict) -> dict[str, dict]:
        """Each agent's info: the shared entries, its own reward terms and its action mask."""
        masks = self.core.masks() if self.core.in_episode else None
        terms = shared.get("reward_terms")
        out = {}
        for k, a in enumerate(self.possible_agents):
            info = dict(shared)
            if terms is not None:
                info["reward_terms"] = {name: float(v[k]) for name, v in terms.items()}
            if masks is not None:
                info["action_mask"] = masks[k].astype(np.int8)
            out[a] = info
        return out

    def close(self) -> None:
        self.core.close()


def parallel_env(**options: Any) -> SignalParallelEnv:
    """The multi-agent environment (see :class:`engine.env_core.EnvOptions` for options)."""
    return SignalParallelEnv(**options)
