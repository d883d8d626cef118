"""Webster's method, the flows it is fed with, and the programs it produces."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import pytest

from engine.controllers.demand_flows import route_file_flows, scenario_flows
from engine.controllers.programs import timing_program, tls_xml
from engine.errors import ConfigError
from engine.scenario import Scenario
from engine.network import read_intersections
from engine.signals import Intersection, Movement, Phase
from engine.webster import intersection_flow_ratios, lost_time, webster_cycle, webster_timing


def test_two_phase_example_matches_the_formula_by_hand():
    # y = 0.40 and 0.30, L = 10 s: C0 = (1.5*10 + 5) / (1 - 0.7) = 20 / 0.3 = 66.67 s,
    # effective green 56.67 s shared 4:3 -> 32.38 s and 24.29 s.
    t = webster_timing([0.40, 0.30], lost_time_s=10.0, min_green=5.0, whole_seconds=False)
    assert t.webster_cycle == pytest.approx(200.0 / 3.0)
    assert t.cycle == pytest.approx(200.0 / 3.0)
    assert t.greens == pytest.approx((4.0 / 7.0 * 170.0 / 3.0, 3.0 / 7.0 * 170.0 / 3.0))
    assert t.flow_ratio == pytest.approx(0.7)
    assert t.greens[0] == pytest.approx(32.381, abs=1e-3)


def test_whole_seconds_keep_the_cycle():
    t = webster_timing([0.40, 0.30], lost_time_s=10.0, min_green=5.0)
    # 32.38 + 24.29 = 56.67 -> 57 s: floors 32 + 24, the spare second to the larger remainder (.38)
    assert t.greens == (33.0, 24.0)
    assert t.cycle == 67.0


def test_cycle_is_clamped_and_min_green_wins():
    low = webster_timing([0.05, 0.05], lost_time_s=10.0, min_cycle=60, min_green=10)
    assert low.webster_cycle < 60 and low.cycle == 60
    saturated = webster_timing([0.6, 0.5], lost_time_s=10.0, max_cycle=180)
    assert saturated.saturated and math.isinf(saturated.webster_cycle) and saturated.cycle == 180
    # four phases of at least 40 s cannot fit in a 60 s cycle: the cycle grows to fit them
    wide = webster_timing([0.1, 0.1, 0.1, 0.1], lost_time_s=20.0, max_cycle=60, min_green=40)
    assert wide.greens == (40.0,) * 4 and wide.cycle == 180


def test_min_and_max_green_redistribute_the_rest():
    t = webster_timing(
        [0.5, 0.02, 0.2], lost_time_s=15.0, min_green=10, max_green=60, whole_seconds=False
    )
    assert t.greens[1] == pytest.approx(10.0)
    assert all(10.0 - 1e-9 <= g <= 60.0 + 1e-9 for g in t.greens)
    assert sum(t.greens) == pytest.approx(t.cycle - 15.0)
    # the two free phases keep Webster's proportion between them
    assert t.greens[0] / t.greens[2] == pytest.approx(0.5 / 0.2)


def test_bad_inputs_are_one_line_errors():
    for args in (([], 10.0), ([0.3, -0.1], 10.0), ([0.3], -1.0), ([0.3, float("nan")], 10.0)):
        with pytest.raises(ConfigError):
            webster_timing(*args)
    assert webster_cycle(1.2, 10.0) == math.inf


def _two_phase_intersection() -> Intersection:
    moves = (
        Movement(0, "W_0", "E_0", "W", "E", "s"),
        Movement(1, "W_1", "E_1", "W", "E", "s"),
        Movement(2, "W_1", "N_0", "W", "N", "l"),
        Movement(3, "S_0", "N_0", "S", "N", "s"),
        Movement(4, "S_0", "E_0", "S", "E", "r"),
    )
    program = (
        ("GGGrr", 30.0),
        ("yyyrr", 3.0),
        ("rrrrr", 2.0),
        ("rrrGG", 20.0),
        ("rrryy", 3.0),
        ("rrrrr", 1.0),
    )
    phases = (Phase(0, "GGGrr", 30.0, (0, 1, 2)), Phase(3, "rrrGG", 20.0, (3, 4)))
    return Intersection(
        "J",
        "0",
        program,
        0.0,
        phases,
        moves,
        frozenset(),
        ("W_0", "W_1", "S_0"),
        ("E_0", "E_1", "N_0"),
    )


def test_flow_ratios_per_phase_by_hand():
    ix = _two_phase_intersection()
    flows = {("W", "E"): 1200.0, ("W", "N"): 240.0, ("S", "N"): 300.0, ("S", "E"): 150.0}
    y = intersection_flow_ratios(ix, flows)
    # phase 0: approach W, 2 lanes with a through movement: (1200 + 240) / (2 * 1600)
    # phase 1: approach S, 1 lane: (300 + 150) / 1600
    assert y == pytest.approx([1440.0 / 3200.0, 450.0 / 1600.0])
    assert lost_time(ix) == 3.0 + 2.0 + 3.0 + 1.0


def test_programs_keep_the_network_clearances():
    ix = _two_phase_intersection()
    program = timing_program(ix, [41.0, 17.0])
    assert program == (
        ("GGGrr", 41.0),
        ("yyyrr", 3.0),
        ("rrrrr", 2.0),
        ("rrrGG", 17.0),
        ("rrryy", 3.0),
        ("rrrrr", 1.0),
    )
    root = ET.fromstring(tls_xml({"J": program}, "webster"))
    (logic,) = root.findall("tlLogic")
    assert logic.get("programID") == "webster"
    assert [p.get("duration") for p in logic.findall("phase")] == ["41", "3", "2", "17", "3", "1"]
    with pytest.raises(ConfigError):
        timing_program(ix, [41.0])


def test_route_file_flows_count_vehicles_flows_and_trips(grid, tmp_path):
    net, _ = grid
    routes = tmp_path / "mixed.rou.xml"
    routes.write_text("""<routes>
  <route id="r" edges="left0A0 A0B0 B0right0"/>
  <routeDistribution id="d">
    <route id="d1" edges="left0A0 A0A1 A1top0" probability="3"/>
    <route id="d2" edges="left0A0 A0B0 B0right0" probability="1"/>
  </routeDistribution>
  <vehicle id="v0" route="r" depart="10"/>
  <vehicle id="v1" route="r" depart="5000"/>
  <vehicle id="v2" depart="20"><route edges="bottom0A0 A0A1 A1top0"/></vehicle>
  <flow id="f0" route="d" begin="0" end="1800" vehsPerHour="400"/>
  <flow id="f1" from="top0A1" to="A0bottom0" begin="0" end="3600" period="12"/>
  <flow id="f2" route="r" begin="1800" end="3600" number="100"/>
  <flow id="f3" route="r" begin="0" end="3600" probability="0.01"/>
  <trip id="t0" from="right0B0" to="A0left0" depart="30"/>
