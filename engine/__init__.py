"""cqsignal's engine: scenario, simulation, signal model, controllers, metrics, environments."""

__version__ = "0.1.0"
