"""The network's controlled signals as flat arrays, for observations and Numba kernels.

Every watched lane (a controlled signal's incoming or outgoing vehicle lane)
gets one index; every movement (incoming lane to outgoing lane through a
signal) is a row with its intersection, its two lane indices and the green
phases that serve it. Padded to the largest phase count, so that one kernel call
can decide for every intersection at once.

Each watched lane is seen over its observation area
(:meth:`engine.network.Network.approach_area`): the lane itself and the lanes
before it (after it, for an outgoing lane) up to the detector range. SUMO is
asked for the ``area_lanes``; :meth:`Layout.aggregate` turns their values into
one value per watched lane. Signals that cannot be controlled (no green, or a
single green) are not in the layout: they run their own programs.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from engine.errors import NetworkError
from engine.network import DEFAULT_DETECTOR_RANGE_M, load_network
from engine.signals import Intersection

VEHICLE_SPACE_M = 7.5  # car length 5 m + min gap 2.5 m: what one queued vehicle occupies
STOPLINE_ZONE_M = 30.0  # actuation's detection zone: the lane before the stop line, at least this long
QUEUE_KPI_RANGE_M = 150.0  # the queue KPI counts halting vehicles this far upstream, whatever a controller sees


@dataclass(frozen=True, eq=False)
class Area:
    """Which lanes (and how much of each) make up each watched lane's observed road.

    Entry e adds lane ``col[e]`` of the area lanes to watched lane ``row[e]``,
    with ``share`` (less than 1 where that lane feeds several watched lanes) and
    ``covered`` (the part of its length inside the range).
    """

    row: np.ndarray  # (n_entries,) watched lane index
    col: np.ndarray  # (n_entries,) index into Layout.area_lanes
    share: np.ndarray  # (n_entries,)
    covered: np.ndarray  # (n_entries,)
    range_m: float

    def aggregate(self, values: np.ndarray, n_lanes: int, queued: np.ndarray | None = None,
                  length: np.ndarray | None = None) -> np.ndarray:
        """Per watched lane, ``values`` (one per area lane) summed over its area, shape (n_lanes,).

        A partly covered lane counts its covered fraction of the values, except
        ``queued`` vehicles (halting ones, with lane ``length`` in m): a queue
        grows from the lane's downstream end, so up to what fits in the covered
        part counts whole (``VEHICLE_SPACE_M`` per vehicle).
        """
        v = values[self.col]
        if queued is None:
            part = self.covered * v
        else:
            q = queued[self.col]
            fits = self.covered * length[self.col] / VEHICLE_SPACE_M
            part = self.covered * (v - q) + np.where(self.covered >= 1.0, q, np.minimum(q, fits))
        return np.bincount(self.row, weights=self.share * part, minlength=n_lanes)


@dataclass(frozen=True, eq=False)
class Layout:
    intersections: tuple[Intersection, ...]
    lanes: tuple[str, ...]
    in_lane_index: np.ndarray  # concatenated incoming lanes of every intersection
    in_lane_start: np.ndarray  # where each intersection's block starts in in_lane_index
    mov_intersection: np.ndarray  # (n_mov,) int64
    mov_in: np.ndarray  # (n_mov,) lane index
    mov_out: np.ndarray  # (n_mov,) lane index
    mov_phases: np.ndarray  # (n_mov, max_phases) bool: movement green in phase
    n_phases: np.ndarray  # (n_int,) int64
    area_lanes: tuple[str, ...]  # every lane SUMO is asked about
    area: Area  # up to the detector range: what controllers, observations and rewards see
    zone: Area  # the stop-line detection zone actuation uses
    queue_area: Area  # up to QUEUE_KPI_RANGE_M: the queue KPI, the same for every controller

    @property
    def detector_range_m(self) -> float:
        return self.area.range_m

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(ix.id for ix in self.intersections)

    @property
    def max_phases(self) -> int:
        return int(self.n_phases.max()) if self.n_phases.size else 0

    def per_intersection_sum(self, lane_values: np.ndarray) -> np.ndarray:
        """Sum a per-lane quantity over each intersection's incoming lanes."""
        if not self.intersections:
            return np.zeros(0)
        return np.add.reduceat(lane_values[self.in_lane_index], self.in_lane_start)

    def aggregate(self, area_values: np.ndarray, queued: np.ndarray | None = None,
                  area_length: np.ndarray | None = None) -> np.ndarray:
        """Per watched lane, over its observation area (see :meth:`Area.aggregate`)."""
        return self.area.aggregate(area_values, len(self.lanes), queued, area_length)

    def in_lanes_of(self, k: int) -> np.ndarray:
        end = self.in_lane_start[k + 1] if k + 1 < len(self.in_lane_start) else len(self.in_lane_index)
        return self.in_lane_index[self.in_lane_start[k]:end]


