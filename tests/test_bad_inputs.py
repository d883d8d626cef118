"""Every bad input is one line on stderr and exit status 2, found before work starts.

One parametrised suite over every command (simulate, evaluate, bench, plan, train,
calibrate): NaN and infinite numbers in flags, config keys and env options,
out-of-range seeds, seed counts and durations, a corrupt model, a model path that
is a folder, impossible timing (min green above max green, a decision interval
shorter than the yellow), ``--gui`` without a display, a ``.sumocfg`` with a bad
window, an empty route file and counts above a lane's capacity. Each case asserts
exit 2, exactly one line on stderr, no traceback and no output written.

The environments' misuse (``step()`` before ``reset()`` or after ``close()``, a
missing agent, a non-integer action) is a clear ``gymnasium.error``/``ValueError``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gymnasium
import numpy as np
import pytest
import yaml

from engine.cli import main

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "agents" / "models" / "corridor_ppo"
COUNTS = REPO / "networks" / "chongqing" / "counts" / "am_peak_counts.csv"
NAN, INF = float("nan"), float("inf")


@pytest.fixture(scope="session")
def corrupt_model(tmp_path_factory) -> Path:
    """The shipped model with its weights (policy.pth) cut in half; its meta file intact."""
    folder = tmp_path_factory.mktemp("corrupt")
    path = folder / "corrupt.zip"
    with zipfile.ZipFile(SHIPPED.with_suffix(".zip")) as zin, zipfile.ZipFile(path, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            zout.writestr(item, data[: len(data) // 2] if item.filename == "policy.pth" else data)
    (folder / "corrupt.meta.json").write_text(SHIPPED.with_suffix(".meta.json").read_text())
    return path


@dataclass
class Ctx:
    """Paths a case builds its command from; ``out`` must never be created."""

    tmp: Path
    net: Path
    routes: Path
    corrupt: Path

    @property
    def out(self) -> Path:
        return self.tmp / "out"

    def write(self, name: str, text: str) -> str:
        path = self.tmp / name
        path.write_text(text)
        return str(path)

    def bench(self, **settings) -> list[str]:
        config = {"controllers": ["fixed"], "seeds": 1, "duration": 60,
                  "scenarios": [{"network": str(self.net), "routes": [str(self.routes)]}], **settings}
        return ["bench", self.write("bench.yaml", yaml.safe_dump(config)), "--out", str(self.out),
                "--no-progress"]

    def plan(self, **settings) -> list[str]:
        config = {"network": "chongqing", "periods": ["am_peak"], "method": "webster", **settings}
        return ["plan", self.write("plan.yaml", yaml.safe_dump(config)), "--out", str(self.out)]

    def train(self, *sets: str, **settings) -> list[str]:
        config = yaml.safe_load((REPO / "configs" / "train_corridor.yaml").read_text())
        config.update(output=str(self.out), n_envs=1, **settings)
        path = self.write("train.yaml", yaml.safe_dump(config))
        return ["train", path, "--quiet", *(x for s in sets for x in ("--set", s))]

    def simulate(self, *argv: str) -> list[str]:
        return ["simulate", "--network", str(self.net), "--routes", str(self.routes), "--duration", "60",
                *argv, "--out", str(self.out)]

    def evaluate(self, *argv: str) -> list[str]:
        return ["evaluate", "corridor_ppo", "--seeds", "1", "--duration", "60", *argv,
                "--out", str(self.out)]

    def sumocfg(self, begin: str, end: str) -> list[str]:
        cfg = self.write("bad.sumocfg", f"""<configuration><input><net-file value="{self.net}"/>
            <route-files value="{self.routes}"/></input>
            <time><begin value="{begin}"/><end value="{end}"/></time></configuration>""")
        return ["simulate", "--network", cfg, "--out", str(self.out)]

    def calibrate(self, *argv: str, counts: str | None = None) -> list[str]:
        source = self.write("counts.csv", counts) if counts is not None else str(COUNTS)
        return ["calibrate", source, *argv, "--out", str(self.out)]


@dataclass(frozen=True)
class Case:
    name: str
    argv: Callable[[Ctx], list[str]]
    message: str  # a part of the one line
    subprocess: bool = False  # run as a user does (worker processes, warnings on the real stderr)
    slow: bool = False  # starts worker processes or torch: left out of `make test-quick`


S = Case  # short, for the table below


def _twin(c: Ctx, calibrated: bool = True) -> str:
    """A twin folder of the grid (its routes), as `cqsignal calibrate` writes one (or without its window)."""
    folder = c.tmp / "twin"
    folder.mkdir(exist_ok=True)
    meta = {"net": str(c.net), "routes": [str(c.routes)], "duration": 3600}
    if calibrated:
        meta["calibration"] = {"counts": "counts.csv", "begin": "07:00", "end": "07:45", "warmup_s": 900}
    (folder / "network.yaml").write_text(yaml.safe_dump(meta))
    return str(folder)


def _plan_demand(c: Ctx, network: str = "chongqing", **source) -> list[str]:
    """``plan`` with the am_peak demand from ``source`` (twin or counts and their options)."""
    return c.plan(network=network, demand={"am_peak": source})


CASES = [
    # -- simulate: numbers in flags --------------------------------------------------------------
    S("simulate-duration-nan", lambda c: c.simulate("--duration", "nan"), "duration must be a finite number"),
    S("simulate-duration-inf", lambda c: c.simulate("--duration", "inf"), "duration must be a finite number"),
    S("simulate-duration-1e9", lambda c: c.simulate("--duration", "1e9"), "longer than the limit of 604800 s"),
    S("simulate-begin-nan", lambda c: c.simulate("--begin", "nan"),
      "argument --begin: expected a time (seconds or HH:MM[:SS]), got 'nan'"),
    S("simulate-begin-minutes-99", lambda c: c.simulate("--begin", "25:99"),
      "argument --begin: expected a time (seconds or HH:MM[:SS]), got '25:99'"),
    S("simulate-begin-negative-clock", lambda c: c.simulate("--begin=-0:30"),
      "argument --begin: expected a time (seconds or HH:MM[:SS]), got '-0:30'"),
    S("simulate-end-negative", lambda c: c.simulate("--end=-30"),
      "argument --end: expected a time between 0 and"),
    S("calibrate-begin-minutes-60", lambda c: c.calibrate("--begin", "07:60"),
      "--begin: time '07:60' is neither seconds nor HH:MM[:SS]"),
    S("simulate-scale-inf", lambda c: c.simulate("--scale", "inf"), "scale must be a finite number"),
    S("simulate-seed-2**31", lambda c: c.simulate("--seed", "2147483648"), "outside SUMO's range 0..2147483647"),
    S("simulate-seed-negative", lambda c: c.simulate("--seed", "-1"), "outside SUMO's range"),
    S("simulate-min-green-nan", lambda c: c.simulate("--min-green", "nan"), "min green must be a finite number"),
    S("simulate-max-green-inf", lambda c: c.simulate("--max-green", "inf"), "max green must be a finite number"),
    S("simulate-detector-range-nan", lambda c: c.simulate("--detector-range", "nan"),
      "detector range must be a finite number"),
    S("simulate-max-depart-delay-nan", lambda c: c.simulate("--max-depart-delay", "nan"), "finite number"),
    S("simulate-time-to-teleport-inf", lambda c: c.simulate("--time-to-teleport", "inf"), "finite number"),
    S("simulate-delta-nan", lambda c: c.simulate("--delta", "nan"), "delta must be a whole number"),
    S("simulate-min-above-max-green", lambda c: c.simulate("--min-green", "50", "--max-green", "20"),
      "max_green=20 is smaller than min_green=50"),
    S("simulate-delta-below-yellow", lambda c: c.simulate("--controller", "max_pressure", "--delta", "1"),
      "delta=1s is shorter than the network's yellow (3s)"),
    S("simulate-gui-without-display", lambda c: c.simulate("--gui"), "neither DISPLAY nor WAYLAND_DISPLAY"),
    # -- simulate: files ---------------------------------------------------------------------------
    S("simulate-corrupt-model", lambda c: ["simulate", "--controller", str(c.corrupt), "--duration", "60",
                                           "--out", str(c.out)], "corrupt.zip: the MaskablePPO model's weights "
                                                                 "do not load"),
    S("simulate-model-is-a-folder", lambda c: ["simulate", "--controller", str(c.tmp), "--duration", "60",
                                               "--out", str(c.out)], "a folder, not a model .zip"),
    S("sumocfg-begin-not-a-time", lambda c: c.sumocfg("seven", "600"), "begin must be a time"),
    S("sumocfg-end-not-a-time", lambda c: c.sumocfg("0", "later"), "end must be a time"),
    S("sumocfg-end-before-begin", lambda c: c.sumocfg("600", "300"), "end 300 s is not after begin 600 s"),
    S("empty-route-file", lambda c: ["simulate", "--network", str(c.net), "--routes",
                                     c.write("empty.rou.xml", "<routes/>"), "--out", str(c.out)],
      "empty.rou.xml: route file is empty"),
    # -- evaluate ----------------------------------------------------------------------------------
    S("evaluate-duration-nan", lambda c: c.evaluate("--duration", "nan"), "duration must be a finite number"),
    S("evaluate-huge-seed-count", lambda c: c.evaluate("--seeds", "100000000"),
      "seed count must be between 1 and 10,000"),
    S("evaluate-seeds-beyond-sumo", lambda c: c.evaluate("--first-seed", "2147483647", "--seeds", "2"),
      "beyond SUMO's range"),
    S("evaluate-first-seed-2**31", lambda c: c.evaluate("--first-seed", "2147483648"), "outside SUMO's range"),
    S("evaluate-jobs-0", lambda c: c.evaluate("--jobs", "0"), "jobs must be >= 1"),
    S("evaluate-max-depart-delay-inf", lambda c: c.evaluate("--max-depart-delay", "inf"), "finite number"),
    S("evaluate-corrupt-model", lambda c: ["evaluate", str(c.corrupt), "--seeds", "1", "--duration", "60",
                                           "--out", str(c.out)], "weights do not load", subprocess=True, slow=True),
    # -- Ray addresses that cannot work, refused before any work (no minutes of Ray retries) ---------
    S("bench-ray-empty", lambda c: [*c.bench(), "--ray", ""], "--ray: give an address"),
    S("bench-ray-unreachable-gcs", lambda c: [*c.bench(), "--ray", "127.0.0.1:1"],
      "ray address '127.0.0.1:1': cannot connect"),
    S("evaluate-ray-unreachable-client", lambda c: [*c.evaluate(), "--ray", "ray://127.0.0.1:1"],
      "ray address 'ray://127.0.0.1:1': cannot connect"),
    S("plan-ray-malformed", lambda c: [*c.plan(), "--ray", "bogus"], "expected 'auto', 'local'"),
    # -- bench: config keys, refused when the config loads -----------------------------------------
    S("bench-min-green-nan", lambda c: c.bench(loop={"min_green": NAN}), "loop.min_green: Input should be a finite"),
    S("bench-max-green-inf", lambda c: c.bench(loop={"max_green": INF}), "loop.max_green: Input should be a finite"),
    S("bench-min-above-max-green", lambda c: c.bench(loop={"min_green": 50, "max_green": 20}),
      "max_green 20 s is shorter than min_green 50 s"),
    S("bench-delta-below-yellow", lambda c: c.bench(controllers=["max_pressure"], loop={"delta": 1}),
      "delta=1s is shorter than the network's yellow (3s)"),
    S("bench-model-is-a-folder", lambda c: c.bench(controllers=[{"name": "m", "model": str(c.tmp)}]),
      "is a folder, not a model .zip"),
    S("bench-duration-nan", lambda c: c.bench(duration=NAN), "duration"),
    S("bench-duration-1e9", lambda c: c.bench(duration=1e9), "duration"),
    S("bench-huge-seed-count", lambda c: c.bench(seeds=100_000_000), "seed count must be between 1 and 10,000"),
    S("bench-seed-outside-sumo", lambda c: c.bench(seeds=[1, 2**31]), "outside SUMO's range"),
    S("bench-time-to-teleport-inf", lambda c: c.bench(time_to_teleport=INF), "time_to_teleport"),
    S("bench-scenario-scale-nan", lambda c: c.bench(scenarios=[{"network": str(c.net), "routes": [str(c.routes)],
                                                                "scales": [NAN]}]), "scales.0"),
    # -- plan ---------------------------------------------------------------------------------------
    S("plan-min-green-nan", lambda c: c.plan(constraints={"min_green_s": NAN}), "constraints.min_green_s"),
    S("plan-range-nan", lambda c: c.plan(optimiser={"bias_range": [NAN, 1.0]}), "optimiser.bias_range.0"),
    S("plan-map-value-inf", lambda c: c.plan(constraints={"pedestrian_min_by_signal": {"C1": INF}}),
      "pedestrian_min_by_signal.C1"),
    S("plan-duration-inf", lambda c: c.plan(evaluation={"duration_s": INF}), "evaluation.duration_s"),
    S("plan-duration-1e9", lambda c: c.plan(evaluation={"duration_s": 1e9}), "evaluation.duration_s"),
    S("plan-seed-outside-sumo", lambda c: c.plan(evaluation={"seeds": [2**31]}), "evaluation.seeds.0"),
    S("plan-corrupt-model", lambda c: c.plan() + ["--from-model", str(c.corrupt)], "weights do not load"),
    # -- train: config keys and --set -----------------------------------------------------------------
    S("train-reward-scale-nan-in-file", lambda c: c.train(reward_scale=NAN), "reward_scale"),
    S("train-set-reward-scale-inf", lambda c: c.train("reward_scale=.inf"), "reward_scale"),
    S("train-set-env-min-green-nan", lambda c: c.train("env.min_green=.nan"), "env.min_green must be a finite"),
    S("train-set-env-detector-range-inf", lambda c: c.train("env.detector_range_m=.inf"), "detector_range_m"),
    S("train-set-env-min-above-max", lambda c: c.train("env.min_green=70"), "smaller than min_green=70"),
    S("train-set-hyperparameter-nan", lambda c: c.train("algorithm.hyperparameters.learning_rate=.nan"),
      "hyperparameters.learning_rate: must be a finite number"),
    S("train-set-reward-weight-nan", lambda c: c.train("env.reward={delay: .nan}"), "weight of 'delay'"),
    S("train-set-eval-duration-1e9", lambda c: c.train("eval.duration=1e9"), "eval.duration"),
    S("train-set-seed-2**31", lambda c: c.train("seed=2147483648"), "seed"),
    S("train-env-delta-below-yellow", lambda c: c.train("env.delta=1"),
      "delta=1s is shorter than the network's yellow (3s)", subprocess=True, slow=True),
    # -- calibrate ----------------------------------------------------------------------------------
    S("calibrate-warmup-nan", lambda c: c.calibrate("--warmup", "nan"), "warmup must be a finite number"),
    S("calibrate-warmup-inf", lambda c: c.calibrate("--warmup", "inf"), "warmup must be a finite number"),
    S("calibrate-bus-share-nan", lambda c: c.calibrate("--bus-share", "nan"), "bus share must be a finite"),
    S("calibrate-seed-2**31", lambda c: c.calibrate("--seed", "2147483648"), "outside SUMO's range"),
    S("calibrate-begin-nan", lambda c: c.calibrate("--begin", "nan"), "--begin"),
    S("calibrate-edge-count-above-capacity",
      lambda c: c.calibrate(counts="interval_start,interval_end,edge,to_edge,count\n"
                                   "07:00,07:15,C1N-C1,,223\n07:00,07:15,C1S-C1,,2270\n"),
      "counts.csv:3: count 2270 at edge C1S-C1 in 07:00-07:15 is 3,027 veh/h per lane over 3 lane(s)"),
    S("calibrate-turn-count-above-capacity",
      lambda c: c.calibrate(counts="interval_start,interval_end,edge,to_edge,count\n"
                                   "07:00,07:15,C1-C2.app,C2-C2N,700\n"),
      "counts.csv:2: count 700 at turn C1-C2.app>C2-C2N"),
    # -- plan: a period's demand from a calibrated twin or counts (config demand.<period>) -----------
    S("plan-demand-twin-missing", lambda c: _plan_demand(c, twin=str(c.tmp / "nowhere")),
      "demand.am_peak.twin: "),
    S("plan-demand-counts-missing", lambda c: _plan_demand(c, counts=str(c.tmp / "none.csv")),
      "demand.am_peak.counts: "),
    S("plan-demand-counts-of-another-network", lambda c: _plan_demand(c, str(c.net), counts=str(COUNTS)),
      "does not exist in the network"),
    S("plan-demand-twin-of-another-network", lambda c: _plan_demand(c, twin=_twin(c)),
      "is a twin of another network"),
    S("plan-period-without-demand", lambda c: c.plan(network=str(c.net)), "periods: 'am_peak' has no demand"),
    S("plan-demand-of-an-unplanned-period", lambda c: c.plan(demand={"pm_peak": {"counts": str(COUNTS)}}),
      "demand: period 'pm_peak' is not in periods"),
    S("plan-demand-twin-and-counts", lambda c: _plan_demand(c, twin=str(c.tmp), counts=str(COUNTS)),
      "demand.am_peak: give one of twin"),
    S("plan-demand-seed-of-a-twin", lambda c: _plan_demand(c, twin=str(c.tmp), seed=3),
      "seed: only for counts"),
    S("plan-demand-window-not-a-window", lambda c: _plan_demand(c, counts=str(COUNTS), window="seven"),
      "demand.am_peak.window: expected a time-of-day window"),
    S("plan-demand-window-without-counts", lambda c: _plan_demand(c, counts=str(COUNTS), window="17:00-18:00"),
      "no count lies inside 17:00-18:00"),
    S("plan-demand-twin-without-window", lambda c: _plan_demand(c, str(c.net), twin=_twin(c, calibrated=False)),
      "has no calibration window"),
    S("plan-demand-window-outside-the-twin", lambda c: _plan_demand(c, str(c.net), twin=_twin(c),
                                                                    window="06:00-07:00"),
      "is outside the twin's counts (07:00-07:45)"),
    S("plan-demand-zero-counts", lambda c: _plan_demand(c, counts=c.write(
        "zero.csv", "interval_start,interval_end,edge,to_edge,count\n07:00,07:15,C1N-C1,,0\n")),
      "is 0: period am_peak would have no demand"),
    S("plan-demand-evaluation-longer-than-counts",
      lambda c: c.plan(demand={"am_peak": {"counts": str(COUNTS), "window": "07:00-07:30"}},
                       evaluation={"duration_s": 3600}),
      "evaluation.duration_s: 3600 s is longer than period am_peak's demand: 2700 s"),
]


def _run(case: Case, argv: list[str], ctx: Ctx, capsys) -> tuple[int, str]:
    if not case.subprocess:
        code = main(argv)
        return code, capsys.readouterr().err
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "CQSIGNAL_DEBUG")}
    proc = subprocess.run([sys.executable, "-m", "engine.cli", *argv], capture_output=True, text=True,
                          cwd=ctx.tmp, env=env, timeout=300)
    return proc.returncode, proc.stderr


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name, marks=[pytest.mark.slow] if c.slow else [])
                                  for c in CASES])
def test_bad_input_is_one_line_and_exit_2(case, grid, corrupt_model, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.delenv("CQSIGNAL_DEBUG", raising=False)
    monkeypatch.chdir(tmp_path)  # a default output folder would land here
    net, routes = grid
    ctx = Ctx(tmp_path, net, routes, corrupt_model)
    argv = case.argv(ctx)
    before = set(tmp_path.iterdir())  # the case's own input files
    code, err = _run(case, argv, ctx, capsys)
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1, err
    assert "Traceback" not in err and "internal error" not in err
    assert case.message in lines[0]
    assert "weights_only" not in err  # never the advice to turn safe loading off
    assert not ctx.out.exists(), f"{ctx.out} written"
    assert set(tmp_path.iterdir()) == before


def test_the_suite_covers_every_command(tmp_path):
    ctx = Ctx(tmp_path, tmp_path / "n.net.xml", tmp_path / "r.rou.xml", tmp_path / "m.zip")
    assert {c.argv(ctx)[0] for c in CASES} == {"simulate", "evaluate", "bench", "plan", "train", "calibrate"}
    assert len(CASES) >= 30


def test_gui_without_display_fails_at_once_from_the_shell(tmp_path):
    """The installed command, as a user on a headless machine runs it: one line, no sumo-gui."""
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    proc = subprocess.run([sys.executable, "-m", "engine.cli", "simulate", "--gui", "--duration", "60"],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("cqsignal: error: sumo-gui needs a display, and neither DISPLAY nor "
                                   "WAYLAND_DISPLAY is set (run without --gui, or under xvfb-run)")


def test_capacity_check_scales_with_the_interval_and_lanes():
    from engine.calibrate.counts import Count, check_capacity
    from engine.errors import ConfigError

    five_min = Count(0, 300, "e", None, 200, "c.csv:2")  # 200 in 5 min = 2,400 veh/h: one lane, at the limit
    check_capacity([five_min], {"e": 1})
    with pytest.raises(ConfigError, match=r"c.csv:2: count 201 at edge e"):
        check_capacity([Count(0, 300, "e", None, 201, "c.csv:2")], {"e": 1})
    check_capacity([Count(0, 300, "e", None, 400, "c.csv:2")], {"e": 2})  # two lanes
    check_capacity([Count(0, 300, "x", None, 1e6, "c.csv:2")], {})  # unknown location: not checked


# -- environments: misuse is a clear exception, not an internal error ---------------------------------
@pytest.fixture
def gym_env(grid):
    from engine.env import CorridorEnv

    net, routes = grid
    env = CorridorEnv(network=str(net), routes=[str(routes)], period=None, duration=30)
    yield env
    env.close()


@pytest.fixture
def pz_env(grid):
    from engine.pettingzoo_env import parallel_env

    net, routes = grid
    env = parallel_env(network=str(net), routes=[str(routes)], period=None, duration=30)
    yield env
    env.close()


def test_gym_step_before_reset(gym_env):
    with pytest.raises(gymnasium.error.ResetNeeded, match=r"call reset\(\) first"):
        gym_env.step(gym_env.action_space.sample())
    with pytest.raises(gymnasium.error.ResetNeeded, match=r"action_masks\(\) called before reset"):
        gym_env.action_masks()


def test_gym_step_after_the_episode_ended(gym_env):
    gym_env.reset(seed=1)
    truncated = False
    while not truncated:
        *_, truncated, _ = gym_env.step(np.zeros(len(gym_env.signal_ids), dtype=np.int64))
    with pytest.raises(gymnasium.error.ResetNeeded):
        gym_env.step(np.zeros(len(gym_env.signal_ids), dtype=np.int64))
    with pytest.raises(gymnasium.error.ResetNeeded):
        gym_env.action_masks()


def test_gym_step_reset_and_masks_after_close(gym_env):
    gym_env.reset(seed=1)
    gym_env.close()
    with pytest.raises(gymnasium.error.ClosedEnvironmentError, match=r"step\(\) called after close\(\)"):
        gym_env.step(gym_env.action_space.sample())
    with pytest.raises(gymnasium.error.ClosedEnvironmentError, match=r"reset\(\) called after close\(\)"):
        gym_env.reset(seed=2)
    with pytest.raises(gymnasium.error.ClosedEnvironmentError):
        gym_env.action_masks()
    gym_env.close()  # closing twice is harmless


@pytest.mark.parametrize("action", [0.5, NAN, None, "a"], ids=["half", "nan", "none", "text"])
def test_gym_non_integer_action(gym_env, action):
    gym_env.reset(seed=1)
    with pytest.raises(ValueError, match="actions must be whole numbers"):
        gym_env.step([action] * len(gym_env.signal_ids))


def test_gym_action_outside_the_space(gym_env):
    gym_env.reset(seed=1)
    with pytest.raises(ValueError, match="outside the action space"):
        gym_env.step([0])
    with pytest.raises(ValueError, match="outside the action space"):
        gym_env.step([99] * len(gym_env.signal_ids))
    obs, *_ = gym_env.step(np.ones(len(gym_env.signal_ids)))  # whole floats (1.0) are whole numbers
    assert obs.shape == gym_env.observation_space.shape


def test_pettingzoo_step_before_reset_and_after_close(pz_env):
    with pytest.raises(gymnasium.error.ResetNeeded):
        pz_env.step({a: 0 for a in pz_env.possible_agents})
    pz_env.reset(seed=1)
    pz_env.close()
    with pytest.raises(gymnasium.error.ClosedEnvironmentError):
        pz_env.step({a: 0 for a in pz_env.possible_agents})


def test_pettingzoo_missing_or_unknown_agent(pz_env):
    pz_env.reset(seed=1)
    first, *rest = pz_env.possible_agents
    with pytest.raises(ValueError, match=f"no action for agent '{first}'"):
        pz_env.step({a: 0 for a in rest})
    with pytest.raises(ValueError, match="unknown agent 'X'"):
        pz_env.step({**{a: 0 for a in pz_env.possible_agents}, "X": 0})
    with pytest.raises(ValueError, match="dict of agent -> action"):
        pz_env.step([0] * len(pz_env.possible_agents))


@pytest.mark.parametrize("action", [0.5, NAN, None], ids=["half", "nan", "none"])
def test_pettingzoo_non_integer_action(pz_env, action):
    pz_env.reset(seed=1)
    with pytest.raises(ValueError, match="actions must be whole numbers"):
        pz_env.step({a: action for a in pz_env.possible_agents})


@pytest.mark.parametrize("options, message", [
    ({"min_green": NAN}, "min_green must be a finite number"),
    ({"max_green": INF}, "max_green must be a finite number"),
    ({"min_green": 50, "max_green": 20}, "max_green=20 is smaller than min_green=50"),
    ({"detector_range_m": INF}, "detector_range_m must be a finite number"),
    ({"delta": 2.5}, "delta must be a whole number of seconds >= 1"),
    ({"delta": 1}, "shorter than the network's yellow"),
    ({"reward": {"delay": NAN}}, "weight of 'delay'"),
    ({"scale": NAN}, "scale must be a finite number"),
])
def test_env_options_refused_in_one_line(grid, options, message):
    from engine.env import CorridorEnv
    from engine.errors import ConfigError

    net, routes = grid
    with pytest.raises(ConfigError, match=message) as info:
        CorridorEnv(network=str(net), routes=[str(routes)], period=None, **options)
    assert "\n" not in str(info.value)


def test_env_gui_without_display_is_refused_before_sumo_starts(grid, monkeypatch):
    from engine.env import CorridorEnv
    from engine.errors import SimulationError

    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    net, routes = grid
    with pytest.raises(SimulationError, match="neither DISPLAY nor WAYLAND_DISPLAY"):
        CorridorEnv(render_mode="human", network=str(net), routes=[str(routes)], period=None)
