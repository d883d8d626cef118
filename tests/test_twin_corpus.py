"""The twin's plan switching on the corpus networks (issue 17, "any network").

The predictive twin changes a running fixed-time plan every decision; the
:class:`PlanFollower` makes each change through the :class:`SignalController`.
On every corpus network with a signal to control (protected and permissive
lefts, netconvert's programs without all-red, crossings and an exclusive walk
phase, joined junctions, several programs, a flashing signal beside a normal
one, programs beginning with a clearance, fractional clearances, ``u``/``s``/``o``
states, shared link indices) random plans (cycles, splits, offsets, right-turn
overlaps on and off) are switched at random times while the independent safety
monitor watches every second. The signals are taken as plans run them
(:func:`engine.signals.with_minimum_clearances`: 3 s yellow, 2 s all-red at least),
so the monitor also holds the follower to those clearances.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_corpus import built

from engine.loop import ControlLoop, LoopOptions
from engine.plan.model import PeriodPlan, SignalTiming, program_of, shares_to_greens
from engine.safety import SafetyMonitor
from engine.signal_controller import SignalController
from engine.signals import with_minimum_clearances
from engine.twin.closed_loop import _all_phase_sets
from engine.twin.follower import PlanFollower

NAMES = ["allred_lefts", "pedestrian", "exclusive_ped", "joined", "two_programs", "flash_beside",
         "offset_yellow_first", "fractional", "osu_states", "shared_links", "protected_permissive"]
MIN_GREEN = 7.0
SECONDS = 900


@pytest.fixture(scope="module")
def corpus_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("twin_corpus")


def _random_plan(ixs, rng: np.random.Generator, k: int) -> PeriodPlan:
    """One common cycle; per signal random splits (each green at least MIN_GREEN), offset and overlaps."""
    setup = []
    for ix in ixs:
        overlaps = bool(rng.integers(2))
        ones = SignalTiming(ix.id, 0.0, (1.0,) * ix.n_phases, right_turn_overlaps=overlaps)
        lost = sum(d for _, d in program_of(ix, ones)) - ix.n_phases  # the clearances of that phase set
        setup.append((ix, overlaps, lost))
    cycle = float(max(lost + MIN_GREEN * ix.n_phases for ix, _, lost in setup) + rng.integers(5, 60))
    timings = {}
    for ix, overlaps, lost in setup:
        greens = shares_to_greens(rng.uniform(0.3, 2.0, ix.n_phases), cycle - lost, [MIN_GREEN] * ix.n_phases)
        timings[ix.id] = SignalTiming(ix.id, float(rng.integers(0, int(cycle))), greens, overlaps)
    return PeriodPlan(period=f"p{k}", method="random", cycle=cycle, timings=timings)


@pytest.mark.parametrize("name", NAMES)
def test_random_plan_changes_are_safe_on_the_corpus(corpus_root: Path, name: str, tmp_path: Path):
    entry = built(name, corpus_root)
    scenario = entry.scenario(duration=SECONDS, seed=2)
    loop = ControlLoop(scenario, LoopOptions(min_green=MIN_GREEN, max_green=400, max_ped_wait=10_000),
                       workdir=tmp_path)
    ixs = [with_minimum_clearances(ix, 3.0, 2.0)[0] for ix in loop.layout.intersections]
    rng = np.random.default_rng(sum(map(ord, name)))
    plans = [_random_plan(ixs, rng, k) for k in range(5)]
    follower = PlanFollower(ixs, plans[0])
    loop.signals = SignalController(follower.phases(), loop.sim.set_state, MIN_GREEN, 400, 10_000)
    loop.monitor = SafetyMonitor([_all_phase_sets(ix) for ix in ixs], min_green=MIN_GREEN)
    times = list(np.cumsum(rng.uniform(10, 120, size=40)))
    switched = 0
    try:
        loop.reset()
        start = loop.time
        while not loop.done:
            now = loop.time
            while times and times[0] <= now - start:
                times.pop(0)
                follower.set_plan(plans[int(rng.integers(len(plans)))])
                switched += 1
            follower.apply(now, loop.signals)
            loop.advance(seconds=1)
        kpis = loop.finish()
    finally:
        loop.close()
    assert switched >= 8
    assert not loop.monitor.violations, loop.monitor.violations[:3]
    assert kpis.arrived > 0
