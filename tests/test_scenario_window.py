"""The time window of every scenario form, and the scenario inputs refused in one line.

``--begin``/``--end``/``--duration`` with ``.net.xml --routes``, ``begin:`` in a
``network.yaml``, a ``.sumocfg``'s begin and end (and its max-depart-delay and
time-to-teleport) in simulate, bench, the environments and evaluate; a fractional
duration ends; bad numbers, an empty route file, out-of-range seeds and huge
durations or seed counts are one line on stderr and exit status 2.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from engine.cli import main

GRID_ROUTES = ["left0A0 A0B0 B0right0", "right0B0 B0A0 A0left0", "bottom0A0 A0A1 A1top0",
               "top0A1 A1A0 A0bottom0"]


def seven_routes(path: Path, begin: float = 25200, end: float = 25200 + 900, headway: float = 3.0) -> int:
    """Vehicles from 07:00 (or ``begin``) on the grid, one every ``headway`` s."""
    lines = ["<routes>"] + [f'  <route id="r{k}" edges="{e}"/>' for k, e in enumerate(GRID_ROUTES)]
    t, i = begin, 0
    while t < end - 1e-9:
        lines.append(f'  <vehicle id="v{i}" route="r{i % 4}" depart="{t:.2f}" departLane="best"/>')
        t, i = t + headway, i + 1
    path.write_text("\n".join(lines + ["</routes>"]) + "\n")
    return i


def simulate(capsys, out: Path, *argv: str) -> dict:
    code = main(["simulate", *argv, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 0, err
    return json.loads((out / "kpis.json").read_text())


def one_line_error(capsys, argv: list[str]) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.fixture(scope="module")
def seven(grid, tmp_path_factory) -> tuple[Path, Path]:
    net, _ = grid
    routes = tmp_path_factory.mktemp("seven") / "seven.rou.xml"
    seven_routes(routes)
    return net, routes


# -- the window of every form ----------------------------------------------------------------
def test_net_and_routes_with_begin_and_end(capsys, tmp_path, seven):
    net, routes = seven
    k = simulate(capsys, tmp_path / "a", "--network", str(net), "--routes", str(routes),
                 "--begin", "07:00", "--end", "07:05")
    assert (k["begin_s"], k["duration_s"], k["end_s"]) == (25200, 300, 25500)
    assert k["trips"] == 100 and k["arrived"] > 0


def test_sumocfg_begin_end_and_sumo_options_are_honoured(capsys, tmp_path, seven):
    net, routes = seven
    cfg = tmp_path / "seven.sumocfg"
    cfg.write_text(f"""<configuration>
  <input><net-file value="{net}"/><route-files value="{routes}"/></input>
  <time><begin value="7:00:00"/><end value="25500"/></time>
  <processing><max-depart-delay value="120"/><time-to-teleport value="-1"/></processing>
