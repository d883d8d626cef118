"""Rewards: small named functions a config selects, alone or as a weighted sum.

Each returns one value per intersection (the multi-agent env hands them out as
they are; the single-agent env sums them). All are "less is better" quantities
negated, measured on each intersection's incoming lanes.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from engine.errors import ConfigError
from engine.loop import TrafficState

DELAY_SCALE = 100.0  # delay reward in hundreds of vehicle-seconds, for stable learning


def delay_rate(state: TrafficState) -> np.ndarray:
    """Vehicle-seconds of delay accruing per second on each intersection's approaches."""
    lost = state.lane_count * np.clip(1.0 - state.lane_speed / state.lane_max_speed, 0.0, 1.0)
    return state.layout.per_intersection_sum(lost)


class Reward:
    """Stateful reward: ``reset(state)`` at episode start, ``__call__(state, dt)`` after each step."""

    names = ("delay", "queue", "pressure", "co2")

    def __init__(self, spec: str | Mapping[str, float]) -> None:
        weights = {spec: 1.0} if isinstance(spec, str) else dict(spec)
        if not weights:
            raise ConfigError("reward: give a name or a mapping of names to weights")
        for name, w in weights.items():
            if name not in self.names:
                raise ConfigError(f"reward: unknown reward '{name}' (choose from {', '.join(self.names)})")
            if not isinstance(w, (int, float)) or not np.isfinite(w):
                raise ConfigError(f"reward: weight of '{name}' must be a number, got {w!r}")
        self.weights = weights
        self.needs_co2 = "co2" in weights
        self._prev_rate: np.ndarray | None = None

    def reset(self, state: TrafficState) -> None:
        self._prev_rate = delay_rate(state)

    def __call__(self, state: TrafficState, dt: float, co2: np.ndarray | None = None) -> np.ndarray:
        """Reward per intersection for the last ``dt`` seconds."""
        total = np.zeros(len(state.phase))
        for name, w in self.weights.items():
            total += w * getattr(self, f"_{name}")(state, dt, co2)
        return total

    # Change in cumulative delay over the interval (trapezoid of the accrual rate).
    def _delay(self, state: TrafficState, dt: float, co2) -> np.ndarray:
        rate = delay_rate(state)
        accrued = 0.5 * (rate + self._prev_rate) * dt
        self._prev_rate = rate
        return -accrued / DELAY_SCALE

    def _queue(self, state: TrafficState, dt: float, co2) -> np.ndarray:
        return -state.layout.per_intersection_sum(state.lane_halting)

    def _pressure(self, state: TrafficState, dt: float, co2) -> np.ndarray:
        layout = state.layout
        per_move = state.lane_count[layout.mov_in] - state.lane_count[layout.mov_out]
        return -np.abs(np.bincount(layout.mov_intersection, per_move, minlength=len(state.phase)))

    def _co2(self, state: TrafficState, dt: float, co2: np.ndarray | None) -> np.ndarray:
        """CO2 in grams emitted on the approaches over the interval (rate at its end times dt)."""
        if co2 is None:
            return np.zeros(len(state.phase))
        return -state.layout.per_intersection_sum(co2) * dt / 1000.0
