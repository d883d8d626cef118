"""The network model on real-world signal structures, each network built here with netconvert.

Exact values: which program SUMO runs, which signals can be controlled, the
intergreens a program uses and the clearances derived from them, offsets that
reproduce a program, and observation areas over short approach lanes.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import libsumo
import numpy as np
import pytest

from engine.controllers.programs import timing_program
from engine.layout import build_layout
from engine.network import load_network
from engine.safety import SafetyMonitor
from engine.signal_controller import SignalController
from engine.signals import GREEN, YELLOW, with_right_turn_overlaps
from engine.sim import sumo_binary

NODES = """<nodes>
  <node id="C" x="0" y="0" type="traffic_light"/>
  <node id="W" x="-200" y="0"/><node id="E" x="200" y="0"/>
  <node id="N" x="0" y="200"/><node id="S" x="0" y="-200"/>
</nodes>"""


def _edges(arterial_lanes: int, speed: float = 13.0) -> str:
    rows = []
    for a, b, lanes in (("W", "C", arterial_lanes), ("C", "W", 2), ("E", "C", arterial_lanes), ("C", "E", 2),
                        ("N", "C", 1), ("C", "N", 1), ("S", "C", 1), ("C", "S", 1)):
        rows.append(f'<edge id="{a}{b}" from="{a}" to="{b}" numLanes="{lanes}" speed="{speed}"/>')
    return "<edges>" + "".join(rows) + "</edges>"


def netconvert(folder: Path, name: str, nodes: str, edges: str, *options: str, tll: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.nod.xml").write_text(nodes)
    (folder / f"{name}.edg.xml").write_text(edges)
    args = [sumo_binary("netconvert"), "-n", str(folder / f"{name}.nod.xml"), "-e", str(folder / f"{name}.edg.xml"),
            "-o", str(folder / f"{name}.net.xml"), "--no-turnarounds", *options]
    if tll is not None:
        (folder / f"{name}.tll.xml").write_text(tll)
        args += ["-i", str(folder / f"{name}.tll.xml")]
    subprocess.run(args, check=True, capture_output=True)
    return folder / f"{name}.net.xml"


@pytest.fixture(scope="module")
def allred_lefts(tmp_path_factory) -> Path:
    """3-lane arterial (a dedicated left lane), protected lefts and a 2 s all-red (netconvert)."""
    return netconvert(tmp_path_factory.mktemp("allred"), "allred", NODES, _edges(3),
                      "--tls.allred.time", "2", "--tls.left-green.time", "8", "--tls.yellow.time", "3")


def _shown(sim_states: list[str], ix) -> None:
    monitor = SafetyMonitor([ix])
    for t, s in enumerate(sim_states):
        monitor.observe(float(t), {ix.id: s})
    assert not monitor.violations, monitor.violations[:3]


def test_jump_between_greens_that_are_not_neighbours_keeps_the_all_red(allred_lefts):
    ix = load_network(allred_lefts).signals["C"]
    assert ix.n_phases >= 3, [p.state for p in ix.phases]
    assert ix.longest_all_red == 2.0
    for i in range(ix.n_phases):
        for j in range(ix.n_phases):
            if i == j:
                continue
            steps = ix.clearance(i, j)
            a, b = ix.phases[i].state, ix.phases[j].state
            ending = [L for L in range(len(a)) if a[L] in GREEN and b[L] not in GREEN]
            starting = [L for L in range(len(a)) if b[L] in GREEN and a[L] not in GREEN]
            if any(ix.is_conflict(e, s) for e in ending for s in starting):
                # yellow for everything that ends, then at least the network's 2 s all-red
                assert all(steps[0][0][L] in YELLOW for L in ending), (i, j, steps)
                assert sum(d for _, d in steps) >= 3.0 + 2.0, (i, j, steps)
            seq = [a] + [s for s, d in steps for _ in range(int(np.ceil(d)))] + [b]
            _shown(seq * 1, ix)


def test_the_program_sumo_runs_is_read(tmp_path):
    tll = """<tlLogics>
      <tlLogic id="C" type="static" programID="day" offset="0">
        <phase duration="30" state="GGggrrrrrGGggrrrrr"/><phase duration="3" state="yyyyrrrrryyyyrrrrr"/>
        <phase duration="30" state="rrrrGGGggrrrrGGGgg"/><phase duration="3" state="rrrryyyyyrrrryyyyy"/>
      </tlLogic>
      <tlLogic id="C" type="static" programID="0" offset="0"><phase duration="5" state="oooooooooooooooooo"/></tlLogic>
    </tlLogics>"""
    net = netconvert(tmp_path, "two", NODES, _edges(2), tll=tll)
    network = load_network(net)
    assert network.signals["C"].program_id == "day"  # SUMO: the last program loaded
    assert network.controllable == ("C",)
    add = tmp_path / "w.add.xml"
    add.write_text("""<additional>
      <tlLogic id="C" type="static" programID="b" offset="0">
        <phase duration="20" state="rrrrGGGggrrrrGGGgg"/><phase duration="3" state="rrrryyyyyrrrryyyyy"/>
        <phase duration="20" state="GGggrrrrrGGggrrrrr"/><phase duration="3" state="yyyyrrrrryyyyrrrrr"/>
      </tlLogic>
      <tlLogic id="C" type="static" programID="a" offset="0"><phase duration="5" state="oooooooooooooooooo"/></tlLogic>
      <WAUT startTime="0" id="w" startProg="b"><wautSwitch time="100" to="a"/></WAUT>
      <wautJunction wautID="w" junctionID="C"/>
    </additional>""")
    assert load_network(net, [add]).signals["C"].program_id == "b"
    for extra, expected in (((), "day"), ((add,), "b")):
        libsumo.start([sumo_binary(), "-n", str(net), *(["-a", ",".join(map(str, extra))] if extra else []),
                       "--no-step-log", "--no-warnings", "--end", "5"])
        try:
            assert libsumo.trafficlight.getProgram("C") == expected
        finally:
            libsumo.close()


def test_flashing_and_single_green_signals_keep_their_own_program(tmp_path):
    tll = """<tlLogics>
      <tlLogic id="C" type="static" programID="flash" offset="0">
        <phase duration="5" state="oooooooooooooooooo"/></tlLogic>
    </tlLogics>"""
    net = netconvert(tmp_path, "flash", NODES, _edges(2), tll=tll)
    network = load_network(net)
    assert network.controllable == ()
    assert "no green phase" in network.uncontrolled["C"]
    from engine.errors import NetworkError

    with pytest.raises(NetworkError, match="no traffic lights a controller can run"):
        build_layout(net)
    meter = """<tlLogics><tlLogic id="C" type="static" programID="m" offset="0">
      <phase duration="6" state="GGggGGGggGGggGGGgg"/><phase duration="3" state="yyyyyyyyyyyyyyyyyy"/>
      <phase duration="15" state="rrrrrrrrrrrrrrrrrr"/></tlLogic></tlLogics>"""
    net = netconvert(tmp_path / "m", "meter", NODES, _edges(2), tll=meter)
    assert "single green phase" in load_network(net).uncontrolled["C"]


def test_fractional_clearances_run_in_full_and_no_yellow_goes_back_to_green(tmp_path):
    tll = """<tlLogics><tlLogic id="C" type="static" programID="f" offset="0">
      <phase duration="30" state="GGGggrrrrrrGGGggrrrrrr"/><phase duration="2.5" state="yyyyyrrrrrryyyyyrrrrrr"/>
      <phase duration="1.5" state="rrrrrrrrrrrrrrrrrrrrrr"/>
      <phase duration="10" state="GGgrrrrrrrrGGgrrrrrrrr"/><phase duration="2.5" state="yyyrrrrrrrryyyrrrrrrrr"/>
      <phase duration="1.5" state="rrrrrrrrrrrrrrrrrrrrrr"/>
    </tlLogic></tlLogics>"""
    ix = None
    try:
        net = netconvert(tmp_path, "frac", NODES, _edges(3), tll=tll)
        ix = load_network(net).signals["C"]
    except subprocess.CalledProcessError:
        pytest.skip("netconvert refused the hand-written state length")
    assert ix.yellow_time(0) == 2.5 and ix.longest_all_red == 1.5
    log: list[tuple[float, str]] = []
    now = [0.0]
    ctl = SignalController([ix], lambda tid, s: log.append((now[0], s)), min_green=0.0, max_green=60.0)
    ctl.reset(0.0)
    shown = {}
    targets = [1, 0, 1, 0, 1, 0]
    for t in range(0, 60):
        now[0] = float(t)
        ctl.tick(float(t))
        ctl.request(float(t), [targets[t % len(targets)]])  # adversarial, every second
        shown[t] = log[-1][1]
    seq = [shown[t] for t in range(60)]
    # yellow lasts 3 s (2.5 in full), all-red 2 s (1.5 in full): never shorter, never yellow -> green
    monitor = SafetyMonitor([ix], min_green=0.0)
    for t, s in enumerate(seq):
        monitor.observe(float(t), {"C": s})
    assert not monitor.violations, monitor.violations[:3]
    for a, b in zip(seq, seq[1:]):
        assert not any(x in YELLOW and y in GREEN for x, y in zip(a, b)), (a, b)


def test_retiming_a_program_that_begins_with_a_clearance_reproduces_it(tmp_path):
    tll = """<tlLogics><tlLogic id="C" type="static" programID="p" offset="17">
      <phase duration="3" state="yyyyyyyyyyyyyyyyyy"/><phase duration="2" state="rrrrrrrrrrrrrrrrrr"/>
      <phase duration="30" state="GGggrrrrrGGggrrrrr"/><phase duration="3" state="yyyyrrrrryyyyrrrrr"/>
      <phase duration="2" state="rrrrrrrrrrrrrrrrrr"/><phase duration="25" state="rrrrGGGggrrrrGGGgg"/>
    </tlLogic></tlLogics>"""
    net = netconvert(tmp_path, "lead", NODES, _edges(2), tll=tll)
    ix = load_network(net).signals["C"]
    assert [p.program_index for p in ix.phases] == [2, 5]
    assert ix.offset == 17
    assert timing_program(ix, [p.duration for p in ix.phases]) == ix.program


def test_crossings_are_foes_and_overlaps_never_cross_a_green_crossing(tmp_path):
    net = netconvert(tmp_path, "ped", NODES, _edges(2, speed=11.0), "--sidewalks.guess", "--crossings.guess",
                     "--tls.allred.time", "2")
    ix = load_network(net).signals["C"]
    assert len(ix.crossing_links) == 4
    assert any(a in ix.crossing_links or b in ix.crossing_links for a, b in ix.conflicts)
    assert ix.n_phases == 2  # the pedestrian clearance step belongs to the clearance
    over = with_right_turn_overlaps(ix)
    added = 0
    for ph, own in zip(over.phases, ix.phases):
        new = [g for g in range(len(ph.state)) if ph.state[g] in GREEN and own.state[g] not in GREEN]
        added += len(new)
        for g in new:
            assert m_is_right(ix, g)
            assert not any(ix.is_foe(c, g) for c in ix.crossing_links if ph.state[c] in GREEN), ph.state
    # a crossing gets no yellow; its intergreen is the pedestrian clearance: 5 s + yellow 3 s + all-red 2 s
    assert all(ix.yellow_time(c) == 0.0 for c in ix.crossing_links)
    from_crossings = {t for a, _, t in ix.intergreens if a in ix.crossing_links}
    assert from_crossings == {10.0}
    assert max(t for a, _, t in ix.intergreens if a not in ix.crossing_links) == 5.0


def m_is_right(ix, link: int) -> bool:
    return any(m.link == link and m.direction in "rR" for m in ix.movements)


def test_short_approach_lanes_are_seen_up_to_the_detector_range(tmp_path):
    nodes = """<nodes>
      <node id="C" x="0" y="0" type="traffic_light"/><node id="P" x="-1" y="0" type="priority"/>
      <node id="W" x="-45" y="0"/><node id="E" x="200" y="0"/>
      <node id="N" x="0" y="200"/><node id="S" x="0" y="-200"/>
    </nodes>"""
    edges = """<edges>
      <edge id="WP" from="W" to="P" numLanes="1" speed="13"/><edge id="PC" from="P" to="C" numLanes="2" speed="13"/>
      <edge id="CW" from="C" to="W" numLanes="1" speed="13"/>
      <edge id="EC" from="E" to="C" numLanes="1" speed="13"/><edge id="CE" from="C" to="E" numLanes="1" speed="13"/>
      <edge id="NC" from="N" to="C" numLanes="1" speed="13"/><edge id="CN" from="C" to="N" numLanes="1" speed="13"/>
      <edge id="SC" from="S" to="C" numLanes="1" speed="13"/><edge id="CS" from="C" to="S" numLanes="1" speed="13"/>
    </edges>"""
    net = netconvert(tmp_path, "short", nodes, edges)
    network = load_network(net)
    area = {lane: (share, cov) for lane, share, cov in network.approach_area("PC_0", 150.0)}
    assert network.lane_length("PC_0") < 7.5
    assert "WP_0" in area and area["WP_0"][1] == 1.0  # the whole 44 m feeder is in range
    # WP_0 feeds both approach lanes: each counts half, so the signal counts each vehicle once
    other = {lane: share for lane, share, _ in network.approach_area("PC_1", 150.0)}
    assert area["WP_0"][0] + other["WP_0"] == pytest.approx(1.0)
    def seen(layout, area) -> bool:
        return "WP_0" in layout.area_lanes and layout.area_lanes.index("WP_0") in area.col

    wide, stop_line = build_layout(net, None, (), 150.0), build_layout(net, None, (), 0.0)
    assert seen(wide, wide.area) and not seen(stop_line, stop_line.area)
    assert seen(stop_line, stop_line.zone)  # actuation's 30 m zone reaches the feeder too


def test_identical_green_phases_are_one_green(tmp_path):
    """netgenerate's grid corners: GG / yy / rr / GG / yy / rr has nothing to choose between."""
    tll = """<tlLogics><tlLogic id="C" type="static" programID="0" offset="0">
      <phase duration="30" state="GGggGGGggGGggGGGgg"/><phase duration="3" state="yyyyyyyyyyyyyyyyyy"/>
      <phase duration="2" state="rrrrrrrrrrrrrrrrrr"/>
      <phase duration="30" state="GGggGGGggGGggGGGgg"/><phase duration="3" state="yyyyyyyyyyyyyyyyyy"/>
      <phase duration="2" state="rrrrrrrrrrrrrrrrrr"/></tlLogic></tlLogics>"""
    net = netconvert(tmp_path, "alike", NODES, _edges(2), tll=tll)
    network = load_network(net)
    assert network.signals["C"].n_phases == 2
    assert network.controllable == () and "all alike" in network.uncontrolled["C"]


