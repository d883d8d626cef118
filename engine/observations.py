"""Observation features: small named functions a config selects by name.

Each feature maps the traffic state to an array of shape (intersections, width)
with known bounds; an intersection's observation is its row of every selected
feature side by side. Rows are padded to the largest intersection (lanes,
phases), so one policy can serve every intersection of a network.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from engine.errors import ConfigError
from engine.layout import VEHICLE_SPACE_M, Layout
from engine.loop import TrafficState


@dataclass(frozen=True, eq=False)
class ObsIndex:
    """Index arrays fixed per network, computed once."""

    in_pad: np.ndarray  # (n_int, max_in_lanes) lane index, n_lanes where padded
    mov_by_int: np.ndarray  # (n_int, n_mov) one-hot: movement belongs to intersection
    mov_phase: np.ndarray  # (n_mov, max_phases) float
    moves_per_phase: np.ndarray  # (n_int, max_phases) count, >= 1
    max_in: int
    max_phases: int

    @classmethod
    def of(cls, layout: Layout) -> ObsIndex:
        n_int, n_lanes = len(layout.intersections), len(layout.lanes)
        blocks = [layout.in_lanes_of(k) for k in range(n_int)]
        max_in = max(len(b) for b in blocks)
        in_pad = np.full((n_int, max_in), n_lanes, dtype=np.int64)
        for k, b in enumerate(blocks):
            in_pad[k, : len(b)] = b
        mov_by_int = np.zeros((n_int, len(layout.mov_in)))
        mov_by_int[layout.mov_intersection, np.arange(len(layout.mov_in))] = 1.0
        mov_phase = layout.mov_phases.astype(float)
        return cls(in_pad, mov_by_int, mov_phase, np.maximum(mov_by_int @ mov_phase, 1.0),
                   max_in, layout.max_phases)


def _per_lane(values: np.ndarray, idx: ObsIndex) -> np.ndarray:
    return np.append(values, 0.0)[idx.in_pad]


def capacity(state: TrafficState) -> np.ndarray:
    """Vehicles that fit on each lane, bumper to bumper."""
    return np.maximum(state.lane_length / VEHICLE_SPACE_M, 1.0)


def queue(state: TrafficState, idx: ObsIndex) -> np.ndarray:
    """Halting vehicles per incoming lane over lane capacity."""
    return np.clip(_per_lane(state.lane_halting / capacity(state), idx), 0.0, 1.0)


def density(state: TrafficState, idx: ObsIndex) -> np.ndarray:
    """Vehicles per incoming lane over lane capacity."""
    return np.clip(_per_lane(state.lane_count / capacity(state), idx), 0.0, 1.0)


def phase(state: TrafficState, idx: ObsIndex) -> np.ndarray:
    """One-hot of the current green (the target green while clearing)."""
    out = np.zeros((len(state.phase), idx.max_phases))
    out[np.arange(len(state.phase)), state.phase] = 1.0
    return out


def make_time_in_phase(max_green: float) -> Callable[[TrafficState, ObsIndex], np.ndarray]:
    def time_in_phase(state: TrafficState, idx: ObsIndex) -> np.ndarray:
        """Seconds in the current green over max green."""
        return np.clip(state.time_in_phase / max_green, 0.0, 1.0)[:, None]

    return time_in_phase


def min_green_passed(state: TrafficState, idx: ObsIndex) -> np.ndarray:
    """1 where the controller may switch now."""
    return state.can_switch.astype(float)[:, None]


def pressure(state: TrafficState, idx: ObsIndex) -> np.ndarray:
    """Per green phase: mean over its movements of in-density minus out-density, in [-1, 1]."""
    d = np.clip(state.lane_count / capacity(state), 0.0, 1.0)
    layout = state.layout
    per_move = d[layout.mov_in] - d[layout.mov_out]
    return (idx.mov_by_int @ (per_move[:, None] * idx.mov_phase)) / idx.moves_per_phase


PHASE_VEHICLES_KNEE = 10.0  # vehicles: below this a phase count reads almost linearly
PHASE_VEHICLES_RANGE = 400.0  # vehicles that read as 1.0 (a corridor approach backed up 150 m on 6 lanes is ~150)


def vehicles_scale(x: np.ndarray) -> np.ndarray:
    """Vehicle counts (or signed scores) onto [-1, 1]: sign(x) log(1 + |x| / 10) / log(1 + 400 / 10).

    Monotone, so the order of phases (max pressure's argmax) survives at any queue length; a
    plain x / 40 clipped at 1 made every heavy phase read the same on the corridor's peaks
    (imitation of max pressure then fell to 78 % agreement).
    """
    return np.clip(np.sign(x) * np.log1p(np.abs(x) / PHASE_VEHICLES_KNEE)
                   / np.log1p(PHASE_VEHICLES_RANGE / PHASE_VEHICLES_KNEE), -1.0, 1.0)


def phase_vehicles(state: TrafficState, idx: ObsIndex) -> np.ndarray:
    """Per green phase: vehicles on the incoming lanes of its movements (shared lanes split
    between their movements), by :func:`vehicles_scale`, in [0, 1]. Phase-aligned: slot p is phase p at every
    signal."""
    layout = state.layout
    per_move = state.lane_count[layout.mov_in] * _share(layout)
    return vehicles_scale(idx.mov_by_int @ (per_move[:, None] * idx.mov_phase))


def phase_queue(state: TrafficState, idx: ObsIndex) -> np.ndarray:
    """Per green phase: halting vehicles on the incoming lanes of its movements (shared lanes
    split between their movements), by :func:`vehicles_scale`, in [0, 1]."""
    layout = state.layout
    per_move = state.lane_halting[layout.mov_in] * _share(layout)
    return vehicles_scale(idx.mov_by_int @ (per_move[:, None] * idx.mov_phase))


GREEN_FLOW_SCALE = 10.0  # moving vehicles per green lane that read as 1.0


def green_flow(state: TrafficState, idx: ObsIndex) -> np.ndarray:
    """Per signal: moving vehicles per lane of the current green's movements (lanes weighted by
    the share of their movements the phase serves), over 10, in [0, 1]: whether the green still
    discharges, max pressure's rule for holding it."""
    layout = state.layout
    share = _share(layout)
    moving = (state.lane_count - state.lane_halting)[layout.mov_in] * share
    on_green = layout.mov_phases[np.arange(len(layout.mov_in)), np.asarray(state.phase)[layout.mov_intersection]]
    n = len(state.phase)
    flowing = np.bincount(layout.mov_intersection, moving * on_green, minlength=n)
    lanes = np.bincount(layout.mov_intersection, share * on_green, minlength=n)
    per_lane = np.divide(flowing, lanes, out=np.zeros(n), where=lanes > 0)
    return np.clip(per_lane / GREEN_FLOW_SCALE, 0.0, 1.0)[:, None]


