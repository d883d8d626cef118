"""Every heuristic on real SUMO runs of the corridor, under the safety monitor; model loading."""

from __future__ import annotations

import json
import sys
import types

import gymnasium as gym
import numpy as np
import pytest

from engine.cli import main
from engine.controllers import CONTROLLERS, make_controller
from engine.controllers.heuristics import Webster
from engine.controllers.loading import (
    DEFAULT_HEURISTIC,
    check_model,
    expected_spaces,
    load_controller,
)
from engine.errors import ConfigError
from engine.layout import build_layout
from engine.loop import ControlLoop, LoopOptions
from engine.runner import run_controller
from engine.safety import SafetyMonitor
from engine.scenario import Scenario

HEURISTICS = ("fixed", "webster", "max_pressure", "greedy", "actuated", "sotl")
OPTIONS = LoopOptions(min_green=10.0, max_green=60.0)


@pytest.fixture(scope="module")
def corridor() -> Scenario:
    return Scenario.load("chongqing", period="am_peak", seed=3, duration=300)


@pytest.mark.slow
@pytest.mark.parametrize("name", HEURISTICS)
def test_controller_runs_the_corridor_without_a_safety_violation(corridor, name):
    layout = build_layout(corridor.net_file)
    controller = make_controller(name, corridor)
    assert controller.name == name
    if name == "fixed":  # the network's own programs: held to the greens they are written with
        greens = [p.duration for ix in layout.intersections for p in ix.phases]
        monitor = SafetyMonitor(layout.intersections, min(greens), max(greens))
    else:
        monitor = SafetyMonitor(layout.intersections, OPTIONS.min_green, OPTIONS.max_green)
    kpis = run_controller(corridor, controller, OPTIONS, monitor=monitor)
    violations = monitor.violations
    if (
        not controller.adaptive
    ):  # with an offset, SUMO starts a program part-way into a green at t=0
        first_cycle = 180.0
        violations = [
            v for v in violations if not (v.rule == "min green not held" and v.time < first_cycle)
        ]
    assert violations == []
    assert kpis.arrived > 200  # traffic flowed through the corridor
    assert kpis.teleports == 0
    # unwatched, the loop steps straight to each signal event: the very same run
    unwatched = run_controller(corridor, make_controller(name, corridor), OPTIONS)
    assert unwatched.to_dict() == kpis.to_dict()


def test_webster_programs_are_what_sumo_runs(corridor):
    layout = build_layout(corridor.net_file)
    controller = Webster(corridor)
    loop = ControlLoop(corridor, LoopOptions(adaptive=False))
    try:
        controller.setup(loop)
        loop.reset()
        api = loop.sim.api
        for ix in layout.intersections:
            timing = controller.timings[ix.id]
            assert api.trafficlight.getProgram(ix.id) == "webster"
            (logic,) = [
                lg
                for lg in api.trafficlight.getAllProgramLogics(ix.id)
                if lg.programID == "webster"
            ]
            durations = [ph.duration for ph in logic.phases]
            assert sum(durations) == pytest.approx(timing.cycle)
            assert 60 <= timing.cycle <= 180 and min(timing.greens) >= OPTIONS.min_green
            assert timing.cycle == controller.timings["C1"].cycle  # one common cycle
            # the greens, in phase order, are Webster's; the clearances are the network's
            assert [
                d
                for d, ph in zip(durations, logic.phases)
                if ph.state in {p.state for p in ix.phases}
            ] == list(timing.greens)
    finally:
        loop.close()


def test_every_heuristic_is_registered():
    make_controller("fixed", Scenario.of_network())  # loads the built-ins
    assert set(HEURISTICS) <= set(CONTROLLERS)
    with pytest.raises(ConfigError, match="unknown controller 'nope'"):
        make_controller("nope", Scenario.of_network())


# -- loading a model, or falling back ------------------------------------------------------------


