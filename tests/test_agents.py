"""The training VecEnv and the policy controller's pieces, on the small grid."""

from __future__ import annotations

import numpy as np
import pytest

from agents.policy import state_masks
from agents.vec_env import SignalVecEnv
from agents.workers import episode_draw, pack_masks
from engine.env_core import EnvCore, env_options


def grid_options(grid, **kw):
    net, routes = grid
    return env_options(network=str(net), routes=[str(routes)], period=None, **kw)


def legal(masks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.array([rng.choice(np.flatnonzero(m)) for m in masks])


def test_shared_vec_env_one_sub_env_per_signal_with_auto_reset(grid):
    venv = SignalVecEnv(grid_options(grid, duration=20, reward_share=1.0), n_workers=2, shared=True, seed=1)
    try:
        n_signals = venv.n_signals
        assert venv.num_envs == 2 * n_signals
        obs = venv.reset()
        assert obs.shape == (venv.num_envs, venv.shape.width)
        masks = np.stack(venv.env_method("action_masks"))
        assert masks.shape == (venv.num_envs, int(venv.shape.n_actions.max()))
        for k, n in enumerate(np.tile(venv.shape.n_actions, 2)):
            assert not masks[k, n:].any()  # padding is never allowed
        rng = np.random.default_rng(0)
        for _ in range(4):  # 20 s at 5 s decisions
            obs, rewards, dones, infos = venv.step(legal(venv.action_masks(), rng))
            assert rewards.shape == (venv.num_envs,) and np.all(rewards <= 0)
            per_network = rewards.reshape(2, n_signals)  # reward_share=1: every signal gets the mean
            np.testing.assert_allclose(per_network, per_network[:, :1].repeat(n_signals, axis=1), rtol=1e-6)
        assert dones.all()
        assert all(info["TimeLimit.truncated"] and info["terminal_observation"].shape == obs[0].shape
                   for info in infos)
        kpis = [info for info in infos if "kpis" in info]
        assert len(kpis) == 2  # once per network episode, not once per signal
        assert {info["demand"]["episode"] for info in kpis} == {0}
        obs, *_ = venv.step(legal(venv.action_masks(), rng))  # the next episode runs
        assert np.isfinite(obs).all()
        state = venv.worker_state()
        assert [w["episode"] for w in state] == [2, 2]
    finally:
        venv.close()


def test_single_agent_layout_matches_the_gymnasium_env(grid):
    from engine.env import CorridorEnv

    net, routes = grid
    env = CorridorEnv(network=str(net), routes=[str(routes)], period=None, duration=20)
    venv = SignalVecEnv(grid_options(grid, duration=20), n_workers=1, shared=False, seed=1)
    try:
        assert venv.observation_space.shape == env.observation_space.shape
        assert list(venv.action_space.nvec) == list(env.action_space.nvec)
        obs = venv.reset()
        assert obs.shape == (1,) + env.observation_space.shape
        assert venv.action_masks().shape == (1, int(env.action_space.nvec.sum()))
    finally:
        venv.close()
        env.close()


def test_episode_seeds_are_reproducible_and_below_the_training_limit():
    draws = [episode_draw(7, w, e, ("am_peak", "pm_peak"), 100_000) for w in range(2) for e in range(50)]
    assert draws == [episode_draw(7, w, e, ("am_peak", "pm_peak"), 100_000) for w in range(2) for e in range(50)]
    assert all(0 <= s < 100_000 for s, _ in draws)
    assert {p for _, p in draws} == {"am_peak", "pm_peak"}
    assert len({s for s, _ in draws}) > 90


@pytest.mark.parametrize("mode", ["phase", "switch"])
def test_policy_masks_from_state_equal_the_env_masks(grid, mode):
    """The controller's masks (from the traffic state) are the env's (from the SignalController)."""
    core = EnvCore(grid_options(grid, duration=120, action_mode=mode))
    try:
        core.reset(seed=3, period=None)
        width = int(core.n_actions.max())
        rng = np.random.default_rng(1)
        seen_held = False
        for _ in range(24):
            env_masks = pack_masks(core.masks(), width, shared=True)
            mine = state_masks(core.loop.state(), mode, width)
            np.testing.assert_array_equal(mine, env_masks)
            seen_held |= bool((env_masks.sum(axis=1) == 1).any())
            core.step(legal(env_masks, rng))
        assert seen_held
    finally:
        core.close()


@pytest.fixture(scope="module")
def shared_venv(grid):
    venv = SignalVecEnv(grid_options(grid, duration=40), n_workers=1, shared=True, seed=2)
    yield venv
    venv.close()


@pytest.mark.parametrize("name, hyper", [
    ("PPO", {"n_steps": 8, "batch_size": 16, "n_epochs": 1}),
    ("A2C", {"n_steps": 4}),
    ("DQN", {"learning_starts": 8, "buffer_size": 500, "batch_size": 8, "train_freq": 2}),
])
def test_each_algorithm_learns_and_checkpoints_on_the_shared_env(shared_venv, tmp_path, name, hyper):
    import torch

    from agents.checkpoint import load_checkpoint, save_checkpoint
    from agents.config import algorithm_class

    cls = algorithm_class(name)
    model = cls("MlpPolicy", shared_venv, seed=0, device="cpu", policy_kwargs={"net_arch": [8]}, **hyper)
    model.learn(32)
    folder = save_checkpoint(tmp_path, model, {"note": name})
    expected = torch.rand(3)  # drawn from the generator state the checkpoint holds
    restored, state = load_checkpoint(folder, cls, shared_venv)
    assert state["note"] == name and restored.num_timesteps == model.num_timesteps
    torch.testing.assert_close(torch.rand(3), expected)
    if name == "DQN":
        assert restored.replay_buffer.size() == model.replay_buffer.size() > 0
    for p, q in zip(model.policy.parameters(), restored.policy.parameters()):
        torch.testing.assert_close(p, q)


def test_unwatched_terms_charge_queues_upstream_and_vehicles_waiting_to_enter():
    """Corridor approaches are watched by their observation areas; the rest of each link and the
    vehicles not yet inserted are charged to the first signal they reach, as reward terms of
    the env itself (reported in info)."""
    core = EnvCore(env_options(period="am_peak", duration=600, action_mode="switch", detector_range_m=0,
                               reward={"delay": 1.0, "upstream_delay": 1.0, "entry_wait": 1.0}))
    try:
        core.reset(seed=5, period="am_peak")
        api = core.loop.sim.api
        pending, info = [], {}
        for _ in range(80):  # never switching by choice: queues back up within minutes
            _, rewards, _, info = core.step(np.zeros(7, dtype=np.int64))
            pending = api.simulation.getPendingVehicles()
            if len(pending) >= 5:
                break
        assert len(pending) >= 5
        terms = info["reward_terms"]
        assert set(terms) == {"delay", "upstream_delay", "entry_wait"}
        np.testing.assert_allclose(rewards, sum(terms.values()))
        per_s = 100.0 / core.options.delta  # back to vehicle-seconds per second
        feeders = {e: k for e, k, _, _ in core.unwatched.feeders()}
        assert feeders["W-C1"] == 0 and feeders["C1-C2"] == 1 and feeders["E-C7"] == 6
        assert not set(feeders) & set(core.unwatched.edge_signal)  # only edges the reward does not watch
        upstream = sum(w * api.edge.getLastStepVehicleNumber(e) * max(0.0, 1 - api.edge.getLastStepMeanSpeed(e) / v)
                       for e, _, v, w in core.unwatched.feeders())
        assert all(w == 1.0 for *_, w in core.unwatched.feeders())  # stop-line areas: no upstream edge observed
        assert -terms["entry_wait"].sum() * per_s == pytest.approx(len(pending))
        assert -terms["upstream_delay"].sum() * per_s == pytest.approx(upstream)
        assert -terms["entry_wait"][0] > 0  # the west entry feeds C1 first
    finally:
        core.close()


def test_upstream_delay_leaves_out_the_road_the_observation_areas_see():
    """With 150 m areas the delay term already sees part of the upstream link sections: those are
    weighted by the part outside the areas, so no road is charged twice."""
    core = EnvCore(env_options(period="am_peak", duration=60, detector_range_m=150,
                               reward={"delay": 1.0, "upstream_delay": 1.0}))
    try:
        core.reset(seed=5, period="am_peak")
        net = core.loop.layout
        weights = {e: w for e, _, _, w in core.unwatched.feeders()}
        lengths = {lane.rsplit("_", 1)[0]: core.loop.sim.api.lane.getLength(lane) for lane in net.area_lanes}
        for edge, w in weights.items():
            assert 0.0 < w <= 1.0
            if edge in lengths and w < 1.0:  # partly inside an area: the rest is what is charged
                assert w == pytest.approx(1.0 - core.unwatched._observed[edge])
        assert any(w < 1.0 for w in weights.values())  # 150 m reaches past the approach bays
    finally:
        core.close()


def test_training_workers_use_the_env_reward_itself(grid):
    """One implementation: the vec env's rewards are EnvCore's (shared as the options say), times
    reward_scale, step for step on the same demand."""
    from agents.workers import episode_draw
    from agents import TRAIN_SEED_LIMIT

    options = grid_options(grid, duration=60, reward={"delay": 1.0, "upstream_delay": 0.5, "entry_wait": 2.0},
                           reward_share=0.3)
    venv = SignalVecEnv(options, n_workers=1, shared=True, seed=4, reward_scale=0.1)
    core = EnvCore(options)
    try:
        venv.reset()
        seed, period = episode_draw(4, 0, 0, options.periods(), TRAIN_SEED_LIMIT)
        core.reset(seed, period)
        for step in range(12):
            actions = np.array([int(np.flatnonzero(m)[step % m.sum()]) for m in core.masks()])
            _, expected, _, _ = core.step(actions)
            _, got, _, _ = venv.step(actions)
            np.testing.assert_allclose(got, expected * 0.1, rtol=1e-5, atol=1e-7)
    finally:
        venv.close()
        core.close()


def test_teacher_actions_and_returns():
    from agents.pretrain import discounted_returns
    from agents.workers import teacher_actions

    phase = np.array([0, 2, 1])
    np.testing.assert_array_equal(teacher_actions(np.array([-1, 3, 1]), phase, "phase"), [0, 3, 1])
    np.testing.assert_array_equal(teacher_actions(np.array([-1, 3, 1]), phase, "switch"), [0, 1, 0])
    rewards = np.array([[1.0], [1.0], [1.0], [1.0]])
    dones = np.array([[False], [True], [False], [False]])
    np.testing.assert_allclose(discounted_returns(rewards, dones, 0.5)[:, 0], [1.5, 1.0, 1.5, 1.0])


def test_shipped_model_runs_by_name_on_the_corridor():
    from agents.policy import PolicyController
    from engine.controllers.loading import load_controller
    from engine.loop import LoopOptions
    from engine.runner import run_controller
    from engine.scenario import Scenario

    scenario = Scenario.load("chongqing", period="am_peak", seed=2, duration=60).with_options(emissions=False)
    lines: list[str] = []
    controller = load_controller("corridor_ppo", scenario, say=lines.append)
    assert isinstance(controller, PolicyController) and "fits chongqing" in lines[0]
    kpis = run_controller(scenario, controller, LoopOptions())
    assert kpis.trips > 0 and kpis.teleports == 0
