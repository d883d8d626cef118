"""Plain-Python twins of the Numba kernels: the specification the kernels are tested against.

Written intersection by intersection, phase by phase, for reading rather than
speed; ``tests/test_kernels.py`` proves each kernel returns the same targets
(and SOTL the same counters) on random inputs. Same signatures as the wrappers
in :mod:`engine.controllers.kernels`.
"""

from __future__ import annotations

import numpy as np

from engine.controllers.kernels import EPS, Incidence


def _movements_of(inc: Incidence) -> list[list[int]]:
    by_int: list[list[int]] = [[] for _ in range(inc.n_intersections)]
    for m, k in enumerate(inc.mov_int):
        by_int[int(k)].append(m)
    return by_int


def _pick(scores: list[float], current: int) -> int:
    """The first phase scoring above the current one (by > EPS) and any before it; -1: none."""
    best, best_score = current, scores[current]
    for p, s in enumerate(scores):
        if s > best_score + EPS:
            best, best_score = p, s
    return best if best != current else -1


def max_pressure_ref(
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
    targets = []
    for k, movs in enumerate(_movements_of(inc)):
        cur = int(phase[k])
        if not (can_switch[k] and time_in_phase[k] >= hold_s - EPS):
            targets.append(-1)
            continue
        if moving is not None and min_moving > 0 and time_in_phase[k] < extend_until_s - EPS:
            green = [m for m in movs if inc.mov_phases[m, cur]]
            lanes = sum(inc.mov_share[m] for m in green)
            flowing = sum(inc.mov_share[m] * moving[inc.mov_in[m]] for m in green)
            if lanes > 0 and flowing >= min_moving * lanes - EPS:
                targets.append(-1)  # the green is still discharging
                continue
        scores, demands = [], []
        for p in range(int(inc.n_phases[k])):
            pressure, demand = 0.0, 0.0
            for m in movs:
                if inc.mov_phases[m, p]:
                    q_in = inc.mov_share[m] * queue_in[inc.mov_in[m]]
                    pressure += inc.mov_sat[m] * (q_in - queue_out[inc.mov_out[m]])
                    demand += q_in
            scores.append(pressure)
            demands.append(demand)
        starving = [
            p
            for p in range(len(scores))
            if p != cur and demands[p] > EPS and waited[k, p] >= max_red_s - EPS
        ]
        if starving:  # the longest-waiting phase first (the first of equals)
            longest = starving[0]
            for p in starving[1:]:
                if waited[k, p] > waited[k, longest] + EPS:
                    longest = p
            targets.append(longest)
        else:
            targets.append(_pick(scores, cur))
    return np.array(targets, dtype=np.int64)


def greedy_ref(
    inc: Incidence, queue: np.ndarray, phase: np.ndarray, can_switch: np.ndarray
) -> np.ndarray:
    targets = []
    for k, movs in enumerate(_movements_of(inc)):
        if not can_switch[k]:
            targets.append(-1)
            continue
        scores = []
        for p in range(int(inc.n_phases[k])):
            total = 0.0
            for m in movs:
                if inc.mov_phases[m, p]:
                    total += inc.mov_share[m] * queue[inc.mov_in[m]]
            scores.append(total)
        targets.append(_pick(scores, int(phase[k])))
    return np.array(targets, dtype=np.int64)


def sotl_ref(
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
    targets = []
    for k, movs in enumerate(_movements_of(inc)):
        cur = int(phase[k])
        on_green = [m for m in movs if inc.mov_phases[m, cur]]
        waiting = [m for m in movs if not inc.mov_phases[m, cur]]
        green_count, green_moving = 0.0, 0.0
        for m in on_green:
            lane = inc.mov_in[m]
            green_count += inc.mov_share[m] * count[lane]
            green_moving += inc.mov_share[m] * (count[lane] - halting[lane])
        demand = {}
        best = -1
        for p in range(int(inc.n_phases[k])):
            if p == cur:
                kappa[k, p] = 0.0
                continue
            demand[p] = 0.0
            for m in waiting:
                if inc.mov_phases[m, p]:
                    demand[p] += inc.mov_share[m] * count[inc.mov_in[m]]
            kappa[k, p] += dt * demand[p]
            if best < 0 or kappa[k, p] > kappa[k, best] + EPS:
                best = p
        target = -1
        if can_switch[k] and best >= 0:
            tail_crossing = EPS < green_moving <= mu + EPS
            if kappa[k, best] >= theta - EPS and not tail_crossing:
                target = best
            elif green_count <= EPS and demand[best] > EPS:
                target = best
        targets.append(target)
    return np.array(targets, dtype=np.int64)


def actuated_ref(
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
    targets = []
    for k, movs in enumerate(_movements_of(inc)):
        cur, n_p = int(phase[k]), int(inc.n_phases[k])
        green_lanes = {int(inc.mov_in[m]) for m in movs if inc.mov_phases[m, cur]}
        # a lane keeps the green while its arrivals come at most passage_s apart
        extend = any(
            count[i] > 0 and count[i] * speed[i] * passage_s >= length[i] for i in green_lanes
        )

        def demand(p: int, movs=movs, cur=cur) -> float:
            return sum(
                count[inc.mov_in[m]]
                for m in movs
                if inc.mov_phases[m, p] and not inc.mov_phases[m, cur]
            )

        target = -1
        coordinated = cycle_pos is not None and cycle_pos[k] >= 0
        if not can_switch[k]:
            pass
        elif not coordinated:
            if not extend:
                later = [(cur + step) % n_p for step in range(1, n_p)]
                target = next((p for p in later if demand(p) > EPS), -1)
        else:
            pos, ends = cycle_pos[k], window_end[k]
            new_cycle = pos < ends[0]  # back in the coordinated phase's window
            if cur == 0:
                done = not new_cycle  # the coordinated phase runs to its force-off
            else:
                done = new_cycle or not extend or pos >= ends[cur]  # gap-out or force-off
            if done:
                open_later = [] if new_cycle else [p for p in range(cur + 1, n_p) if pos < ends[p]]
                nxt = next((p for p in open_later if demand(p) > EPS), 0)
                target = nxt if nxt != cur else -1
        targets.append(target)
    return np.array(targets, dtype=np.int64)
