"""Each Numba kernel equals its plain-Python reference, on random networks and traffic."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.controllers import kernels, reference
from engine.controllers.kernels import Incidence, synthetic_incidence

SETTINGS = settings(max_examples=40, deadline=None)


@st.composite
def traffic(draw):
    """A random incidence plus lane counts, phases and min-green flags that fit it."""
    n_int = draw(st.integers(1, 12))
    max_p = draw(st.integers(1, 5))
    inc = synthetic_incidence(
        n_int,
        seed=draw(st.integers(0, 2**16)),
        phases=(1, max_p),
        approaches=draw(st.integers(1, 4)),
        lanes_per_approach=draw(st.integers(1, 3)),
    )
    n_lanes = inc.n_lanes
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    # small integer counts make exact ties (the tie rule matters); some lanes stay empty
    count = rng.integers(0, draw(st.integers(1, 12)), size=n_lanes).astype(float)
    count[rng.random(n_lanes) < draw(st.floats(0, 1))] = 0.0
    halting = np.floor(count * rng.random(n_lanes))
    speed = rng.choice([0.0, 0.05, 2.0, 8.3, 13.9], size=n_lanes)
    length = rng.choice([20.0, 36.0, 50.0, 80.0], size=n_lanes)
    phase = rng.integers(0, inc.n_phases)  # one draw per intersection, below its phase count
    can_switch = rng.random(n_int) < draw(st.floats(0, 1))
    return inc, count, halting, speed, length, phase.astype(np.int64), can_switch


def _check_targets(
    inc: Incidence, targets: np.ndarray, phase: np.ndarray, can_switch: np.ndarray
) -> None:
    assert targets.shape == phase.shape and targets.dtype == np.int64
    assert np.all(targets < inc.n_phases)
    assert np.all(targets != phase)  # -1 or a different phase
    assert np.all(targets[~can_switch] == -1)


@SETTINGS
@given(
    traffic(),
    st.integers(0, 2**16),
    st.sampled_from([0.0, 15.0]),
    st.sampled_from([30.0, 120.0, np.inf]),
    st.sampled_from([0.0, 1.0, 2.0]),
)
def test_max_pressure_kernel_equals_reference(data, seed, hold, max_red, min_moving):
    inc, count, halting, _, _, phase, can_switch = data
    rng = np.random.default_rng(seed)
    in_phase = rng.choice([0.0, 10.0, 15.0, 40.0, 55.0], size=inc.n_intersections)
    waited = rng.choice(
        [0.0, 30.0, 60.0, 120.0, 200.0], size=(inc.n_intersections, inc.mov_phases.shape[1])
    )
    args = (inc, count, halting, phase, can_switch, in_phase, waited, hold, max_red,
            count - halting, min_moving, 55.0)
    got = kernels.max_pressure(*args)
    np.testing.assert_array_equal(got, reference.max_pressure_ref(*args))
    _check_targets(inc, got, phase, can_switch)


@SETTINGS
@given(traffic())
def test_greedy_kernel_equals_reference(data):
    inc, _, halting, _, _, phase, can_switch = data
    got = kernels.greedy(inc, halting, phase, can_switch)
    np.testing.assert_array_equal(got, reference.greedy_ref(inc, halting, phase, can_switch))
    _check_targets(inc, got, phase, can_switch)


@SETTINGS
@given(
    traffic(), st.floats(0.5, 10.0), st.floats(1.0, 300.0), st.floats(0.0, 6.0), st.integers(1, 4)
)
def test_sotl_kernel_equals_reference_over_several_calls(data, dt, theta, mu, calls):
    inc, count, halting, _, _, phase, can_switch = data
    shape = (inc.n_intersections, inc.mov_phases.shape[1])
    kappa_k, kappa_r = np.zeros(shape), np.zeros(shape)
    for _ in range(calls):  # the counters carry over from call to call
        got = kernels.sotl(inc, count, halting, phase, can_switch, kappa_k, dt, theta, mu)
        want = reference.sotl_ref(inc, count, halting, phase, can_switch, kappa_r, dt, theta, mu)
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(kappa_k, kappa_r)
        _check_targets(inc, got, phase, can_switch)


@SETTINGS
@given(traffic(), st.floats(0.5, 6.0), st.integers(0, 2**16), st.booleans())
def test_actuated_kernel_equals_reference(data, passage, seed, coordinated):
    inc, count, _, speed, length, phase, can_switch = data
    pos = ends = None
    if coordinated:  # a background cycle of 120 s, some signals free (-1)
        rng = np.random.default_rng(seed)
        n, n_p = inc.n_intersections, inc.mov_phases.shape[1]
        pos = rng.choice([-1.0, 0.0, 20.0, 47.5, 80.0, 119.0], size=n)
        ends = np.sort(
            rng.choice([10.0, 30.0, 47.5, 60.0, 80.0, 100.0, 115.0], size=(n, n_p)), axis=1
        )
    args = (inc, count, speed, length, phase, can_switch, passage, pos, ends)
    got = kernels.actuated(*args)
    np.testing.assert_array_equal(got, reference.actuated_ref(*args))
    _check_targets(inc, got, phase, can_switch)


def _one_crossing() -> Incidence:
    """Two phases: lane 0 -> 2 in phase 0, lane 1 -> 3 in phase 1 (both through)."""
    return Incidence(
        mov_int=np.array([0, 0]),
        mov_in=np.array([0, 1]),
        mov_out=np.array([2, 3]),
        mov_phases=np.array([[True, False], [False, True]]),
        n_phases=np.array([2]),
        mov_share=np.ones(2),
        mov_sat=np.full(2, 1600 / 3600),
    )


def test_max_pressure_serves_the_larger_pressure_and_respects_min_green():
    inc = _one_crossing()
    q = np.array([2.0, 9.0, 0.0, 0.0])
    free, held = np.array([True]), np.array([False])
    green_for, waited = np.array([20.0]), np.zeros((1, 2))

    def mp(
        q_in, q_out, can_switch=free, in_phase=green_for, waited=waited, hold=15.0, max_red=120.0
    ):
        return kernels.max_pressure(
            inc, q_in, q_out, np.array([0]), can_switch, in_phase, waited, hold, max_red
        )[0]

    assert mp(q, q) == 1
    assert mp(q, q, can_switch=held) == -1
    assert (
        mp(q, q, in_phase=np.array([12.0])) == -1
    )  # past min green, but held for the switching cost
    # a full downstream lane takes the pressure away
    assert mp(q, np.array([0.0, 0.0, 0.0, 20.0])) == -1
    # ... unless phase 1 has waited max red with a vehicle on its lane: then it goes first
    assert mp(q, np.array([0.0, 0.0, 0.0, 20.0]), waited=np.array([[0.0, 130.0]])) == 1


def test_max_pressure_holds_a_green_that_is_still_discharging():
    inc = _one_crossing()
    q = np.array([2.0, 9.0, 0.0, 0.0])

    def mp(moving, in_phase=20.0, min_moving=2.0):
        return kernels.max_pressure(
            inc, q, q, np.array([0]), np.array([True]), np.array([in_phase]), np.zeros((1, 2)),
            15.0, 120.0, np.asarray(moving, dtype=float), min_moving, 55.0,
        )[0]

    assert mp([2.0, 0, 0, 0]) == -1  # two vehicles still moving on the green lane: keep it
    assert mp([1.0, 0, 0, 0]) == 1  # a gap: the larger pressure gets the green
    assert mp([2.0, 0, 0, 0], in_phase=55.0) == 1  # extension ends a decision before max green
    assert mp([2.0, 0, 0, 0], min_moving=0.0) == 1  # rule off: plain max pressure


def test_actuated_extends_on_short_gaps_and_skips_empty_phases():
    inc = _one_crossing()
    length = np.full(4, 50.0)
    free = np.array([True])
    # 3 vehicles at 10 m/s on 50 m: a gap of 1.7 s < 3 s, the green goes on
    assert (
        kernels.actuated(
            inc,
            np.array([3.0, 4, 0, 0]),
            np.array([10.0, 0, 0, 0]),
            length,
            np.array([0]),
            free,
            3.0,
        )[0]
        == -1
    )
    # one vehicle at 10 m/s: a 5 s gap, gap-out to the phase with a waiting vehicle
    assert (
        kernels.actuated(
            inc,
            np.array([1.0, 4, 0, 0]),
            np.array([10.0, 0, 0, 0]),
            length,
            np.array([0]),
            free,
            3.0,
        )[0]
        == 1
    )
    # coordinated on a 120 s background cycle, phase 0 ending at 60 s, phase 1 at 115 s:
    ends = np.array([[60.0, 115.0]])
    idle = (np.array([0.0, 4, 0, 0]), np.zeros(4), length)  # nobody on phase 0's lane
    assert kernels.actuated(inc, *idle, np.array([0]), free, 3.0, np.array([30.0]), ends)[0] == -1
    assert kernels.actuated(inc, *idle, np.array([0]), free, 3.0, np.array([61.0]), ends)[0] == 1
    # phase 1 gaps out at 90 s: back to phase 0 early; at 116 s it is forced off
    gap = (np.array([4.0, 1, 0, 0]), np.array([0.0, 10, 0, 0]), length)
    assert kernels.actuated(inc, *gap, np.array([1]), free, 3.0, np.array([90.0]), ends)[0] == 0
    busy = (np.array([4.0, 4, 0, 0]), np.array([0.0, 10, 0, 0]), length)
    assert kernels.actuated(inc, *busy, np.array([1]), free, 3.0, np.array([90.0]), ends)[0] == -1
    assert kernels.actuated(inc, *busy, np.array([1]), free, 3.0, np.array([116.0]), ends)[0] == 0
    # nobody waiting elsewhere: the green rests
    assert (
        kernels.actuated(
            inc, np.array([0.0, 0, 0, 0]), np.zeros(4), length, np.array([0]), free, 3.0
        )[0]
        == -1
    )


def test_starvation_guard_serves_the_longest_waiting_phase_with_vehicles():
    inc = _one_crossing()
    free = np.array([True])

    def guard(count, waited, can_switch=free):
        return kernels.starved(inc, np.asarray(count, dtype=float), np.array([0]), can_switch,
                               np.array([waited]), 180.0)[0]

    assert guard([0.0, 3.0, 0, 0], [0.0, 200.0]) == 1  # red for 200 s with vehicles: serve it
    assert guard([0.0, 3.0, 0, 0], [0.0, 100.0]) == -1  # not yet
    assert guard([0.0, 0.0, 0, 0], [0.0, 200.0]) == -1  # nobody waiting
    assert guard([0.0, 3.0, 0, 0], [0.0, 200.0], can_switch=np.array([False])) == -1  # min green runs
