"""Rewards: named terms a config selects, alone or as a weighted sum, and how they are shared.

Each term returns one value per intersection (the multi-agent env hands them out
as they are; the single-agent env sums them). All are "less is better" quantities
negated. ``delay``, ``queue``, ``pressure`` and ``co2`` are measured on each
intersection's observed approaches; ``upstream_delay`` and ``entry_wait`` charge
what those do not see to the signal the vehicles reach first: delay on the link
sections upstream of the observed approaches, and the wait of vehicles queued to
enter the network (SUMO's departDelay, which the delay KPI counts). With
``share`` w, each signal gets (1 - w) x its own reward + w x the network's mean.

This is the one implementation: the training workers use the env's reward as is,
and ``EnvCore.step`` reports each weighted term in ``info["reward_terms"]``.
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
    """Stateful reward: ``reset(state)`` at episode start, ``__call__(state, dt)`` after each step.

    ``spec``: a term's name, or a mapping of names to weights. ``share`` in [0, 1].
    Raises :class:`ConfigError` for unknown names, non-finite weights or a bad share.
    """

    names = ("delay", "queue", "pressure", "co2", "upstream_delay", "entry_wait")

    def __init__(self, spec: str | Mapping[str, float], share: float = 0.0) -> None:
        weights = {spec: 1.0} if isinstance(spec, str) else dict(spec)
        if not weights:
            raise ConfigError("reward: give a name or a mapping of names to weights")
        for name, w in weights.items():
            if name not in self.names:
                raise ConfigError(f"reward: unknown reward '{name}' (choose from {', '.join(self.names)})")
            if not isinstance(w, (int, float)) or not np.isfinite(w):
                raise ConfigError(f"reward: weight of '{name}' must be a number, got {w!r}")
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0.0 <= share <= 1.0:
            raise ConfigError(f"reward_share must be a number in [0, 1], got {share!r}")
        self.weights = weights
        self.share = float(share)
        self.needs_co2 = "co2" in weights
        self.needs_unwatched = bool({"upstream_delay", "entry_wait"} & set(weights))
        self.terms: dict[str, np.ndarray] = {}  # the last step's weighted terms
        self._prev_rate: np.ndarray | None = None

    def reset(self, state: TrafficState) -> None:
        self._prev_rate = delay_rate(state)
        self.terms = {}

    def __call__(self, state: TrafficState, dt: float, co2: np.ndarray | None = None,
                 unwatched: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        """Reward per intersection for the last ``dt`` seconds, shape (intersections,).

        ``unwatched``: (upstream, entry) vehicle counts per signal from
        :class:`UnwatchedTraffic`, needed by ``upstream_delay`` and ``entry_wait``.
        """
        total = np.zeros(len(state.phase))
        self.terms = {}
        for name, w in self.weights.items():
            term = w * getattr(self, f"_{name}")(state, dt, co2, unwatched)
            self.terms[name] = term
            total += term
        if self.share:
            total = (1.0 - self.share) * total + self.share * total.mean()
        return total

    # Change in cumulative delay over the interval (trapezoid of the accrual rate).
    def _delay(self, state: TrafficState, dt: float, co2, unwatched) -> np.ndarray:
        rate = delay_rate(state)
        accrued = 0.5 * (rate + self._prev_rate) * dt
        self._prev_rate = rate
        return -accrued / DELAY_SCALE

    def _queue(self, state: TrafficState, dt: float, co2, unwatched) -> np.ndarray:
        return -state.layout.per_intersection_sum(state.lane_halting)

    def _pressure(self, state: TrafficState, dt: float, co2, unwatched) -> np.ndarray:
        layout = state.layout
        per_move = state.lane_count[layout.mov_in] - state.lane_count[layout.mov_out]
        return -np.abs(np.bincount(layout.mov_intersection, per_move, minlength=len(state.phase)))

    def _co2(self, state: TrafficState, dt: float, co2: np.ndarray | None, unwatched) -> np.ndarray:
        """CO2 in grams emitted on the approaches over the interval (rate at its end times dt)."""
        if co2 is None:
            return np.zeros(len(state.phase))
        return -state.layout.per_intersection_sum(co2) * dt / 1000.0

    # Vehicle-seconds on the unobserved link sections upstream, in the delay term's units
    # (vehicles x (1 - v / v_max), the accrual rate at the step's end, times dt).
    def _upstream_delay(self, state: TrafficState, dt: float, co2, unwatched) -> np.ndarray:
        return -unwatched[0] * dt / DELAY_SCALE

    # Vehicle-seconds of waiting to enter (SUMO's departDelay accrues one per second per vehicle).
    def _entry_wait(self, state: TrafficState, dt: float, co2, unwatched) -> np.ndarray:
        return -unwatched[1] * dt / DELAY_SCALE


class UnwatchedTraffic:
    """What the approach observations do not see, per signal the vehicles reach first.

    ``upstream``: delaying vehicles (``n x (1 - v / v_max)`` per edge) on the link
    sections that lead into an observed approach, back to the previous signal or the
    network's edge, each edge weighted by the part of it outside the observation
    areas (so that ``delay`` and ``upstream_delay`` never count the same road);
    ``entry``: vehicles queued to enter whose route reaches the signal first.
    Without these, trained policies learned to hold traffic back where their reward
    did not look (queues upstream, entry backlog) while the delay KPI rose.
    Reads SUMO through ``api`` (libsumo/traci); shapes (signals,).
    """

    def __init__(self, api, layout, net_file) -> None:
        self.api = api
        self.layout = layout
        self.net_file = net_file
        self.edge_signal = {lane.rsplit("_", 1)[0]: k for k, ix in enumerate(layout.intersections)
                            for lane in ix.in_lanes}
        self.n = len(layout.intersections)
        self._first: dict[str, int] = {}
        self._feeders: list[tuple[str, int, float, float]] | None = None  # (edge, signal, max speed, weight)
        self._observed: dict[str, float] = {}  # edge -> the part of it inside an approach's area
        area, incoming = layout.area, set(layout.in_lane_index.tolist())  # the delay term's lanes
        for row, lane_index, covered in zip(area.row, area.col, area.covered):
            if int(row) in incoming:
                edge = layout.area_lanes[int(lane_index)].rsplit("_", 1)[0]
                self._observed[edge] = max(self._observed.get(edge, 0.0), float(covered))

    def reset(self, api=None) -> None:
        """A new episode (``api``: the simulation's, if it was restarted)."""
        self._first.clear()
        if api is not None:
            self.api = api

    def feeders(self) -> list[tuple[str, int, float, float]]:
        """(edge, signal index, max speed, weight) of edges upstream of each observed approach,
        weight = the part of the edge outside the observation areas (> 0)."""
        if self._feeders is None:
            from engine.plan.measure import approaches  # the one tracing of approach links

            ixs = self.layout.intersections
            index = {ix.id: k for k, ix in enumerate(ixs)}
            links = approaches(self.net_file, {ix.id: ix for ix in ixs})
            feeders = [(edge, index[sid], self.api.lane.getMaxSpeed(f"{edge}_0"),
                        1.0 - self._observed.get(edge, 0.0))
                       for sid, approach_list in links.items() for a in approach_list
                       for edge in a.edges if edge not in self.edge_signal]
            self._feeders = [f for f in feeders if f[3] > 1e-9]
        return self._feeders

    def __call__(self) -> tuple[np.ndarray, np.ndarray]:
        """(upstream delaying vehicles, vehicles waiting to enter) per signal, now."""
        api = self.api
        upstream = np.zeros(self.n)
        for edge, k, vmax, weight in self.feeders():
            n = api.edge.getLastStepVehicleNumber(edge)
            if n:
                upstream[k] += weight * n * max(0.0, 1.0 - api.edge.getLastStepMeanSpeed(edge) / vmax)
        entry = np.zeros(self.n)
        for vid in api.simulation.getPendingVehicles():
            k = self._first.get(vid)
            if k is None:  # the first signal on its route (source edges may lead to an approach)
                route = api.vehicle.getRoute(vid)
                k = self._first[vid] = next((self.edge_signal[e] for e in route if e in self.edge_signal), -1)
            if k >= 0:
                entry[k] += 1
        return upstream, entry