def test_an_unsorted_route_file_is_refused(tmp_path):
    """SUMO skips what comes out of departure order (with a warning cqsignal would hide)."""
    from engine.errors import ConfigError
    from engine.scenario import Scenario

    net = netconvert(tmp_path, "plain", NODES, _edges(2))
    routes = tmp_path / "r.rou.xml"
    routes.write_text("""<routes>
      <vehicle id="a" depart="5"><route edges="WC CE"/></vehicle>
      <vehicle id="b" depart="60"><route edges="WC CE"/></vehicle>
      <flow id="f" begin="0" end="200" vehsPerHour="300" from="WC" to="CE"/>
    </routes>""")
    scenario = Scenario.load(net, routes=[routes], duration=200)
    with pytest.raises(ConfigError, match="element 3 departs at 0 s after one at 60 s"):
        scenario.check_routes()


def test_exclusive_pedestrian_phase_with_right_turn_overlaps_exports_safely(corpus, tmp_path):
    """A plan with right-turn overlaps on a signal with an exclusive pedestrian phase: the exported
    program passes the plan validator, never runs a right turn across a green crossing, and SUMO
    runs it under the monitor without a violation."""
    from engine.controllers.programs import write_tls_programs
    from engine.plan.config import Constraints
    from engine.plan.model import SignalTiming, check_program, program_of

    net, routes, _ = corpus("exclusive_ped")
    ix = next(iter(load_network(net).intersections().values()))
    assert any(all(ph.state[c] in GREEN for c in ix.crossing_links) for ph in ix.phases)
    timing = SignalTiming(ix.id, 0.0, tuple(p.duration for p in ix.phases), right_turn_overlaps=True)
    program = program_of(ix, timing)
    check_program("exclusive_ped", ix, program, Constraints(pedestrian_min_s=None, yellow_s=0.0,
                                                            all_red_s=0.0))
    # every right turn here is a foe of some crossing of the exclusive pedestrian phase, and runs
    # with its own through already: no overlap can be added without crossing a green crossing
    assert program == ix.program
    for state, _ in program:
        for c in ix.crossing_links:
            if state[c] in GREEN:
                assert not any(state[g] in GREEN and ix.is_foe(c, g) for g in range(len(state))
                               if g not in ix.crossing_links), state
    add = write_tls_programs(tmp_path / "plan.add.xml", {ix.id: program}, "plan")
    monitor = SafetyMonitor([load_network(net, [add]).signals[ix.id]])
    libsumo.start([sumo_binary(), "-n", str(net), "-r", str(routes), "-a", str(add),
                   "--no-step-log", "--no-warnings", "--end", "400"])
    try:
        assert libsumo.trafficlight.getProgram(ix.id) == "plan"
        for _ in range(400):
            monitor.observe(libsumo.simulation.getTime(), {ix.id: libsumo.trafficlight.getRedYellowGreenState(ix.id)})
            libsumo.simulationStep()
    finally:
        libsumo.close()
    assert not monitor.violations, monitor.violations[:3]
