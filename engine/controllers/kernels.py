"""Numba kernels: the per-decision work of the adaptive heuristics, for every signal at once.

Each kernel reads flat arrays — the movement incidence of a
:class:`~engine.layout.Layout` (movement -> intersection, incoming lane,
outgoing lane, phases that serve it) and per-lane counts — and returns one
target green phase per intersection (-1: keep the current one). One call
decides for the whole network, so a thousand signals cost one loop over their
movements. ``engine.controllers.reference`` holds a plain-Python twin of each
kernel; a property test proves them equal.

Ties keep the current phase, and nothing is asked of an intersection whose
green has not yet run its minimum (``can_switch`` False): the
SignalController would refuse it anyway.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numba
import numpy as np

from engine.layout import Layout
from engine.webster import SAT_THROUGH, SAT_TURN, THROUGH

EPS = 1e-9  # scores closer than this are a tie


@dataclass(frozen=True, eq=False)
class Incidence:
    """The arrays every kernel reads, derived once from a Layout."""

    mov_int: np.ndarray  # (n_mov,) int64 intersection of each movement
    mov_in: np.ndarray  # (n_mov,) int64 incoming lane index
    mov_out: np.ndarray  # (n_mov,) int64 outgoing lane index
    mov_phases: np.ndarray  # (n_mov, max_phases) bool
    n_phases: np.ndarray  # (n_int,) int64
    mov_share: np.ndarray  # (n_mov,) 1 / movements leaving the same incoming lane
    mov_sat: np.ndarray  # (n_mov,) saturation flow, veh/s per lane

    @property
    def n_intersections(self) -> int:
        return len(self.n_phases)

    @property
    def n_lanes(self) -> int:
        return int(max(self.mov_in.max(initial=-1), self.mov_out.max(initial=-1))) + 1


_INCIDENCE: weakref.WeakKeyDictionary[Layout, Incidence] = weakref.WeakKeyDictionary()


def incidence(layout: Layout) -> Incidence:
    """The kernels' view of ``layout`` (cached per layout object)."""
    hit = _INCIDENCE.get(layout)
    if hit is not None:
        return hit
    direction = {}
    for k, ix in enumerate(layout.intersections):
        for m in ix.movements:
            # a lane pair joined by several links is "through" if any of them is
            key = (k, m.from_lane, m.to_lane)
            direction[key] = THROUGH if direction.get(key) == THROUGH else m.direction
    lanes = layout.lanes
    sat = (
        np.array(
            [
                SAT_THROUGH if direction[(int(k), lanes[i], lanes[o])] == THROUGH else SAT_TURN
                for k, i, o in zip(layout.mov_intersection, layout.mov_in, layout.mov_out)
            ]
        )
        / 3600.0
    )
    pairs = np.stack([layout.mov_intersection, layout.mov_in], axis=1)
    _, inverse, counts = np.unique(pairs, axis=0, return_inverse=True, return_counts=True)
    inc = Incidence(
        mov_int=layout.mov_intersection,
        mov_in=layout.mov_in,
        mov_out=layout.mov_out,
        mov_phases=layout.mov_phases,
        n_phases=layout.n_phases,
        mov_share=1.0 / counts[inverse.ravel()],
        mov_sat=sat,
    )
    _INCIDENCE[layout] = inc
    return inc