def phase_pressure(state: TrafficState, idx: ObsIndex) -> np.ndarray:
    """Per green phase: max pressure's own score, sum over its movements of saturation flow
    [veh/h/lane, relative to 1,800] x (vehicles on the incoming lane x its share - halting
    vehicles on the outgoing lane), by :func:`vehicles_scale`, in [-1, 1] (Varaiya 2013, as in
    :func:`engine.controllers.kernels.max_pressure_kernel`)."""
    from engine.controllers import kernels

    layout = state.layout
    inc = kernels.incidence(layout)
    per_move = (inc.mov_sat * 3600.0 / 1800.0) * (state.lane_count[layout.mov_in] * inc.mov_share
                                                  - state.lane_halting[layout.mov_out])
    return vehicles_scale(idx.mov_by_int @ (per_move[:, None] * idx.mov_phase))


def _share(layout: Layout) -> np.ndarray:
    from engine.controllers import kernels

    return kernels.incidence(layout).mov_share


def make_phase_wait(max_red_s: float) -> Callable[[TrafficState, ObsIndex], np.ndarray]:
    """A ``phase_wait`` feature with its own memory of when each phase was last green."""
    from engine.controllers import kernels
    from engine.controllers.heuristics import LastServed

    served = LastServed()

    def phase_wait(state: TrafficState, idx: ObsIndex) -> np.ndarray:
        """Per green phase: seconds since it was last green over the starvation guard's
        ``max_red_s`` (180 s), in [0, 1]; what max pressure's guard decides on."""
        waited = served.update(state, kernels.incidence(state.layout))
        out = np.zeros((len(state.phase), idx.max_phases))
        out[:, : waited.shape[1]] = np.clip(waited / max_red_s, 0.0, 1.0)
        return out

    return phase_wait


