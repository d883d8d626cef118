"""Controllers: ``decide(state) -> targets`` (a green phase per signal).

A controller is ``adaptive`` when it decides every few seconds through the
:class:`~engine.signal_controller.SignalController`; a fixed-time controller
(``adaptive = False``) instead hands SUMO complete programs to run, which the
plan validator checks before they are loaded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

import numpy as np

from engine.errors import ConfigError
from engine.loop import TrafficState
from engine.scenario import Scenario


@runtime_checkable
class Controller(Protocol):
    name: str
    adaptive: bool

    def decide(self, state: TrafficState) -> np.ndarray:
        """Target green phase per signal (-1: no wish)."""
        ...


class FixedTime:
    """The network's own programs, run by SUMO as written."""

    name = "fixed"
    adaptive = False

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario

    def decide(self, state: TrafficState) -> np.ndarray:
        return np.full(len(state.phase), -1, dtype=np.int64)


Factory = Callable[[Scenario], Controller]
CONTROLLERS: dict[str, Factory] = {"fixed": FixedTime}


def register(name: str, factory: Factory) -> None:
    CONTROLLERS[name] = factory


def make_controller(name: str, scenario: Scenario) -> Controller:
    """Build a heuristic controller by name."""
    if name not in heuristic_names():
        raise ConfigError(f"unknown controller '{name}' (choose from {', '.join(sorted(CONTROLLERS))})")
    return CONTROLLERS[name](scenario)


def heuristic_names() -> list[str]:
    """The registered heuristic controllers' names, sorted."""
    _load_builtin()
    return sorted(CONTROLLERS)


def _load_builtin() -> None:
    """Import the modules that register the heuristics (kept lazy: Numba compiles on import)."""
    try:
        import engine.controllers.heuristics  # noqa: F401
    except ModuleNotFoundError as exc:
        if exc.name != "engine.controllers.heuristics":
            raise