def synthetic_incidence(
    n_intersections: int,
    seed: int = 0,
    phases: tuple[int, int] = (2, 4),
    approaches: int = 4,
    lanes_per_approach: int = 3,
) -> Incidence:
    """Random but well-formed intersections (benchmarks and property tests).

    Each has ``approaches`` incoming approaches of ``lanes_per_approach`` lanes, each
    lane with one or two movements to random outgoing lanes, each movement served
    by one or two of its intersection's phases.
    """
    rng = np.random.default_rng(seed)
    n_ph = rng.integers(phases[0], phases[1] + 1, size=n_intersections)
    max_p = int(phases[1])
    ints, ins, outs, served, sats = [], [], [], [], []
    lane = 0
    for k in range(n_intersections):
        n_in = approaches * lanes_per_approach
        in_lanes = np.arange(lane, lane + n_in)
        out_lanes = np.arange(lane + n_in, lane + 2 * n_in)
        lane += 2 * n_in
        for i in in_lanes:
            for _ in range(rng.integers(1, 3)):
                row = np.zeros(max_p, dtype=bool)
                row[
                    rng.choice(n_ph[k], size=rng.integers(1, min(2, n_ph[k]) + 1), replace=False)
                ] = True
                ints.append(k)
                ins.append(i)
                outs.append(rng.choice(out_lanes))
                served.append(row)
                sats.append(SAT_THROUGH if rng.random() < 0.6 else SAT_TURN)
    mov_int, mov_in = np.array(ints, dtype=np.int64), np.array(ins, dtype=np.int64)
    _, inverse, counts = np.unique(
        np.stack([mov_int, mov_in], axis=1), axis=0, return_inverse=True, return_counts=True
    )
    return Incidence(
        mov_int=mov_int,
        mov_in=mov_in,
        mov_out=np.array(outs, dtype=np.int64),
        mov_phases=np.array(served, dtype=bool).reshape(len(ints), max_p),
        n_phases=n_ph.astype(np.int64),
        mov_share=1.0 / counts[inverse.ravel()],
        mov_sat=np.array(sats) / 3600.0,
    )


# ----------------------------------------------------------------------------- kernels


@numba.njit(cache=True)
def _choose(score, n_phases, phase, can_switch):
    """Per intersection: the best-scoring phase if it beats the current one, else -1."""
    n = n_phases.shape[0]
    targets = np.full(n, -1, dtype=np.int64)
    for k in range(n):
        if not can_switch[k]:
            continue
        best = phase[k]
        best_score = score[k, best]
        for p in range(n_phases[k]):
            if score[k, p] > best_score + EPS:
                best = p
                best_score = score[k, p]
        if best != phase[k]:
            targets[k] = best
    return targets


@numba.njit(cache=True)
def max_pressure_kernel(
    mov_int,
    mov_in,
    mov_out,
    mov_phases,
    mov_share,
    mov_sat,
    n_phases,
    queue_in,
    queue_out,
    phase,
    can_switch,
    time_in_phase,
    waited,
    hold_s,
    max_red_s,
    moving,
    min_moving,
    extend_until_s,
):
    """Varaiya's max pressure: serve the phase with the largest sum of s * (queue in - queue out).

    ``queue_in`` is read at incoming lanes, ``queue_out`` at outgoing lanes (both
    indexed by lane); an incoming lane's queue is split evenly among the
    movements that leave it. A green is held at least ``hold_s`` (the switching
    cost: every change spends a clearance), then for as long as its lanes
    discharge: ``moving`` vehicles per green lane (lanes weighted by the share
    of their movements the phase serves) at least ``min_moving``, until
    ``extend_until_s``. A phase with vehicles waiting that has not been green
    for ``max_red_s`` (``waited[k, p]``) is served first, the longest-waiting
    one, so that phases with few lanes cannot starve.
    """
    n, n_p = n_phases.shape[0], mov_phases.shape[1]
    score = np.zeros((n, n_p))
    demand = np.zeros((n, n_p))
    flowing = np.zeros(n)
    green_lanes = np.zeros(n)
    for m in range(mov_int.shape[0]):
        q_in = mov_share[m] * queue_in[mov_in[m]]
        pressure = mov_sat[m] * (q_in - queue_out[mov_out[m]])
        k = mov_int[m]
        for p in range(n_p):
            if mov_phases[m, p]:
                score[k, p] += pressure
                demand[k, p] += q_in
        if mov_phases[m, phase[k]]:
            flowing[k] += mov_share[m] * moving[mov_in[m]]
            green_lanes[k] += mov_share[m]
    free = np.zeros(n, dtype=np.bool_)
    for k in range(n):
        free[k] = can_switch[k] and time_in_phase[k] >= hold_s - EPS
        if (free[k] and time_in_phase[k] < extend_until_s - EPS and green_lanes[k] > 0
                and flowing[k] >= min_moving * green_lanes[k] - EPS and min_moving > 0):
            free[k] = False  # still discharging
    targets = _choose(score, n_phases, phase, free)
    _serve_starved(targets, demand, n_phases, phase, free, waited, max_red_s)
    return targets