@dataclass(frozen=True)
class Feature:
    width: Callable[[ObsIndex], int]
    low: float
    high: float


FEATURES: dict[str, Feature] = {
    "queue": Feature(lambda i: i.max_in, 0.0, 1.0),
    "density": Feature(lambda i: i.max_in, 0.0, 1.0),
    "phase": Feature(lambda i: i.max_phases, 0.0, 1.0),
    "time_in_phase": Feature(lambda i: 1, 0.0, 1.0),
    "min_green_passed": Feature(lambda i: 1, 0.0, 1.0),
    "pressure": Feature(lambda i: i.max_phases, -1.0, 1.0),
    "phase_vehicles": Feature(lambda i: i.max_phases, 0.0, 1.0),
    "phase_queue": Feature(lambda i: i.max_phases, 0.0, 1.0),
    "phase_pressure": Feature(lambda i: i.max_phases, -1.0, 1.0),
    "phase_wait": Feature(lambda i: i.max_phases, 0.0, 1.0),
    "green_flow": Feature(lambda i: 1, 0.0, 1.0),
}
# Phase-aligned: every slot means the same phase-level quantity at every signal, and max
# pressure's inputs (its per-phase score, how long each phase has waited) are in it.
PHASE_OBSERVATION = ("phase", "time_in_phase", "min_green_passed", "green_flow", "phase_vehicles",
                     "phase_queue", "phase_pressure", "phase_wait")
DEFAULT_OBSERVATION = ("queue", "density", "phase", "time_in_phase", "min_green_passed", "pressure")


def check_features(names: tuple[str, ...] | list[str]) -> None:
    """ConfigError naming the first unknown observation feature (or an empty selection)."""
    unknown = [n for n in names if n not in FEATURES]
    if unknown or not names:
        raise ConfigError(
            f"observation: unknown feature '{unknown[0] if unknown else ''}' "
            f"(choose from {', '.join(FEATURES)})"
        )


class Observer:
    """Computes the selected features for every intersection at once."""

    def __init__(self, names: tuple[str, ...] | list[str], layout: Layout, max_green: float,
                 max_red_s: float = 180.0) -> None:
        check_features(names)
        self.names = tuple(names)
        self.index = ObsIndex.of(layout)
        functions = {"queue": queue, "density": density, "phase": phase,
                     "time_in_phase": make_time_in_phase(max_green),
                     "min_green_passed": min_green_passed, "pressure": pressure,
                     "phase_vehicles": phase_vehicles, "phase_queue": phase_queue,
                     "phase_pressure": phase_pressure, "green_flow": green_flow,
                     "phase_wait": make_phase_wait(max_red_s)}
        self._functions = [functions[n] for n in self.names]
        widths = [FEATURES[n].width(self.index) for n in self.names]
        self.width = int(sum(widths))
        self.low = np.concatenate([np.full(w, FEATURES[n].low) for n, w in zip(self.names, widths)])
        self.high = np.concatenate([np.full(w, FEATURES[n].high) for n, w in zip(self.names, widths)])

    def __call__(self, state: TrafficState) -> np.ndarray:
        """Observation rows, shape (intersections, width), float32."""
        parts = [f(state, self.index) for f in self._functions]
        return np.concatenate(parts, axis=1).astype(np.float32)
