"""cqsignal's engine: scenario, simulation, signal model, controllers, metrics, environments.

``import engine`` registers the Gymnasium id ``cqsignal/Corridor-v0``;
``engine.parallel_env(...)`` builds the PettingZoo environment.
"""

from __future__ import annotations

import gymnasium

__version__ = "0.1.0"

ENV_ID = "cqsignal/Corridor-v0"

if ENV_ID not in gymnasium.registry:
    gymnasium.register(id=ENV_ID, entry_point="engine.env:CorridorEnv")


def parallel_env(**options):
    """PettingZoo ParallelEnv, one agent per signal (options as for the Gymnasium env)."""
    from engine.pettingzoo_env import parallel_env as make

    return make(**options)