@numba.njit(cache=True)
def _serve_starved(targets, demand, n_phases, phase, free, waited, max_red_s):
    """In place: where ``free``, the longest-waiting phase with demand that has waited ``max_red_s``."""
    for k in range(n_phases.shape[0]):
        if not free[k]:
            continue
        starved = -1
        for p in range(n_phases[k]):
            if p != phase[k] and demand[k, p] > EPS and waited[k, p] >= max_red_s - EPS:
                if starved < 0 or waited[k, p] > waited[k, starved] + EPS:
                    starved = p
        if starved >= 0:
            targets[k] = starved


@numba.njit(cache=True)
def starvation_kernel(mov_int, mov_in, mov_phases, mov_share, n_phases, queue_in, phase, can_switch,
                      waited, max_red_s):
    """Per signal: a phase with vehicles that has been red ``max_red_s`` (the longest-waiting), else -1."""
    n, n_p = n_phases.shape[0], mov_phases.shape[1]
    demand = np.zeros((n, n_p))
    for m in range(mov_int.shape[0]):
        k = mov_int[m]
        for p in range(n_p):
            if mov_phases[m, p]:
                demand[k, p] += mov_share[m] * queue_in[mov_in[m]]
    targets = np.full(n, -1, dtype=np.int64)
    _serve_starved(targets, demand, n_phases, phase, can_switch, waited, max_red_s)
    return targets


@numba.njit(cache=True)
def greedy_kernel(mov_int, mov_in, mov_phases, mov_share, n_phases, queue, phase, can_switch):
    """Longest queue first: serve the phase whose lanes hold the most queued vehicles."""
    score = np.zeros((n_phases.shape[0], mov_phases.shape[1]))
    for m in range(mov_int.shape[0]):
        q = mov_share[m] * queue[mov_in[m]]
        k = mov_int[m]
        for p in range(mov_phases.shape[1]):
            if mov_phases[m, p]:
                score[k, p] += q
    return _choose(score, n_phases, phase, can_switch)


@numba.njit(cache=True)
def sotl_kernel(
    mov_int,
    mov_in,
    mov_phases,
    mov_share,
    n_phases,
    count,
    halting,
    phase,
    can_switch,
    kappa,
    dt,
    theta,
    mu,
):
    """Self-organising traffic lights (Gershenson's SOTL with platoon rule), updating ``kappa``.

    ``kappa[k, p]`` integrates, over the ``dt`` seconds since the last call, the
    vehicles waiting or arriving on lanes that only phase ``p`` (not the current
    green) would serve; the current phase's counter is zeroed. After min green a
    signal switches to the phase with the largest counter once it reaches
    ``theta`` (vehicle-seconds), unless a platoon's tail of at most ``mu`` moving
    vehicles is about to cross on green; it also switches when nothing is left
    on green while some red lane has a vehicle.
    """
    n, n_p = n_phases.shape[0], mov_phases.shape[1]
    demand = np.zeros((n, n_p))
    green_count = np.zeros(n)
    green_moving = np.zeros(n)
    for m in range(mov_int.shape[0]):
        k = mov_int[m]
        c = mov_share[m] * count[mov_in[m]]
        if mov_phases[m, phase[k]]:
            green_count[k] += c
            green_moving[k] += mov_share[m] * (count[mov_in[m]] - halting[mov_in[m]])
            continue
        for p in range(n_p):
            if mov_phases[m, p]:
                demand[k, p] += c
    targets = np.full(n, -1, dtype=np.int64)
    for k in range(n):
        cur = phase[k]
        best = -1
        for p in range(n_phases[k]):
            if p == cur:
                kappa[k, p] = 0.0
                continue
            kappa[k, p] += dt * demand[k, p]
            if best < 0 or kappa[k, p] > kappa[k, best] + EPS:
                best = p
        if not can_switch[k] or best < 0:
            continue
        tail_crossing = green_moving[k] > EPS and green_moving[k] <= mu + EPS
        if kappa[k, best] >= theta - EPS and not tail_crossing:
            targets[k] = best
        elif green_count[k] <= EPS and demand[k, best] > EPS:
            targets[k] = best
    return targets


