"""Shared fixtures: small real SUMO networks that the tests build themselves."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from engine.sim import sumo_binary

GRID_ROUTES = """<routes>
  <vType id="car" length="5" minGap="2.5"/>
  <flow id="we" type="car" begin="0" end="3600" from="left0A0" to="B0right0" vehsPerHour="600" departLane="best"/>
  <flow id="ew" type="car" begin="0" end="3600" from="right0B0" to="A0left0" vehsPerHour="500" departLane="best"/>
  <flow id="sn" type="car" begin="0" end="3600" from="bottom0A0" to="A1top0" vehsPerHour="400" departLane="best"/>
  <flow id="ns" type="car" begin="0" end="3600" from="top0A1" to="A0bottom0" vehsPerHour="300" departLane="best"/>
  <flow id="wl" type="car" begin="0" end="3600" from="left0A0" to="A1top0" vehsPerHour="120" departLane="best"/>
  <flow id="sl" type="car" begin="0" end="3600" from="bottom0A0" to="A0left0" vehsPerHour="100" departLane="best"/>
  <flow id="nb" type="car" begin="0" end="3600" from="bottom1B0" to="B1top1" vehsPerHour="300" departLane="best"/>
  <flow id="eb" type="car" begin="0" end="3600" from="left1A1" to="B1right1" vehsPerHour="400" departLane="best"/>
