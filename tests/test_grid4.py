"""The embedded 4 x 4 grid (networks/grid4): rebuild, signal structures, routing on a grid, safety."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

import networks
from engine.controllers import make_controller
from engine.demand import MIN_ROUTE_P, _graph, _route_table, load_demand, movement_flows
from engine.layout import build_layout
from engine.loop import LoopOptions
from engine.runner import run_controller
from engine.safety import SafetyMonitor
from engine.scenario import Scenario
from networks.build import build, program_problems
from tests.test_network import summary

INFO = networks.manifest("grid4")
NET = Path(INFO["net"])
CORNERS, INNER = {"A1", "A4", "D1", "D4"}, {"B2", "B3", "C2", "C3"}


def test_rebuild_is_equivalent_and_safe(tmp_path: Path) -> None:
    assert summary(build("grid4", tmp_path)) == summary(NET)
    assert program_problems(NET) == []


def test_three_signal_structures() -> None:
    """Corners: 2 stages, lefts yield ('g'); inner: 4 stages, lefts protected; the rest: 3 stages."""
    import sumolib

    net = sumolib.net.readNet(str(NET), withPrograms=True)
    assert sorted(t.getID() for t in net.getTrafficLights()) == sorted(INFO["signals"])
    for tls in net.getTrafficLights():
        phases = tls.getPrograms()["0"].getPhases()
        greens = [p for p in phases if p.name and ":" not in p.name]
        want = 2 if tls.getID() in CORNERS else 4 if tls.getID() in INNER else 3
        assert len(greens) == want, tls.getID()
        assert sum(p.duration for p in phases) == 90
        permissive = any("g" in p.state for p in greens)
        assert permissive == (tls.getID() not in INNER), tls.getID()
        for in_lane, out_lane, index in tls.getConnections():
            conn = next(c for c in in_lane.getOutgoing() if c.getToLane() == out_lane)
            if any(p.state[index] == "g" for p in phases):
                assert conn.getDirection() == "l", (tls.getID(), index)  # only lefts yield


def test_grid_routes_never_drive_an_edge_twice() -> None:
    """On a grid, chained turning shares can loop (four rights); such turns are dropped and each
    entry's route probabilities still sum to 1, with the lefts near their 12 % share."""
    demand = load_demand(INFO["demand"])
    table = _route_table(demand, NET, "am_peak")
    assert len(table) == 16
    for entry, _, routes in table:
        assert sum(p for _, p in routes) == pytest.approx(1.0)
        assert all(len(set(edges)) == len(edges) for edges, _ in routes), entry
        assert min(p for _, p in routes) >= MIN_ROUTE_P * 0.99
    # a loop is possible: from WA-A1, right at A2, B2 and B1 would lead back onto A1-A2
    loop = ("WA-A1", "A1-A2", "A2-B2", "B2-B1", "B1-A1", "A1-A2")
    assert all(edges[: len(loop)] != loop for _, _, rs in table for edges, _ in rs)
    graph = _graph(NET)
    flows = movement_flows(demand, NET, "am_peak")
    by_turn: Counter = Counter()
    for (a, b), f in flows.items():
        if len(graph.successors[a]) > 1:
            by_turn[graph.successors[a][b]] += f
    assert by_turn["left"] / sum(by_turn.values()) == pytest.approx(0.12, abs=0.01)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["fixed", "max_pressure", "grid4_ppo"])
def test_grid_runs_safely_under_the_monitor(name: str) -> None:
    scenario = Scenario.load("grid4", period="am_peak", seed=5, duration=600)
    layout = build_layout(scenario.net_file)
    options = LoopOptions(min_green=10.0, max_green=60.0)
    if name == "fixed":
        greens = [p.duration for ix in layout.intersections for p in ix.phases]
        monitor = SafetyMonitor(layout.intersections, min(greens), max(greens))
    else:
        monitor = SafetyMonitor(layout.intersections, options.min_green, options.max_green)
    if name.endswith("_ppo"):  # the shipped model, by name, with its deployment guard
        from engine.controllers.loading import load_controller

        controller = load_controller(name, scenario, say=lambda _: None)
    else:
        controller = make_controller(name, scenario)
    kpis = run_controller(scenario, controller, options, monitor=monitor)
    assert monitor.violations == []
    assert kpis.arrived > 300 and kpis.teleports == 0


def test_bad_lefts_in_programs_yaml_is_named(tmp_path: Path) -> None:
    from engine.errors import ConfigError
    from networks.build import _permissive

    assert _permissive(tmp_path / "p.yaml", "A1", {"NS": "permissive"}) == frozenset({"NS"})
    assert _permissive(tmp_path / "p.yaml", "A1", "protected") == frozenset()
    with pytest.raises(ConfigError, match=r"p.yaml: signals.A1.lefts must be"):
        _permissive(tmp_path / "p.yaml", "A1", {"NE": "permissive"})


def test_evaluate_reports_each_period_paired_by_seed(tmp_path: Path) -> None:
    """``evaluate`` with two periods: each period's delay difference is the mean over its seeds of
    model minus baseline, recomputed here from the runs it wrote."""
    import json

    from engine.cli import main

    out = tmp_path / "eval.json"
    assert main(["evaluate", "grid4_ppo", "--period", "am_peak", "--period", "pm_peak", "--seeds", "2",
                 "--duration", "120", "--jobs", "2", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert set(data["by_period"]) == {"am_peak", "pm_peak"}
    for period, row in data["by_period"].items():
        runs = [r for r in data["runs"] if r["period"] == period]
        model = {r["seed"]: r["mean_delay_s"] for r in runs if r["label"] != "max_pressure"}
        base = {r["seed"]: r["mean_delay_s"] for r in runs if r["label"] == "max_pressure"}
        assert len(model) == len(base) == row["n"] == 2
        diffs = [model[s] - base[s] for s in model]
        assert row["difference_s"] == pytest.approx(sum(diffs) / 2, abs=1e-3)
        assert row["low_s"] < row["difference_s"] < row["high_s"]