@numba.njit(cache=True)
def _actuation_detection(mov_int, mov_in, mov_phases, n, count, speed, length, phase, passage_s):
    """(vehicles waiting per signal and red phase, whether some lane of the current green still extends it)."""
    n_p = mov_phases.shape[1]
    demand = np.zeros((n, n_p))
    extend = np.zeros(n, dtype=np.bool_)
    for m in range(mov_int.shape[0]):
        k = mov_int[m]
        lane = mov_in[m]
        if mov_phases[m, phase[k]]:
            if count[lane] > 0 and count[lane] * speed[lane] * passage_s >= length[lane]:
                extend[k] = True
            continue
        for p in range(n_p):
            if mov_phases[m, p]:
                demand[k, p] += count[lane]
    return demand, extend


@numba.njit(cache=True)
def actuated_kernel(
    mov_int,
    mov_in,
    mov_phases,
    n_phases,
    count,
    speed,
    length,
    phase,
    can_switch,
    passage_s,
    cycle_pos,
    window_end,
):
    """Gap-out actuation, free or coordinated: one target per signal.

    Each incoming lane (the approach's last tens of metres) is a stop-line
    detector: its vehicles arrive about ``count * speed / length`` per second,
    so the gap between arrivals is ``length / (count * speed)``. A green is
    extended while some lane it serves has a gap of at most ``passage_s``
    (queues discharging, platoons arriving; a queue blocked from downstream does
    not extend it); max-out is the SignalController's max green.

    Free (``cycle_pos[k] < 0``): on gap-out the next phase in cycle order with a
    vehicle waiting gets the green; with no demand anywhere the green rests.

    Coordinated (``cycle_pos[k]`` = seconds into the signal's background cycle):
    phase 0, the coordinated phase, is held until its force-off
    ``window_end[k, 0]``; every other phase ends on gap-out or at its own
    force-off ``window_end[k, p]``, and the cycle goes on to the next phase with
    demand whose window is still open, else back to phase 0 early (the time the
    side streets did not need goes to the coordinated phase). When the next
    cycle has begun (position before phase 0's force-off) a side phase returns
    to phase 0.
    """
    n = n_phases.shape[0]
    demand, extend = _actuation_detection(mov_int, mov_in, mov_phases, n, count, speed, length, phase,
                                          passage_s)
    targets = np.full(n, -1, dtype=np.int64)
    for k in range(n):
        if not can_switch[k]:
            continue
        cur, pos = phase[k], cycle_pos[k]
        if pos < 0:  # free
            if extend[k]:
                continue
            for step in range(1, n_phases[k]):
                p = (cur + step) % n_phases[k]
                if demand[k, p] > EPS:
                    targets[k] = p
                    break
            continue
        new_cycle = pos < window_end[k, 0]
        if cur == 0:
            if new_cycle:
                continue  # hold the coordinated phase until its force-off
        elif extend[k] and pos < window_end[k, cur] and not new_cycle:
            continue  # a side phase still in use, before its force-off
        target = 0
        if not new_cycle:
            for p in range(cur + 1, n_phases[k]):
                if demand[k, p] > EPS and pos < window_end[k, p]:
                    target = p
                    break
        if target != cur:
            targets[k] = target
    return targets


