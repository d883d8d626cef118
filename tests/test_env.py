"""The Gymnasium and PettingZoo environments on real SUMO runs."""

from __future__ import annotations

import os
import resource
import subprocess

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from pettingzoo.test import parallel_api_test

import engine
from engine.env import CorridorEnv
from engine.errors import ConfigError, NetworkError, SimulationError
from engine.sim import sumo_binary


def grid_env(grid, **kw) -> CorridorEnv:
    net, routes = grid
    return CorridorEnv(network=str(net), routes=[str(routes)], period=None, **kw)


def test_gymnasium_checker_passes(grid):
    env = grid_env(grid, duration=120)
    check_env(env, skip_render_check=True)
    env.close()


def test_registered_id_builds_the_corridor():
    env = gym.make(engine.ENV_ID, period="am_peak", duration=60)
    obs, info = env.reset(seed=1)
    assert env.observation_space.contains(obs)
    assert env.unwrapped.signal_ids == tuple(f"C{i}" for i in range(1, 8))
    assert info["period"] == "am_peak"
    env.close()


def test_pettingzoo_parallel_api(grid):
    net, routes = grid
    env = engine.parallel_env(network=str(net), routes=[str(routes)], period=None, duration=200)
    parallel_api_test(env, num_cycles=60)
    env.close()


def run_episode(env: CorridorEnv, seed: int, actions_seed: int) -> tuple[list, list, dict]:
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(actions_seed)
    observations, rewards, done, info = [obs], [], False, {}
    while not done:
        obs, r, term, trunc, info = env.step(rng.integers(0, env.action_space.nvec))
        observations.append(obs)
        rewards.append(r)
        done = term or trunc
    return observations, rewards, info


@pytest.mark.slow
def test_same_seed_and_actions_give_the_same_trajectory():
    env = CorridorEnv(period="am_peak", duration=300)
    a = run_episode(env, seed=7, actions_seed=3)
    b = run_episode(env, seed=7, actions_seed=3)
    c = run_episode(env, seed=8, actions_seed=3)
    env.close()
    assert all(np.array_equal(x, y) for x, y in zip(a[0], b[0]))
    assert a[1] == b[1]
    assert a[2]["kpis"] == b[2]["kpis"]
    assert a[2]["kpis"] != c[2]["kpis"], "another seed must give another demand sample"


def test_episode_ends_truncated_with_kpis(grid):
    env = grid_env(grid, duration=100)
    env.reset(seed=1)
    steps, trunc = 0, False
    while not trunc:
        _, _, term, trunc, info = env.step(env.action_space.sample())
        assert term is False
        steps += 1
    assert steps == 20
    kpis = info["kpis"]
    assert kpis["mean_delay_s"] >= 0 and kpis["trips"] > 0
    with pytest.raises(ConfigError, match="reset"):
        env.step(env.action_space.sample())
    env.close()


def test_switch_mode_and_masks(grid):
    env = grid_env(grid, duration=60, action_mode="switch", min_green=10)
    env.reset(seed=1)
    mask = env.action_masks()
    assert mask.tolist() == [True, False] * 4, "advance is masked until min green has passed"
    env.step([1, 1, 1, 1])  # ignored: min green not reached
    assert env.core.loop.signals.phase.tolist() == [0, 0, 0, 0]
    env.step([0, 0, 0, 0])
    assert env.action_masks().tolist() == [True, True] * 4
    env.step([1, 0, 0, 0])
    assert env.core.loop.signals.phase.tolist() == [1, 0, 0, 0]
    env.close()


@pytest.mark.parametrize("reward", ["delay", "queue", "pressure", "co2", {"delay": 1.0, "queue": 0.5}])
def test_every_reward_runs_and_is_non_positive(grid, reward):
    env = grid_env(grid, duration=60, reward=reward)
    env.reset(seed=2)
    for _ in range(12):
        _, r, _, _, _ = env.step(env.action_space.sample())
        assert r <= 0.0
    env.close()


def test_observation_bounds_hold_under_heavy_demand(grid):
    env = grid_env(grid, duration=300, scale=3.0)
    obs, _ = env.reset(seed=1)
    done = False
    while not done:
        obs, _, _, done, _ = env.step(np.zeros(4, dtype=int))
        assert env.observation_space.contains(obs)
    env.close()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"reward": "happiness"}, "unknown reward 'happiness'"),
        ({"observation": ["queue", "colour"]}, "unknown feature 'colour'"),
        ({"delta": 2}, "shorter than the network's yellow"),
        ({"action_mode": "jump"}, "action_mode 'jump'"),
        ({"min_green": 30, "max_green": 20}, "smaller than min_green"),
        ({"decision_interval": 5}, "unknown environment option 'decision_interval'"),
    ],
)
def test_bad_options_are_named(grid, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        grid_env(grid, duration=60, **kwargs)


def test_network_without_signals_is_refused(tmp_path):
    net = tmp_path / "plain.net.xml"
    subprocess.run([sumo_binary("netgenerate"), "--grid", "--grid.number", "2", "-o", str(net)],
                   check=True, capture_output=True)
    routes = tmp_path / "r.rou.xml"
    routes.write_text("<routes/>")
    with pytest.raises(NetworkError, match="no traffic lights"):
        CorridorEnv(network=str(net), routes=[str(routes)], period=None)


def test_backlog_is_bounded_and_counted(grid):
    """A policy that never serves the side streets cannot grow an unbounded queue outside."""
    env = grid_env(grid, duration=600, scale=4.0, max_depart_delay=30, max_green=600)
    env.reset(seed=1)
    done = False
    while not done:
        _, _, _, done, info = env.step(np.zeros(4, dtype=int))
    kpis = info["kpis"]
    assert kpis["never_inserted"] > 0
    assert kpis["mean_delay_s"] > 0
    env.close()


BROKEN_ROUTES = """<routes>
  <vehicle id="ok" depart="0"><route edges="left0A0 A0B0"/></vehicle>
  <vehicle id="later" depart="300"><route edges="left0A0 A0B0"/></vehicle>
  <vehicle id="bad" depart="400"><route edges="left0A0 no_such_edge"/></vehicle>
</routes>
"""


@pytest.mark.parametrize("mode", ["raise", "end_episode"])
def test_sumo_failure_mid_episode(grid, tmp_path, mode):
    net, _ = grid
    routes = tmp_path / "broken.rou.xml"
    routes.write_text(BROKEN_ROUTES)
    env = CorridorEnv(network=str(net), routes=[str(routes)], period=None, duration=600,
                      on_sumo_error=mode)
    env.reset(seed=1)
    if mode == "raise":
        with pytest.raises(SimulationError, match="no_such_edge"):
            for _ in range(120):
                env.step(env.action_space.sample())
    else:
        trunc, info = False, {}
        while not trunc:
            _, _, _, trunc, info = env.step(env.action_space.sample())
        assert "no_such_edge" in info["error"]
        obs, _ = env.reset(seed=1)  # starts cleanly after the failure
        assert env.observation_space.contains(obs)
        env.step(env.action_space.sample())
    env.close()


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.slow
def test_hundred_resets_leak_neither_memory_nor_files(grid):
    env = grid_env(grid, duration=10)
    for i in range(10):  # warm up allocator and caches
        env.reset(seed=i)
        env.step(env.action_space.sample())
    fds = _open_fds()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for i in range(100):
        env.reset(seed=i)
        env.step(env.action_space.sample())
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss) / 1024
    assert _open_fds() <= fds
    assert grown_mb < 50, f"peak memory grew {grown_mb:.0f} MB over 100 resets"
    env.close()
