"""Reinforcement learning on top of the engine: SB3 training from configs, checkpoints,
evaluation, and a trained model as a controller (:class:`agents.policy.PolicyController`).

Kept light on import: torch and stable-baselines3 load only where a module needs them.
"""

TRAIN_SEED_LIMIT = 100_000  # training episodes draw demand seeds below this; evaluation uses seeds above
