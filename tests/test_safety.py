"""Safety as a property: whatever the actions, SUMO's actual signal states stay safe.

The SafetyMonitor reads the state SUMO will show every second and knows nothing
of how it was produced; the first test shows it does catch an unsafe change.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from engine.env import CorridorEnv
from engine.safety import SafetyMonitor


def watched(env: CorridorEnv) -> SafetyMonitor:
    o = env.core.options
    monitor = SafetyMonitor(env.core.layout.intersections, o.min_green, o.max_green)
    env.core.loop.monitor = monitor
    return monitor


def drive(env: CorridorEnv, choose, seed: int = 1) -> tuple[SafetyMonitor, int]:
    """Run a whole episode with ``choose(env, rng) -> action``; return monitor and decisions."""
    monitor = watched(env)
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    done, decisions = False, 0
    while not done:
        _, _, _, done, _ = env.step(choose(env, rng))
        decisions += len(env.signal_ids)
    return monitor, decisions


def random_action(env, rng):
    return rng.integers(0, env.action_space.nvec)


def always_different(env, rng):
    """Adversarial: demand a different green at every decision, even mid-clearance."""
    current = env.core.loop.signals.phase
    return (current + 1 + rng.integers(0, np.maximum(env.action_space.nvec - 1, 1))) % env.action_space.nvec


def test_monitor_catches_a_skipped_clearance(grid):
    net, routes = grid
    env = CorridorEnv(network=str(net), routes=[str(routes)], period=None, duration=60)
    monitor = watched(env)
    env.reset(seed=1)
    for _ in range(3):  # past min green (the first green's start is unknown to the monitor)
        env.step([0, 0, 0, 0])
    env.step([1, 0, 0, 0])  # a proper change: yellow, all-red, then green 1
    env.step([1, 0, 0, 0])
    ix = env.core.layout.intersections[0]
    assert env.core.loop.sim.signal_state(ix.id) == ix.phases[1].state
    env.core.loop.sim.set_state(ix.id, ix.phases[0].state)  # straight back to a conflicting green
    env.step([0, 0, 0, 0])
    env.close()
    rules = {v.rule for v in monitor.violations}
    assert "green ended without yellow" in rules
    assert "min green not held" in rules


@pytest.mark.slow
def test_random_actions_on_the_corridor_are_safe():
    env = CorridorEnv(period="am_peak", duration=1500, delta=3, min_green=10, max_green=40)
    monitor, decisions = drive(env, random_action)
    env.close()
    assert decisions >= 3000
    assert not monitor.violations, monitor.violations[:3]


@pytest.mark.slow
def test_adversarial_actions_on_the_corridor_are_safe():
    env = CorridorEnv(period="pm_peak", duration=900, delta=3, min_green=5, max_green=30)
    monitor, decisions = drive(env, always_different, seed=2)
    env.close()
    assert decisions >= 2000
    assert not monitor.violations, monitor.violations[:3]


@pytest.mark.slow
def test_switch_mode_adversary_on_the_corridor_is_safe():
    env = CorridorEnv(period="am_peak", duration=600, delta=3, action_mode="switch")
    monitor, _ = drive(env, lambda env, rng: np.ones(len(env.signal_ids), dtype=int))
    env.close()
    assert not monitor.violations, monitor.violations[:3]


@pytest.mark.slow
@settings(max_examples=12, deadline=None, phases=[Phase.explicit, Phase.generate])
@given(
    delta=st.integers(3, 9),
    min_green=st.integers(0, 20),
    extra_green=st.integers(0, 40),
    mode=st.sampled_from(["phase", "switch"]),
    adversarial=st.booleans(),
    seed=st.integers(0, 1000),
)
def test_any_timing_options_on_the_all_red_grid_are_safe(grid, delta, min_green, extra_green, mode,
                                                         adversarial, seed):
    net, routes = grid
    env = CorridorEnv(network=str(net), routes=[str(routes)], period=None, duration=400,
                      delta=delta, min_green=min_green, max_green=min_green + 5 + extra_green,
                      action_mode=mode)
    choose = always_different if adversarial and mode == "phase" else random_action
    monitor, _ = drive(env, choose, seed=seed)
    env.close()
    assert not monitor.violations, monitor.violations[:3]