</routes>
""")
    flows = route_file_flows([routes], net, 0.0, 3600.0)
    # through left0A0 -> A0B0: v0 + f0 (400/h for half an hour, a quarter on d2) + f2 + f3 (36/h)
    assert flows[("left0A0", "A0B0")] == pytest.approx(1 + 200 * 0.25 + 100 + 36)
    assert flows[("left0A0", "A0A1")] == pytest.approx(200 * 0.75)
    assert flows[("bottom0A0", "A0A1")] == pytest.approx(1)
    assert flows[("top0A1", "A1A0")] == pytest.approx(300)  # routed by shortest path
    assert flows[("A1A0", "A0bottom0")] == pytest.approx(300)
    assert flows[("right0B0", "B0A0")] == pytest.approx(1)
    half = route_file_flows([routes], net, 0.0, 1800.0)  # veh/h over the first half hour
    assert half[("left0A0", "A0A1")] == pytest.approx(300)


def test_route_file_errors_name_the_file(grid, tmp_path):
    net, _ = grid
    bad = tmp_path / "bad.rou.xml"
    bad.write_text('<routes><vehicle id="x" route="nowhere" depart="0"/></routes>')
    with pytest.raises(ConfigError, match="bad.rou.xml.*unknown route 'nowhere'"):
        route_file_flows([bad], net, 0.0, 3600.0)
    bad.write_text(
        '<routes><flow id="f" from="left0A0" to="nope" begin="0" end="10" period="1"/></routes>'
    )
    with pytest.raises(ConfigError, match="nope"):
        route_file_flows([bad], net, 0.0, 3600.0)
    bad.write_text("<routes><flow")
    with pytest.raises(ConfigError, match="bad.rou.xml"):
        route_file_flows([bad], net, 0.0, 3600.0)


def test_scenario_flows_from_route_files_and_webster_timing_on_the_grid(grid):
    net, routes = grid
    scenario = Scenario.load(net, routes=[routes], duration=3600)
    flows = scenario_flows(scenario)
    assert flows[("left0A0", "A0B0")] == pytest.approx(600)  # fixture flow "we" at 600 veh/h
    for ix in read_intersections(net).values():
        y = intersection_flow_ratios(ix, flows)
        assert len(y) == ix.n_phases and all(0 <= v < 1 for v in y)
        t = webster_timing(y, lost_time(ix))
        assert 60 <= t.cycle <= 180 and min(t.greens) >= 10