def _write_model(folder, scenario: Scenario, fingerprint: str | None = None, n_actions=None):
    """A real (untrained) SB3 model with the env's spaces on ``scenario``, and its meta file."""
    from stable_baselines3 import PPO

    meta = {
        "fingerprint": fingerprint or scenario.fingerprint(),
        "signals": list(build_layout(scenario.net_file).ids),
        "observation_shape": None,
        "n_actions": None,
        "algorithm": "PPO",
        "env_options": {"network": "chongqing", "action_mode": "phase"},
    }
    (obs_shape, _), (acts, _) = expected_spaces(scenario, meta["signals"], meta["env_options"])

    class Dummy(gym.Env):
        observation_space = gym.spaces.Box(0.0, 1.0, obs_shape, np.float32)
        action_space = gym.spaces.MultiDiscrete(list(acts))

        def reset(self, seed=None, options=None):
            return np.zeros(obs_shape, np.float32), {}

        def step(self, action):
            return np.zeros(obs_shape, np.float32), 0.0, True, False, {}

    PPO("MlpPolicy", Dummy(), n_steps=8, batch_size=8, policy_kwargs={"net_arch": [8]}).save(
        folder / "policy.zip"
    )
    meta["observation_shape"] = list(obs_shape)
    meta["n_actions"] = list(n_actions if n_actions is not None else acts)
    (folder / "policy.meta.json").write_text(json.dumps(meta))
    return folder / "policy.zip"


class _StubPolicy:
    """Stands in for agents.policy.PolicyController: records what loading passed it."""

    def __init__(self, model_path, meta, scenario):
        self.model_path, self.meta, self.scenario = model_path, meta, scenario
        self.name, self.adaptive = "policy", True


@pytest.fixture
def stub_policy(monkeypatch):
    module = types.ModuleType("agents.policy")
    module.PolicyController = _StubPolicy
    monkeypatch.setitem(sys.modules, "agents.policy", module)


def test_no_model_gives_the_default_heuristic_and_says_so():
    lines = []
    controller = load_controller(None, Scenario.of_network(), say=lines.append)
    assert controller.name == DEFAULT_HEURISTIC == "max_pressure"
    assert len(lines) == 1 and "no model given" in lines[0]


@pytest.mark.slow
def test_a_matching_model_is_chosen(tmp_path, corridor, stub_policy):
    # This checks the selection logic: the stub records that the policy class got the model.
    path = _write_model(tmp_path, corridor)
    lines = []
    controller = load_controller(str(path), corridor, say=lines.append)
    assert isinstance(controller, _StubPolicy)
    assert controller.model_path == path and controller.meta["algorithm"] == "PPO"
    assert len(lines) == 1 and "policy.zip" in lines[0] and "PPO" in lines[0]


def test_a_model_for_another_network_is_refused_or_falls_back(tmp_path, grid, stub_policy):
    corridor = Scenario.load("chongqing", period="am_peak", duration=60)
    net, routes = grid
    other = Scenario.load(net, routes=[routes], duration=60)
    path = _write_model(tmp_path, corridor)
    with pytest.raises(ConfigError, match="trained on another network"):
        load_controller(str(path), other)
    lines = []
    controller = load_controller(str(path), other, fallback=True, say=lines.append)
    assert controller.name == "max_pressure"
    assert len(lines) == 1 and "fallback" in lines[0] and "another network" in lines[0]


def test_meta_that_disagrees_with_the_model_or_the_env_is_refused(tmp_path, corridor):
    path = _write_model(tmp_path, corridor, n_actions=[2] * 7)  # as if trained in switch mode
    with pytest.raises(ConfigError, match="environment has"):
        check_model(path, corridor)
    meta_file = tmp_path / "policy.meta.json"
    meta = json.loads(meta_file.read_text())
    meta["env_options"]["action_mode"] = "switch"  # now the env agrees, but the zip does not
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match="disagree with policy.meta.json"):
        check_model(path, corridor)
    del meta["fingerprint"]
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match="missing key 'fingerprint'"):
        check_model(path, corridor)
    with pytest.raises(ConfigError, match="model file not found"):
        check_model(tmp_path / "absent.zip", corridor)


def test_cli_refuses_a_foreign_model_in_one_line_and_falls_back_on_request(tmp_path, grid, capsys):
    net, routes = grid
    path = _write_model(tmp_path, Scenario.load(net, routes=[routes], duration=60))
    code = main(["simulate", "--controller", str(path), "--duration", "30", "--period", "am_peak"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "another network" in err[0]
    code = main(
        [
            "simulate",
            "--controller",
            str(path),
            "--duration",
            "30",
            "--period",
            "am_peak",
            "--fallback",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0
    assert "controller: max_pressure (fallback" in captured.err
    assert "max_pressure" in captured.out