# ----------------------------------------------------------------------------- wrappers


def max_pressure(
    inc: Incidence,
    queue_in: np.ndarray,
    queue_out: np.ndarray,
    phase: np.ndarray,
    can_switch: np.ndarray,
    time_in_phase: np.ndarray,
    waited: np.ndarray,
    hold_s: float = 0.0,
    max_red_s: float = np.inf,
    moving: np.ndarray | None = None,
    min_moving: float = 0.0,
    extend_until_s: float = np.inf,
) -> np.ndarray:
    """Targets by max pressure (vehicles per lane upstream and downstream of each movement).

    ``waited[k, p]``: seconds since phase p of signal k was last green;
    ``moving``: moving vehicles per lane (the discharge rule is off without it).
    """
    if moving is None:
        moving, min_moving = np.zeros_like(queue_in, dtype=float), 0.0
    return max_pressure_kernel(
        inc.mov_int,
        inc.mov_in,
        inc.mov_out,
        inc.mov_phases,
        inc.mov_share,
        inc.mov_sat,
        inc.n_phases,
        queue_in,
        queue_out,
        phase,
        can_switch,
        time_in_phase,
        waited,
        float(hold_s),
        float(max_red_s),
        np.asarray(moving, dtype=float),
        float(min_moving),
        float(extend_until_s),
    )


def starved(inc: Incidence, queue_in: np.ndarray, phase: np.ndarray, can_switch: np.ndarray,
            waited: np.ndarray, max_red_s: float) -> np.ndarray:
    """Per signal: the phase a starvation guard must serve now (vehicles waiting ``max_red_s``), else -1."""
    return starvation_kernel(inc.mov_int, inc.mov_in, inc.mov_phases, inc.mov_share, inc.n_phases,
                             queue_in, phase, np.asarray(can_switch, dtype=np.bool_), waited, float(max_red_s))


def greedy(
    inc: Incidence, queue: np.ndarray, phase: np.ndarray, can_switch: np.ndarray
) -> np.ndarray:
    """Targets by longest queue."""
    return greedy_kernel(
        inc.mov_int,
        inc.mov_in,
        inc.mov_phases,
        inc.mov_share,
        inc.n_phases,
        queue,
        phase,
        can_switch,
    )


def sotl(
    inc: Incidence,
    count: np.ndarray,
    halting: np.ndarray,
    phase: np.ndarray,
    can_switch: np.ndarray,
    kappa: np.ndarray,
    dt: float,
    theta: float,
    mu: float,
) -> np.ndarray:
    """Targets by SOTL; updates ``kappa`` (n_intersections, max_phases) in place."""
    return sotl_kernel(
        inc.mov_int,
        inc.mov_in,
        inc.mov_phases,
        inc.mov_share,
        inc.n_phases,
        count,
        halting,
        phase,
        can_switch,
        kappa,
        float(dt),
        float(theta),
        float(mu),
    )


def actuated(
    inc: Incidence,
    count: np.ndarray,
    speed: np.ndarray,
    length: np.ndarray,
    phase: np.ndarray,
    can_switch: np.ndarray,
    passage_s: float,
    cycle_pos: np.ndarray | None = None,
    window_end: np.ndarray | None = None,
) -> np.ndarray:
    """Targets by gap-out actuation on lane detectors (count, mean speed, length per lane).

    Without ``cycle_pos`` every signal runs free; see :func:`actuated_kernel`.
    """
    n, n_p = inc.n_intersections, inc.mov_phases.shape[1]
    if cycle_pos is None:
        cycle_pos = np.full(n, -1.0)
    if window_end is None:
        window_end = np.zeros((n, n_p))
    return actuated_kernel(
        inc.mov_int,
        inc.mov_in,
        inc.mov_phases,
        inc.n_phases,
        count,
        speed,
        length,
        phase,
        can_switch,
        float(passage_s),
        cycle_pos,
        window_end,
    )