@lru_cache(maxsize=16)
def build_layout(net_file: Path, only: tuple[str, ...] | None = None, additional: tuple[Path, ...] = (),
                 detector_range_m: float = DEFAULT_DETECTOR_RANGE_M, require: bool = True) -> Layout:
    """Layout of every controllable signal of ``net_file`` (or of the ``only`` ids).

    ``additional``: files the scenario loads (their programs replace the net's).
    Raises :class:`~engine.errors.NetworkError` for an unknown or uncontrollable
    id in ``only``, or (with ``require``) a network without any controllable
    signal; without ``require`` such a network gets an empty layout (SUMO runs
    every signal's own program).
    """
    network = load_network(net_file, additional)
    intersections = network.intersections()
    if only is not None:
        unknown = [t for t in only if t not in network.signals]
        if unknown:
            raise NetworkError(f"{net_file}: no traffic light '{unknown[0]}'")
        fixed = [t for t in only if t in network.uncontrolled]
        if fixed:
            raise NetworkError(f"{net_file}: cannot control {network.uncontrolled[fixed[0]]}")
        intersections = {t: intersections[t] for t in only}
    if not intersections and not require:
        return _empty_layout()
    if not intersections:
        why = f" ({'; '.join(network.uncontrolled.values())})" if network.uncontrolled else ""
        raise NetworkError(f"{net_file}: the network has no traffic lights a controller can run{why}")
    ixs = tuple(intersections.values())
    lanes: dict[str, int] = {}
    for ix in ixs:
        for lane in ix.in_lanes + ix.out_lanes:
            lanes.setdefault(lane, len(lanes))
    in_index, in_start = [], []
    for ix in ixs:
        in_start.append(len(in_index))
        in_index.extend(lanes[la] for la in ix.in_lanes)
    max_phases = max(ix.n_phases for ix in ixs)
    rows = []
    for k, ix in enumerate(ixs):
        vehicle = [m for m in ix.movements if not m.crossing]
        pairs = dict.fromkeys((m.from_lane, m.to_lane) for m in vehicle)
        for from_lane, to_lane in pairs:
            links = {m.link for m in vehicle if (m.from_lane, m.to_lane) == (from_lane, to_lane)}
            served = [any(L in ph.green_links for L in links) for ph in ix.phases]
            rows.append((k, lanes[from_lane], lanes[to_lane], served + [False] * (max_phases - len(served))))
    incoming = {la for ix in ixs for la in ix.in_lanes}
    area_lanes: dict[str, int] = {}

    def area_of(range_m: float) -> Area:
        entries: list[tuple[int, int, float, float]] = []
        for lane, i in lanes.items():
            for other, share, covered in network.approach_area(lane, range_m, upstream=lane in incoming):
                entries.append((i, area_lanes.setdefault(other, len(area_lanes)), share, covered))
        row, col, share, covered = zip(*entries)
        return Area(np.array(row, dtype=np.int64), np.array(col, dtype=np.int64),
                    np.array(share, dtype=float), np.array(covered, dtype=float), float(range_m))

    area = area_of(detector_range_m)
    zone = area_of(STOPLINE_ZONE_M)
    queue_area = area if detector_range_m == QUEUE_KPI_RANGE_M else area_of(QUEUE_KPI_RANGE_M)
    return Layout(
        intersections=ixs,
        lanes=tuple(lanes),
        in_lane_index=np.array(in_index, dtype=np.int64),
        in_lane_start=np.array(in_start, dtype=np.int64),
        mov_intersection=np.array([r[0] for r in rows], dtype=np.int64),
        mov_in=np.array([r[1] for r in rows], dtype=np.int64),
        mov_out=np.array([r[2] for r in rows], dtype=np.int64),
        mov_phases=np.array([r[3] for r in rows], dtype=bool).reshape(len(rows), max_phases),
        n_phases=np.array([ix.n_phases for ix in ixs], dtype=np.int64),
        area_lanes=tuple(area_lanes),
        area=area,
        zone=zone,
        queue_area=queue_area,
    )


def _empty_layout() -> Layout:
    none, ints = np.zeros(0), np.zeros(0, dtype=np.int64)
    empty = Area(ints, ints, none, none, 0.0)
    return Layout(intersections=(), lanes=(), in_lane_index=ints, in_lane_start=ints, mov_intersection=ints,
                  mov_in=ints, mov_out=ints, mov_phases=np.zeros((0, 0), dtype=bool), n_phases=ints,
                  area_lanes=(), area=empty, zone=empty, queue_area=empty)