</routes>
"""


def build_grid(folder: Path) -> tuple[Path, Path]:
    """A 2x2 signalised grid with 3 s yellow, 2 s all-red and protected lefts."""
    folder.mkdir(parents=True, exist_ok=True)
    net = folder / "grid.net.xml"
    subprocess.run(
        [sumo_binary("netgenerate"), "--grid", "--grid.number", "2", "--grid.length", "200",
         "--grid.attach-length", "150", "--default.lanenumber", "2", "--tls.guess", "true",
         "--default-junction-type", "traffic_light", "--tls.yellow.time", "3",
         "--tls.allred.time", "2", "--tls.left-green.time", "6", "--no-turnarounds",
         "--seed", "1", "-o", str(net)],
        check=True, capture_output=True,
    )
    routes = folder / "grid.rou.xml"
    routes.write_text(GRID_ROUTES)
    return net, routes


@pytest.fixture(scope="session")
def grid(tmp_path_factory) -> tuple[Path, Path]:
    """(net file, route file) of the small all-red grid."""
    return build_grid(tmp_path_factory.mktemp("grid"))


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    """Issue 14's corpus (tests/netcorpus.py) by name: ``corpus("pedestrian") -> (net, routes, additional)``.

    Each network is built once per test process; ``corpus.names`` lists them.
    """
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    import netcorpus

    root = tmp_path_factory.mktemp("netcorpus")
    cache: dict[str, tuple[Path, Path, tuple[Path, ...]]] = {}

    def build(name: str) -> tuple[Path, Path, tuple[Path, ...]]:
        if name not in cache:
            net, routes, extra = netcorpus.CORPUS[name].build(root / name)
            cache[name] = (net, routes, tuple(extra))
        return cache[name]

    build.names = tuple(netcorpus.CORPUS)
    return build


@pytest.fixture(scope="session")
def make_grid_counts(grid, tmp_path_factory):
    """``make_grid_counts(intervals) -> counts CSV``: 15-minute counts from 07:00 of every entry
    edge and signal movement of the grid, from one SUMO run of its routes (seed 3, the first
    900 s warming the grid up, as real counts start on a loaded network), with 5 % noise."""
    import numpy as np

    from engine.calibrate.counts import Count, write_csv
    from engine.calibrate.measure import simulate_counts
    from engine.calibrate.sampler import read_net
    from engine.network import read_intersections
    from engine.scenario import Scenario

    net, routes = grid
    start = 7 * 3600
    made: dict[int, Path] = {}

    def make(intervals: int) -> Path:
        if intervals not in made:
            scenario = Scenario.load(net, routes=[routes], seed=3, duration=900 * (intervals + 1))
            turns = sorted({(m.from_edge, m.to_edge) for ix in read_intersections(net).values()
                            for m in ix.movements})
            locations = [(e, None) for e in read_net(net).sources] + turns
            probes = [Count(start + 900 * k, start + 900 * (k + 1), e, to, 0.0, "probe")
                      for e, to in locations for k in range(intervals)]
            simulated = simulate_counts(scenario, probes, offset=start - 900)
            rng = np.random.default_rng(5)
            noisy = [Count(c.begin, c.end, c.edge, c.to_edge,
                           float(max(0, round(simulated[c] * (1 + 0.05 * rng.standard_normal())))), "x")
                     for c in probes]
            path = tmp_path_factory.mktemp("counts") / "grid_counts.csv"
            write_csv(noisy, path, comments=["synthetic test counts"])
            made[intervals] = path
        return made[intervals]

    return make


def build_cross(folder: Path, arm_m: float = 200.0, *extra: str, all_red_s: int = 2) -> Path:
    """One signalised cross (node ``A0``), ``arm_m`` arms of 2 lanes, 3 s yellow and ``all_red_s`` all-red: two
    green phases; ``extra`` netgenerate options (e.g. sidewalks). Writes ``folder/cross.net.xml`` (again if it
    exists)."""
    folder.mkdir(parents=True, exist_ok=True)
    net = folder / "cross.net.xml"
    subprocess.run([sumo_binary("netgenerate"), "--grid", "--grid.number", "1", "--grid.attach-length", f"{arm_m:g}",
                    "--default.lanenumber", "2", "--tls.guess", "true", "--default-junction-type", "traffic_light",
                    "--tls.yellow.time", "3", "--tls.allred.time", str(all_red_s), "--no-turnarounds", "--seed", "1",
                    *extra, "-o", str(net)], check=True, capture_output=True)
    return net


CROSS_ENTRIES = ("bottom0A0", "left0A0", "right0A0", "top0A0")  # the cross's entry edges
PERIOD_WINDOWS = {"am_peak": "07:00-09:00", "midday": "11:00-14:00", "pm_peak": "17:00-19:00",
                  "night": "22:00-06:00", "holiday_evening": "19:00-21:00"}


def twin_town(root: Path, *netgenerate: str, entry_veh_h: float = 600.0, plan_duration_s: float = 60.0,
              all_red_s: int = 2) -> dict:
    """The twin's test town: a network folder under ``root/net`` (the cross of :func:`build_cross` with
    ``netgenerate`` options, 250 m arms; ``entry_veh_h`` on every arm in every period, 10/80/10 % left,
    through, right; ``all_red_s`` of the network's own all-red), a plan config (3 s yellow, 2 s all-red) and
    its Webster time-of-day plan for ``pm_peak`` (``cqsignal plan``).

    Returns {root, folder, plan_config, plans}.
    """
    import yaml

    from engine.cli import main as cli_main

    folder = root / "net"
    build_cross(folder, 250.0, *netgenerate, all_red_s=all_red_s)
    turns = {a: [0.1, 0.8, 0.1] for a in "WENS"}
    demand = {"periods": {p: {"window": w, "phf": 0.95, "peak_quarter": 2, "bus_share": 0.0,
                              "entries": {e: entry_veh_h for e in CROSS_ENTRIES}, "turns": {"A0": turns}}
                          for p, w in PERIOD_WINDOWS.items()}}
    (folder / "demand.yaml").write_text(yaml.safe_dump(demand))
    (folder / "network.yaml").write_text("net: cross.net.xml\ndemand: demand.yaml\n")
    plan_cfg = {"network": str(folder), "periods": ["pm_peak"], "schedule": ["pm_peak"], "method": "webster",
                "design_flow": "hourly",
                "constraints": {"cycle_min_s": 40, "cycle_max_s": 120, "min_green_s": 7, "pedestrian_min_s": None},
                "corridor": {"signals": ["A0"]},
                "evaluation": {"duration_s": plan_duration_s, "seeds": [1], "workers": 1},
                "report": {"enabled": False}}
    (root / "plan.yaml").write_text(yaml.safe_dump(plan_cfg))
    assert cli_main(["plan", str(root / "plan.yaml"), "--out", str(root / "plan"), "-q", "--no-report"]) == 0
    return {"root": root, "folder": folder, "plan_config": root / "plan.yaml", "plans": root / "plan" / "plan.json"}


def twin_config(town: dict, folder: Path, name: str = "cfg", **changes) -> Path:
    """A valid twin config of a :func:`twin_town` written to ``folder/name.yaml``: 17:00-18:00 of
    ``pm_peak``, decisions every 600 s over 900 s, no screening, the ``last`` forecast, no baselines;
    ``changes`` merged in (a dict value updates that section)."""
    import yaml

    cfg = {"name": name, "network": str(town["folder"]), "plans": str(town["plans"]),
           "plan_config": str(town["plan_config"]), "seed": 3, "history_seed": 100,
           "field": {"period": "pm_peak", "window": "17:00-18:00"},
           "twin": {"interval_s": 600, "horizon_s": 900, "screening": "none", "forecast": "last"},
           "baselines": []}
    for key, value in changes.items():
        cfg[key] = {**cfg.get(key, {}), **value} if isinstance(value, dict) else value
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path
