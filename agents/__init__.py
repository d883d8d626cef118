"""Reinforcement learning on top of the engine: SB3 training from configs, checkpoints,
evaluation, and a trained model as a controller (:class:`agents.policy.PolicyController`).

Kept light on import: torch and stable-baselines3 load only where a module needs them.
"""

# Three disjoint sets of demand seeds, so no reported number is measured on data it was fit to:
TRAIN_SEED_LIMIT = 100_000  # training episodes draw seeds below this
TEST_SEED_START = TRAIN_SEED_LIMIT + 1  # `cqsignal evaluate` starts here by default
VALIDATION_SEED_START = 150_001  # a run's own evaluations (which pick the best model) by default
