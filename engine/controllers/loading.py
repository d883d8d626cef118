"""``load_controller``: a learned policy when a fitting model is given, else a heuristic."""

from __future__ import annotations

from pathlib import Path

from engine.controllers import Controller, make_controller
from engine.scenario import Scenario

DEFAULT_HEURISTIC = "max_pressure"


def load_controller(spec: str | Path | None, scenario: Scenario, fallback: bool = False) -> Controller:
    """Controller named ``spec`` (a heuristic name or a model path); None: the default heuristic."""
    if spec is None:
        return make_controller(DEFAULT_HEURISTIC, scenario)
    return make_controller(str(spec), scenario)