</configuration>""")
    k = simulate(capsys, tmp_path / "a", "--network", str(cfg))
    assert (k["begin_s"], k["duration_s"]) == (25200, 300) and k["trips"] == 100
    assert k["max_depart_delay_s"] == 120 and k["time_to_teleport_s"] is None
    k = simulate(capsys, tmp_path / "b", "--network", str(cfg), "--max-depart-delay", "never",
                 "--time-to-teleport", "200")
    assert k["max_depart_delay_s"] is None and k["time_to_teleport_s"] == 200


def test_network_yaml_begin(capsys, tmp_path, seven):
    net, routes = seven
    folder = tmp_path / "twin"
    folder.mkdir()
    (folder / "network.yaml").write_text(yaml.safe_dump(
        {"net": str(net), "routes": [str(routes)], "begin": "07:00", "duration": 240}))
    k = simulate(capsys, tmp_path / "a", "--network", str(folder))
    assert (k["begin_s"], k["duration_s"], k["trips"]) == (25200, 240, 80)


def test_period_demand_moved_to_begin(capsys, tmp_path):
    k = simulate(capsys, tmp_path / "a", "--period", "am_peak", "--begin", "25200", "--duration", "60")
    assert k["begin_s"] == 25200 and k["trips"] > 50


@pytest.mark.parametrize("duration", ["7.5", "0.4"])
def test_fractional_duration_ends(duration, tmp_path, grid):
    net, routes = grid
    proc = subprocess.run([sys.executable, "-m", "engine.cli", "simulate", "--network", str(net),
                           "--routes", str(routes), "--duration", duration, "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "kpis.json").read_text())["duration_s"] == float(duration)


def test_env_honours_begin_and_states_its_bound(seven):
    from engine.env import CorridorEnv

    net, routes = seven
    env = CorridorEnv(network=str(net), routes=[str(routes)], period=None, begin=25200, duration=12.5)
    _, info = env.reset(seed=1)
    assert info["max_depart_delay_s"] == 300 and info["time_to_teleport_s"] == 300
    assert env.core.loop.time == 25200
    done, steps = False, 0
    while not done:
        _, _, _, done, info = env.step(env.action_space.sample())
        steps += 1
    assert steps == 3 and info["kpis"]["begin_s"] == 25200 and info["kpis"]["max_depart_delay_s"] == 300
    env.close()


def test_evaluate_job_honours_begin(seven):
    from agents.evaluate import Job, run_job

    net, routes = seven
    row = run_job(Job(controller="fixed", network=str(net), period=None, seed=1, duration=120,
                      routes=(str(routes),), begin=25200, max_depart_delay=None))
    assert row["begin_s"] == 25200 and row["trips"] == 40 and row["max_depart_delay_s"] is None


def test_bench_takes_the_sumocfg_window_and_options(tmp_path, seven):
    from benchmarks.compare import plan_runs
    from benchmarks.config import parse_config

    net, routes = seven
    cfg = tmp_path / "seven.sumocfg"
    cfg.write_text(f"""<configuration><input><net-file value="{net}"/><route-files value="{routes}"/>
        </input><time><begin value="25200"/><end value="25800"/></time></configuration>""")
    config = parse_config({"controllers": ["fixed"], "seeds": 1, "max_depart_delay": 300,
                           "scenarios": [{"network": str(cfg)},
                                         {"network": str(net), "routes": [str(routes)], "label": "x",
                                          "begin": "07:00", "end": 25260, "time_to_teleport": -1}]},
                          "bench.yaml")
    a, b = plan_runs(config, tmp_path).specs
    assert (a.begin, a.duration, a.max_depart_delay, a.time_to_teleport) == (25200, 600, 300, 300)
    assert (b.begin, b.duration, b.max_depart_delay, b.time_to_teleport) == (25200, 60, 300, -1)


# -- bad scenario input: one line, exit 2 ----------------------------------------------------
@pytest.mark.parametrize("argv, message", [
    (["--duration", "nan"], "finite"),
    (["--duration", "inf"], "finite"),
    (["--duration", "1e9"], "limit of 604800 s"),
    (["--begin", "nan"], "time"),
    (["--end=-inf"], "time"),
    (["--scale", "nan"], "scale"),
    (["--scale", "inf"], "scale"),
    (["--seed", "2147483648"], "outside SUMO's range 0..2147483647"),
    (["--seed", "-1"], "outside SUMO's range"),
    (["--begin", "100", "--end", "50"], "end 50 s must be after begin 100 s"),
    (["--duration", "60", "--end", "60"], "not allowed with argument"),
])
def test_bad_window_or_number_is_one_line(capsys, argv, message):
    assert message in one_line_error(capsys, ["simulate", *argv])


def test_huge_seed_count_for_evaluate_is_refused_at_parse_time(capsys):
    assert "seed count" in one_line_error(capsys, ["evaluate", "no_such_model", "--seeds", "100000000"])


@pytest.mark.parametrize("begin, end, message", [
    ("seven", "25800", "begin must be a time"),
    ("25200", "later", "end must be a time"),
    ("25800", "25200", "end 25200 s is not after begin 25800 s"),
])
def test_bad_sumocfg_window(capsys, tmp_path, seven, begin, end, message):
    net, routes = seven
    cfg = tmp_path / "bad.sumocfg"
    cfg.write_text(f"""<configuration><input><net-file value="{net}"/><route-files value="{routes}"/>
        </input><time><begin value="{begin}"/><end value="{end}"/></time></configuration>""")
    err = one_line_error(capsys, ["simulate", "--network", str(cfg)])
    assert message in err and "bad.sumocfg" in err


@pytest.mark.parametrize("text", ["", "<routes/>", "<routes>\n</routes>\n"])
def test_empty_route_file(capsys, tmp_path, grid, text):
    net, _ = grid
    routes = tmp_path / "empty.rou.xml"
    routes.write_text(text)
    err = one_line_error(capsys, ["simulate", "--network", str(net), "--routes", str(routes)])
    assert "empty.rou.xml: route file is empty" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("settings, message", [
    ({"seeds": 100_000_000}, "seed count must be between 1 and 10,000"),
    ({"seeds": [1, 2**31]}, "outside SUMO's range"),
    ({"duration": float("nan")}, "duration"),
    ({"duration": 1e9}, "duration"),
    ({"scales": [float("inf")]}, "scales"),
    ({"max_depart_delay": float("nan")}, "max_depart_delay"),
])
def test_bad_bench_numbers_refused_when_the_config_loads(capsys, tmp_path, grid, settings, message):
    net, routes = grid
    config = {"controllers": ["fixed"], "seeds": 1,
              "scenarios": [{"network": str(net), "routes": [str(routes)]}], **settings}
    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump(config))
    err = one_line_error(capsys, ["bench", str(path), "--out", str(tmp_path / "out")])
    assert message in err
    assert not (tmp_path / "out").exists()


def test_bench_scenario_without_vehicles_in_its_window_is_refused_at_config_time(capsys, tmp_path, seven):
    net, routes = seven
    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump({"controllers": ["fixed"], "seeds": 1, "duration": 300,
                                    "scenarios": [{"network": str(net), "routes": [str(routes)]}]}))
    err = one_line_error(capsys, ["bench", str(path), "--out", str(tmp_path / "out")])
    assert "no vehicle departs in the window 0-300 s" in err
    assert not (tmp_path / "out").exists()


def test_env_refuses_nan_options(grid):
    from engine.env import CorridorEnv
    from engine.errors import ConfigError

    net, routes = grid
    for bad in ({"duration": float("nan")}, {"begin": float("inf")}, {"max_depart_delay": float("nan")},
                {"time_to_teleport": float("inf")}, {"duration": 1e9}):
        with pytest.raises(ConfigError):
            CorridorEnv(network=str(net), routes=[str(routes)], period=None, **bad)
