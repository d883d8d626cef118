"""Every reader of a network goes through the network model (issue 14, items 1 and 5).

Demand (road graph, flow ratios, v/c), calibration's road graph, the plan
(corridor, approaches, phase names, export, report) and the netconvert
reference all take the network from :mod:`engine.network`. Checked here on
networks the tests build from plain XML with ``netconvert``:

* a 4-arm junction with sidewalks, crossings and walking areas
  (``--sidewalks.guess --crossings.guess --tls.allred.time 2``) in a network
  folder with ``network.yaml`` and a period-of-day ``demand.yaml``: routes,
  ``cqsignal simulate`` with period demand and ``cqsignal plan`` run end to end;
  flow ratios ignore the crossings and count each lane group once;
* the same junction with two programs in the net, ``0`` (flashing) and ``day``:
  demand and plan read ``day``, the program SUMO runs.
"""

from __future__ import annotations

import csv
import json
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from engine.cli import main as cli_main
from engine.demand import critical_vc, load_demand, movement_flows, phase_flow_ratios, write_routes
from engine.network import load_network, read_intersections
from engine.signals import GREEN, Intersection, Movement, Phase
from engine.sim import sumo_binary
from engine.webster import (intersection_flow_ratios, lane_group_capacity, lane_group_vc, lane_groups, lost_time,
                            permitted_left_saturation)

ARMS = {"W": (-200, 0), "E": (200, 0), "N": (0, 200), "S": (0, -200)}
LANES = {"W": 2, "E": 2, "N": 1, "S": 1}  # a 2-lane arterial (W-E) and a 1-lane cross street
ENTRIES = {"W": 600, "E": 500, "N": 300, "S": 200}  # veh/h entering on each arm
TURNS = {"W": [0.1, 0.8, 0.1], "E": [0.1, 0.8, 0.1], "N": [0.2, 0.6, 0.2], "S": [0.2, 0.6, 0.2]}  # l, t, r
WINDOWS = {"am_peak": "07:00-09:00", "midday": "11:00-14:00", "pm_peak": "17:00-19:00",
           "night": "22:00-06:00", "holiday_evening": "19:00-21:00"}
PED_OPTIONS = ["--sidewalks.guess", "true", "--crossings.guess", "true", "--tls.allred.time", "2"]


# -- building the networks ----------------------------------------------------------------------------
def _plain_xml(folder: Path) -> list[str]:
    nodes = ['<nodes>', '  <node id="J" x="0" y="0" type="traffic_light"/>']
    nodes += [f'  <node id="{a}" x="{x}" y="{y}" type="priority"/>' for a, (x, y) in ARMS.items()]
    edges = ["<edges>"]
    for a, n in LANES.items():
        edges += [f'  <edge id="{a}J" from="{a}" to="J" numLanes="{n}" speed="13.89"/>',
                  f'  <edge id="J{a}" from="J" to="{a}" numLanes="{n}" speed="13.89"/>']
    (folder / "x.nod.xml").write_text("\n".join(nodes + ["</nodes>\n"]))
    (folder / "x.edg.xml").write_text("\n".join(edges + ["</edges>\n"]))
    return ["-n", str(folder / "x.nod.xml"), "-e", str(folder / "x.edg.xml")]


def _netconvert(folder: Path, out: Path, options: list[str], tll: Path | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    cmd = [sumo_binary("netconvert"), *_plain_xml(folder), "--no-turnarounds", "true", *options, "-o", str(out)]
    if tll is not None:
        cmd += ["-i", str(tll)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return out


def _demand_yaml() -> str:
    lines = ["periods:"]
    for period, window in WINDOWS.items():
        lines += [f"  {period}:", f'    window: "{window}"', "    phf: 0.9", "    peak_quarter: 2",
                  "    bus_share: 0.05", "    entries:"]
        lines += [f"      {a}J: {v}" for a, v in ENTRIES.items()]
        lines += ["    turns:", "      J: {" + ", ".join(f"{a}: {TURNS[a]}" for a in ARMS) + "}"]
    return "\n".join(lines) + "\n"


def _folder(folder: Path, net: Path) -> Path:
    (folder / "network.yaml").write_text(f"net: {net.name}\ndemand: demand.yaml\n")
    (folder / "demand.yaml").write_text(_demand_yaml())
    return folder


@pytest.fixture(scope="module")
def ped_folder(tmp_path_factory) -> Path:
    """A network folder: the 4-arm junction with sidewalks, crossings and walking areas, and its demand."""
    folder = tmp_path_factory.mktemp("ped")
    _netconvert(folder / "src", folder / "ped.net.xml", PED_OPTIONS)
    return _folder(folder, folder / "ped.net.xml")


def _state(ix: Intersection, rule) -> str:
    chars = ["r"] * ix.n_links
    for m in ix.movements:
        chars[m.link] = rule(m)
    return "".join(chars)


def _day_program(ix: Intersection) -> list[tuple[float, str]]:
    """Arterial through and right, arterial protected lefts, cross street (lefts permissive);
    3 s yellow and 2 s all-red after each."""
    def serve(arms, lefts):
        def rule(m: Movement) -> str:
            if m.approach not in arms:
                return "r"
            if m.direction in "lL":
                return lefts
            return "r" if lefts == "G" else "G"
        return _state(ix, rule)
    steps = []
    for green, dur in ((serve("WE", "r"), 25.0), (serve("WE", "G"), 8.0), (serve("NS", "g"), 20.0)):
        steps += [(dur, green), (3.0, "".join("y" if c in GREEN else c for c in green)),
                  (2.0, "r" * len(green))]
    return steps


@pytest.fixture(scope="module")
def two_programs_folder(tmp_path_factory) -> Path:
    """The junction with two programs in the net: ``0`` (all ``o``, flashing), then ``day``."""
    folder = tmp_path_factory.mktemp("two_programs")
    first = _netconvert(folder / "src", folder / "src" / "first.net.xml", [])
    ix = load_network(first).signals["J"]
    tll = folder / "src" / "programs.tll.xml"
    lines = ["<tlLogics>", '  <tlLogic id="J" type="static" programID="0" offset="0">',
             f'    <phase duration="60" state="{"o" * ix.n_links}"/>', "  </tlLogic>",
             '  <tlLogic id="J" type="static" programID="day" offset="0">']
    lines += [f'    <phase duration="{d:g}" state="{s}"/>' for d, s in _day_program(ix)]
    tll.write_text("\n".join(lines + ["  </tlLogic>", "</tlLogics>\n"]))
    net = _netconvert(folder / "src", folder / "two.net.xml", [], tll=tll)
    text = net.read_text()
    assert 'programID="0"' in text and 'programID="day"' in text
    return _folder(folder, net)


def _flows() -> dict[tuple[str, str], float]:
    """The demand's movement flows by hand: entry x turning share."""
    out = {}
    for arm in ARMS:
        # driving on the right: from W, left is N, through E, right S
        left, through, right = {"W": "NES", "E": "SWN", "N": "ESW", "S": "WNE"}[arm]
        for to, share in zip((left, through, right), TURNS[arm]):
            out[(f"{arm}J", f"J{to}")] = ENTRIES[arm] * share
    return out


def _plan_config(folder: Path, out: Path, method: str, report: bool) -> Path:
    cfg = out.with_name(f"{out.name}.yaml")  # beside the output folder: plan replaces that folder whole
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text(f"""network: {folder}
periods: [am_peak]
method: {method}
constraints: {{cycle_min_s: 60, cycle_max_s: 120, cycle_step_s: 5}}
evaluation: {{duration_s: 240, seeds: [1], workers: 1}}
optimiser: {{trials: 2, search_seeds: 1, refine_trials: 2, finalists: 1, try_right_turn_overlaps: true}}
report: {{enabled: {str(report).lower()}, seeds: [1], duration_s: 240}}
""")
    return cfg


def _tl_logics(add_file: Path) -> list[ET.Element]:
    return ET.parse(add_file).getroot().findall("tlLogic")


# -- pedestrian network --------------------------------------------------------------------------------
def test_roads_of_a_network_with_sidewalks_and_crossings(ped_folder):
    from engine.calibrate.sampler import enumerate_routes, read_net
    from engine.plan.corridor import build_corridor
    from engine.plan.measure import approaches

    net_file = ped_folder / "ped.net.xml"
    network = load_network(net_file)
    ix = network.signals["J"]
    assert ix.crossing_links and network.uncontrolled == {}
    assert any(e.getFunction() == "walkingarea" for e in network.net.getEdges())
    # calibration's road graph: car edges only, every route enters and leaves on an arm
    roads = read_net(net_file)
    assert roads.sources == ["EJ", "NJ", "SJ", "WJ"] and roads.sinks == ["JE", "JN", "JS", "JW"]
    assert not any(e.startswith(":") for e in roads.edges) and roads.signals == ("J",)
    assert len(enumerate_routes(roads)) == 12  # 4 arms x (left, through, right), no U-turns
    # the plan's approaches: one per arm, its vehicle lanes (not the sidewalk), no crossing
    appr = approaches(net_file, {"J": ix})["J"]
    assert sorted((a.label, a.stop_edge, a.lanes) for a in appr) == [
        ("E", "EJ", 2), ("N", "NJ", 1), ("S", "SJ", 1), ("W", "WJ", 2)]
    corridor = build_corridor(net_file, {"J": ix}, ["J"])
    assert corridor.forward_links and not set(corridor.forward_links[0]) & ix.crossing_links


def test_period_demand_routes_cars_on_roads_and_runs_in_sumo(ped_folder, tmp_path):
    net_file = ped_folder / "ped.net.xml"
    demand = load_demand(ped_folder / "demand.yaml")
    assert movement_flows(demand, net_file, "am_peak") == pytest.approx(_flows())
    routes = tmp_path / "am.rou.xml"
    n = write_routes(demand, net_file, "am_peak", seed=1, scale=1.0, duration=600, out_path=routes)
    assert n > 100
    edges = {e for r in ET.parse(routes).getroot().iter("route") for e in r.get("edges").split()}
    assert edges <= {f"{a}J" for a in ARMS} | {f"J{a}" for a in ARMS}
    res = subprocess.run([sumo_binary("sumo"), "-n", str(net_file), "-r", str(routes), "--end", "700",
                          "--no-step-log", "true"], capture_output=True, text=True)
    assert res.returncode == 0 and "Error" not in res.stderr, res.stderr


@pytest.mark.parametrize("controller", ["webster", "max_pressure"])
def test_simulate_with_period_demand_on_the_folder(ped_folder, tmp_path, controller):
    out = tmp_path / controller
    rc = cli_main(["simulate", "--network", str(ped_folder), "--period", "am_peak", "--duration", "300",
                   "--controller", controller, "--out", str(out)])
    assert rc == 0
    kpis = json.loads((out / "kpis.json").read_text())
    assert kpis["trips"] > 50 and kpis["arrived"] > 0.5 * kpis["trips"] and kpis["teleports"] == 0


def test_phase_flow_ratios_ignore_crossings_and_count_each_lane_group_once(ped_folder):
    net_file = ped_folder / "ped.net.xml"
    demand = load_demand(ped_folder / "demand.yaml")
    ix = read_intersections(net_file)["J"]
    # netconvert's program: each green runs on for the pedestrian clearance (crossings red,
    # vehicles still green) before its yellow: one green phase, not two
    assert ix.n_phases == 2 and len([s for s, _ in ix.program if any(c in GREEN for c in s)]) == 4
    groups = lane_groups(ix)
    assert {L for g in groups for L in g.links}.isdisjoint(ix.crossing_links)
    assert sorted((g.from_edge, g.phases, len(g.lanes)) for g in groups) == [
        ("EJ", (0,), 2), ("NJ", (1,), 1), ("SJ", (1,), 1), ("WJ", (0,), 2)]
    ratios, cycle, lost = phase_flow_ratios(demand, net_file, "am_peak")["J"]
    # each approach's lanes once: W (600 veh/h on 2 through lanes) and N (300 on 1)
    assert ratios == pytest.approx([600 / 3200, 300 / 1600])
    # lost time: yellow, all-red and the pedestrian clearance, once per phase
    assert lost == lost_time(ix) == pytest.approx(cycle - sum(p.duration for p in ix.phases))
    assert lost > 2 * (3 + 2) and cycle == ix.cycle
    assert critical_vc(demand, net_file, "am_peak")["J"] == pytest.approx(sum(ratios) * cycle / (cycle - lost))


def test_a_lane_group_that_two_greens_serve_counts_once():
    # W: lane 0 through + right, lane 1 left; the right turn (lane 0) is also green in the
    # cross street's phase (an overlap), the left goes permissively in phase 0 and protected in 1
    moves = (Movement(0, "W_0", "E_0", "W", "E", "s"), Movement(1, "W_0", "S_0", "W", "S", "r"),
             Movement(2, "W_1", "N_0", "W", "N", "l"), Movement(3, "N_0", "S_0", "N", "S", "s"),
             Movement(4, ":w", ":c", ":w", ":c", "s", "S", True))
    program = (("GGgrG", 30.0), ("yyyrr", 3.0), ("rGGrr", 10.0), ("ryyrr", 3.0), ("rGrGr", 20.0),
               ("ryryr", 3.0))
    phases = tuple(Phase(i, program[i][0], program[i][1], tuple(L for L, c in enumerate(program[i][0])
                                                                  if c in GREEN)) for i in (0, 2, 4))
    ix = Intersection("J", "0", program, 0.0, phases, moves, frozenset(), crossing_links=frozenset({4}))
    flows = {("W", "E"): 800.0, ("W", "S"): 900.0, ("W", "N"): 150.0, ("N", "S"): 400.0}
    groups = {g.links: g for g in lane_groups(ix)}
    assert set(groups) == {(0,), (1,), (2,), (3,)}  # the crossing is in none
    assert groups[(1,)].phases == (0, 1, 2) and groups[(2,)].phases == (1,)  # the left: protected phase only
    y = intersection_flow_ratios(ix, flows)
    # single-phase groups: through 800/1600, left 150/1500, cross street 400/1600; the right
    # turn (900/1500 = 0.6) is served by all three: counted once, only what they lack is added
    base = [800 / 1600, 150 / 1500, 400 / 1600]
    assert y == pytest.approx(base)  # 0.5 + 0.1 + 0.25 >= 0.6: nothing to add
    heavy = {**flows, ("W", "S"): 1500.0}  # 1.0 > 0.85: the missing 0.15 shared equally
    assert intersection_flow_ratios(ix, heavy) == pytest.approx([v + 0.05 for v in base])
    assert sum(intersection_flow_ratios(ix, heavy)) == pytest.approx(1.0)


def test_plan_runs_end_to_end_on_the_pedestrian_folder(ped_folder, tmp_path):
    out = tmp_path / "plan"
    rc = cli_main(["plan", str(_plan_config(ped_folder, out, "optimise", report=True)), "--out", str(out), "-q"])
    assert rc == 0
    for name in ("plan.add.xml", "timing_sheet.csv", "plan.json", "report.html"):
        assert (out / name).is_file(), name
    ix = read_intersections(ped_folder / "ped.net.xml")["J"]
    (logic,) = _tl_logics(out / "plan.add.xml")
    assert logic.get("programID") == "am_peak"
    for ph in logic.iter("phase"):
        state = ph.get("state")
        assert len(state) == ix.n_links
        green = [L for L, c in enumerate(state) if c in GREEN]
        # no two links that no network phase runs together (crossings included) are green at once
        assert not [(a, b) for a in green for b in green if a < b and ix.is_conflict(a, b)], state
    rows = list(csv.DictReader((out / "timing_sheet.csv").open()))
    assert [int(r["phase"]) for r in rows] == [1, 2]
    # netconvert's pedestrian clearance (vehicles still green) is neither yellow nor all-red
    clearance = [s for s in ix.file_clearance(0) if any(c in GREEN for c in s[0])]
    assert clearance and all(float(r["pedestrian_clearance_s"]) == clearance[0][1] for r in rows)
    assert all(float(r["yellow_s"]) == 3 and float(r["all_red_s"]) == 2 for r in rows)
    assert "phase 1:pedestrian clearance" in (out / "plan.add.xml").read_text()


def test_netconvert_reference_numbers_the_crossings_as_the_network(ped_folder, tmp_path):
    from benchmarks.plan_vs_sumo import netconvert_programs

    net_file = ped_folder / "ped.net.xml"
    ix = read_intersections(net_file)
    add = netconvert_programs(net_file, ix, tmp_path)
    (logic,) = _tl_logics(add)
    assert logic.get("programID") == "netconvert"
    assert all(len(p.get("state")) == ix["J"].n_links for p in logic.iter("phase"))
    res = subprocess.run([sumo_binary("sumo"), "-n", str(net_file), "-a", str(add), "--end", "10",
                          "--no-step-log", "true"], capture_output=True, text=True)
    assert res.returncode == 0 and "Error" not in res.stderr, res.stderr


# -- two programs in the net ----------------------------------------------------------------------------
def test_demand_reads_the_program_sumo_runs(two_programs_folder):
    net_file = two_programs_folder / "two.net.xml"
    ix = read_intersections(net_file)["J"]
    assert ix.program_id == "day" and ix.n_phases == 3 and ix.cycle == 68
    demand = load_demand(two_programs_folder / "demand.yaml")
    ratios, cycle, lost = phase_flow_ratios(demand, net_file, "am_peak")["J"]
    assert (cycle, lost) == (68, 15)
    # W through + right (540 veh/h on 2 lanes) in phase 1, W left (60 on its lane, turning) in
    # phase 2, N (300 veh/h on 1 lane, its left permissive) in phase 3
    assert ratios == pytest.approx([540 / 3200, 60 / 1500, 300 / 1600])


def test_sumo_runs_day_too(two_programs_folder):
    from engine.sim import Simulation

    sim = Simulation()
    try:
        sim.start(["--net-file", str(two_programs_folder / "two.net.xml"), "--end", "5", "--no-step-log", "true"])
        sim.step()
        assert sim.api.trafficlight.getProgram("J") == "day"
    finally:
        sim.close()


def test_plan_reads_the_program_sumo_runs(two_programs_folder, tmp_path):
    from engine.plan.config import load_plan_config
    from engine.plan.pipeline import resolve

    out = tmp_path / "plan"
    cfg = _plan_config(two_programs_folder, out, "webster", report=True)
    ctx = resolve(load_plan_config(cfg))
    assert ctx.intersections["J"].program_id == "day"
    assert cli_main(["plan", str(cfg), "--out", str(out), "-q"]) == 0
    (logic,) = _tl_logics(out / "plan.add.xml")
    day = read_intersections(two_programs_folder / "two.net.xml")["J"]
    greens = [p.get("state") for p in logic.iter("phase") if p.get("state") in {ph.state for ph in day.phases}]
    assert greens == [ph.state for ph in day.phases]  # the day program's three greens, in its order
    rows = list(csv.DictReader((out / "timing_sheet.csv").open()))
    assert [int(r["phase"]) for r in rows] == [1, 2, 3]


# -- netconvert's protected lefts without all-red (G -> y -> g, then the protected left) ---------------
@pytest.fixture(scope="module")
def lefts_folder(tmp_path_factory) -> Path:
    """The junction with a left-only lane on each arterial arm and netconvert's own program, which
    runs the through's yellow straight into the protected left (no all-red anywhere)."""
    folder = tmp_path_factory.mktemp("lefts")
    src = folder / "src"
    src.mkdir()
    cons = ["<connections>"]
    for arm, (left, through, right) in {"W": "NES", "E": "SWN"}.items():
        cons += [f'  <connection from="{arm}J" to="J{right}" fromLane="0" toLane="0"/>',
                 f'  <connection from="{arm}J" to="J{through}" fromLane="0" toLane="0"/>',
                 f'  <connection from="{arm}J" to="J{left}" fromLane="1" toLane="0"/>']
    (src / "x.con.xml").write_text("\n".join(cons + ["</connections>\n"]))
    net = _netconvert(src, folder / "lefts.net.xml", ["-x", str(src / "x.con.xml")])
    return _folder(folder, net)


def _all_red_after_yellows(steps: list[tuple[str, float]]) -> list[float]:
    """For each yellow step whose next step drops the yellow: seconds until a step starts a green (a link
    green that was not, or a permissive ``g`` made protected ``G``): the all-red after that yellow."""
    def starts(before: str, after: str) -> bool:
        return any((c in GREEN and b not in GREEN) or (c, b) == ("G", "g") for b, c in zip(before, after))

    out = []
    n = len(steps)
    for i, (state, _) in enumerate(steps):
        yellow = [L for L, c in enumerate(state) if c in "yY"]
        if not yellow or any(steps[(i + 1) % n][0][L] in "yY" for L in yellow):
            continue
        red, j = 0.0, (i + 1) % n
        while not starts(steps[j - 1][0], steps[j][0]):
            red += steps[j][1]
            j = (j + 1) % n
        out.append(red)
    return out


def test_plan_adds_the_all_red_netconverts_protected_lefts_lack(lefts_folder, tmp_path):
    from engine.plan.config import load_plan_config
    from engine.plan.pipeline import resolve

    own = read_intersections(lefts_folder / "lefts.net.xml")["J"]
    assert any(s.count("g") and "y" in s for s, _ in own.program)  # G -> y -> g: the left stays green
    assert _all_red_after_yellows(list(own.program)) == [0.0, 0.0, 0.0]
    out = tmp_path / "plan"
    cfg = _plan_config(lefts_folder, out, "webster", report=True)
    ctx = resolve(load_plan_config(cfg))
    assert ctx.network_intersections["J"].program == own.program  # the network is read as it is
    assert len(ctx.clearance_notes) == 3 and all("all-red 0 s" in n for n in ctx.clearance_notes)
    assert cli_main(["plan", str(cfg), "--out", str(out), "-q"]) == 0
    (logic,) = _tl_logics(out / "plan.add.xml")
    steps = [(p.get("state"), float(p.get("duration"))) for p in logic.iter("phase")]
    assert _all_red_after_yellows(steps) == [2.0, 2.0, 2.0]
    assert all(d == 3.0 for s, d in steps if "y" in s)
    plan = json.loads((out / "plan.json").read_text())["periods"]["am_peak"]
    assert sum(d for _, d in steps) == plan["cycle"]
    # the permissive left keeps its green through the through's all-red into its protected phase
    all_red = [s for s, _ in steps if "y" not in s and not any(c == "G" for c in s) and "g" in s]
    assert all_red, steps
    rows = list(csv.DictReader((out / "timing_sheet.csv").open()))
    assert {float(r["all_red_s"]) for r in rows} == {2.0}


def test_minimum_clearances_lengthen_what_is_short_and_leave_the_rest():
    from engine.signals import with_minimum_clearances

    ix = Intersection("J", "0", (("GGrr", 30.0), ("yyrr", 3.0), ("rrrr", 1.0), ("rrGG", 20.0), ("rryy", 4.0),
                                 ("rrrr", 2.0)), 0.0,
                      (Phase(0, "GGrr", 30.0, (0, 1)), Phase(3, "rrGG", 20.0, (2, 3))), (),
                      frozenset({(0, 2), (1, 3)}), foes=frozenset({(0, 2), (1, 3)}))
    same, notes = with_minimum_clearances(ix, 3.0, 1.0)
    assert same is ix and notes == ()
    longer, notes = with_minimum_clearances(ix, 4.0, 2.0)
    assert longer.program == (("GGrr", 30.0), ("yyrr", 4.0), ("rrrr", 2.0), ("rrGG", 20.0), ("rryy", 4.0),
                              ("rrrr", 2.0))
    assert len(notes) == 1 and "yellow 3 s and all-red 1 s" in notes[0]
    assert [p.program_index for p in longer.phases] == [0, 3]
    assert with_minimum_clearances(longer, 4.0, 2.0)[1] == ()  # applied twice: nothing more to do
    assert longer.intergreen(0, 2) == 6.0  # the program's own intergreen, recomputed


@pytest.fixture(scope="module")
def city_programs_folder(tmp_path_factory) -> Path:
    """The junction whose network folder loads an additional file with the city's program ``city``
    (other greens, 1.5 s all-red) and a WAUT starting it: SUMO runs ``city``, not the net file's ``0``."""
    folder = tmp_path_factory.mktemp("city_programs")
    net = _netconvert(folder / "src", folder / "city.net.xml", [])
    ix = load_network(net).signals["J"]
    steps = [(d if "y" in s or set(s) == {"r"} else d + 7, s) for d, s in _day_program(ix)]
    steps = [(1.5 if set(s) == {"r"} else d, s) for d, s in steps]
    lines = ["<additional>", '  <tlLogic id="J" type="static" programID="city" offset="0">']
    lines += [f'    <phase duration="{d:g}" state="{s}"/>' for d, s in steps]
    lines += ["  </tlLogic>", '  <WAUT id="w" refTime="0" startProg="city">',
              '    <wautSwitch time="0" to="city"/>', "  </WAUT>", '  <wautJunction wautID="w" junctionID="J"/>',
              "</additional>"]
    (folder / "city.add.xml").write_text("\n".join(lines) + "\n")
    _folder(folder, net)
    (folder / "network.yaml").write_text("net: city.net.xml\ndemand: demand.yaml\nadditional: [city.add.xml]\n")
    return folder


def test_plan_reads_the_programs_of_the_additional_files(city_programs_folder):
    """The plan's signals, its search's "current programs" and the report's "before" are the program
    SUMO runs: the additional file's ``city`` (started by its WAUT), not the net file's own."""
    from engine.plan.config import load_plan_config
    from engine.plan.pipeline import plan_search, resolve

    folder = city_programs_folder
    city = read_intersections(folder / "city.net.xml", [folder / "city.add.xml"])["J"]
    assert city.program_id == "city" and read_intersections(folder / "city.net.xml")["J"].program_id != "city"
    ctx = resolve(load_plan_config(_plan_config(folder, folder / "out" / "plan", "webster", report=False)))
    assert ctx.network_intersections["J"].program == city.program
    current = plan_search(ctx, "am_peak").current_plan()
    assert current.timings["J"].greens == tuple(p.duration for p in city.phases)


def test_plans_run_beside_a_city_waut(city_programs_folder, tmp_path):
    """The city's WAUT would start and keep its own program whatever is loaded after it: a plan's
    evaluation and the report's "after" run leave the WAUT's junction entry out, so SUMO runs the plan
    (two plans with other greens score differently; SUMO's running program is the plan's)."""
    import dataclasses

    import libsumo

    from engine.plan.config import load_plan_config
    from engine.plan.evaluate import PlanEvaluator, plan_scenario
    from engine.plan.export import programs_xml
    from engine.plan.model import Plan
    from engine.plan.pipeline import plan_search, resolve

    ctx = resolve(load_plan_config(_plan_config(city_programs_folder, tmp_path / "plan", "webster", report=False)))
    current = plan_search(ctx, "am_peak").current_plan()
    t = current.timings["J"]
    longer = current.with_timings({"J": dataclasses.replace(t, greens=(t.greens[0] + 30, *t.greens[1:]))},
                                  cycle=current.cycle + 30)
    add = tmp_path / "longer.add.xml"
    add.write_text(programs_xml(Plan("x", {"am_peak": longer}), ctx.intersections))
    sc = plan_scenario(ctx.period_scenario("am_peak"), (add,), tmp_path)
    assert all("no_waut" in f.name or f == add for f in sc.additional_files)
    libsumo.start([sumo_binary(), "-n", str(sc.net_file), "-a", ",".join(map(str, sc.additional_files)),
                   "--no-step-log", "true"])
    try:
        libsumo.simulationStep()
        assert libsumo.trafficlight.getProgram("J") == "am_peak"
    finally:
        libsumo.close()
    with PlanEvaluator(ctx.period_scenario("am_peak"), [1], 600, workdir=tmp_path / "ev", workers=1) as ev:
        a, b = ev.run_many([current, longer], ctx.intersections)
    assert a.objective != b.objective


def _runs(states: list[str]) -> list[tuple[str, int]]:
    """Consecutive runs (state, seconds) of a per-second state sequence."""
    out: list[tuple[str, int]] = []
    for s in states:
        if out and out[-1][0] == s:
            out[-1] = (s, out[-1][1] + 1)
        else:
            out.append((s, 1))
    return out


def test_plans_run_fractional_clearances_in_whole_seconds(tmp_path):
    """SUMO runs a program in 1 s steps and carries fractions on: the corpus's 2.5 s yellow shows for 2 s
    (here every cycle). Plans round every clearance step up (2.5 -> 3, 1.5 -> 2), so none is shortened."""
    import sys

    import libsumo

    from engine.plan.export import programs_xml
    from engine.plan.model import Plan, PeriodPlan, SignalTiming
    from engine.signals import with_minimum_clearances

    sys.path.insert(0, str(Path(__file__).parent))
    import netcorpus

    net, _routes, _ = netcorpus.CORPUS["fractional"].build(tmp_path / "net")
    own = read_intersections(net)["C"]
    assert {d for s, d in own.program if "y" in s} == {2.5}

    def shown_yellows(ix: Intersection) -> set[int]:
        timing = SignalTiming("C", 7.0, tuple(37.0 for _ in ix.phases))
        cycle = sum(d for _, d in ix.program) - sum(p.duration for p in ix.phases) + 37.0 * ix.n_phases
        add = tmp_path / f"{len(list(tmp_path.iterdir()))}.add.xml"
        add.write_text(programs_xml(Plan("x", {"p": PeriodPlan("p", "test", cycle, {"C": timing})}), {"C": ix}))
        libsumo.start([sumo_binary(), "-n", str(net), "-a", str(add), "--no-step-log", "true"])
        try:
            states = []
            for _ in range(600):
                libsumo.simulationStep()
                states.append(libsumo.trafficlight.getRedYellowGreenState("C"))
        finally:
            libsumo.close()
        return {n for s, n in _runs(states)[1:-1] if "y" in s}

    assert min(shown_yellows(own)) < 2.5  # SUMO shortens the fractional yellow of the program as it is
    planned, notes = with_minimum_clearances(own, 2.5, 1.5)
    assert any("rounded up to whole seconds" in n for n in notes)
    assert {d for s, d in planned.program if s not in {p.state for p in planned.phases}} <= {2.0, 3.0}
    assert shown_yellows(planned) == {3}


def test_approach_survives_a_repeated_final_shape_point(tmp_path):
    """A lane whose shape ends with the same point twice (as some network editors write it) still gets
    its compass side, not '?': the last segment of non-zero length decides."""
    from conftest import build_cross

    net = build_cross(tmp_path / "plain")
    before = {m.from_lane: m.approach for m in read_intersections(net)["A0"].movements if not m.crossing}
    tree = ET.parse(net)
    for lane in tree.getroot().iter("lane"):
        if lane.get("id") in before:
            points = lane.get("shape").split()
            lane.set("shape", " ".join(points + points[-1:]))
    edited = tmp_path / "repeated.net.xml"
    tree.write(edited)
    after = {m.from_lane: m.approach for m in read_intersections(edited)["A0"].movements if not m.crossing}
    assert after == before and set(after.values()) == {"N", "E", "S", "W"}


def _ix(moves, program, foes, conflicts=frozenset()):
    """A hand-built signal ``J``: its green phases are the program's steps with a green."""
    phases = tuple(Phase(i, st, d, tuple(L for L, c in enumerate(st) if c in GREEN))
                   for i, (st, d) in enumerate(program) if any(c in "Gg" for c in st))
    return Intersection("J", "0", program, 0.0, phases, moves, frozenset(conflicts), foes=frozenset(foes),
                        crossing_links=frozenset(m.link for m in moves if m.crossing))


def test_permitted_left_saturation_known_values():
    # HCM 2010 Ch. 31: s_p = v_o exp(-v_o 4.5/3600) / (1 - exp(-v_o 2.5/3600))
    assert permitted_left_saturation(0.0) == pytest.approx(1440.0)
    assert permitted_left_saturation(600.0) == pytest.approx(831.7, abs=0.1)
    assert permitted_left_saturation(1200.0) < permitted_left_saturation(600.0)
    with pytest.raises(ValueError, match="opposing flow"):
        permitted_left_saturation(-1.0)
    for tiny in (1e-15, 1e-13, 1e-9):  # the limit, without cancellation
        assert permitted_left_saturation(tiny) == pytest.approx(1440.0, rel=1e-6)


def test_a_protected_permissive_left_gets_capacity_from_both_greens():
    """The W left (link 2) is protected 10 s and may filter 30 s through the opposing E through
    (link 5, 600 veh/h): capacity (1500 x 10 + 831.7 x 30) / 69 = 579 veh/h, where the protected
    green alone gave 217 (a v/c of 1.38, LOS F, for 300 veh/h that the left does clear)."""
    moves = (Movement(0, "W_0", "E_0", "W", "E", "s"), Movement(1, "W_0", "S_0", "W", "S", "r"),
             Movement(2, "W_1", "N_0", "W", "N", "l"), Movement(3, "N_0", "S_0", "N", "S", "s"),
             Movement(4, ":w", ":c", ":w", ":c", "s", "S", True), Movement(5, "E_0", "W_0", "E", "W", "s"))
    program = (("GGgrGG", 30.0), ("yyyrrr", 3.0), ("rGGrrr", 10.0), ("ryyrrr", 3.0), ("rGrGrr", 20.0),
               ("ryryrr", 3.0))
    ix = _ix(moves, program, {(2, 5), (2, 4), (0, 3), (2, 3), (3, 5)}, {(0, 3), (2, 3), (3, 5)})
    (left,) = [g for g in lane_groups(ix) if g.links == (2,)]
    flows = {("W", "N"): 300.0, ("E", "W"): 600.0, ("W", "E"): 500.0}
    cap = lane_group_capacity(ix, left, program, 69.0, flows)
    assert cap == pytest.approx((1500 * 10 + permitted_left_saturation(600.0) * 30) / 69)
    assert lane_group_vc(ix, left, program, 69.0, flows) == pytest.approx(300 / cap)
    # the pedestrians on the crossing (link 4) are no opposing vehicles; without the opposing
    # through the left filters at 3600 / 2.5 s, never above its saturation flow
    assert lane_group_capacity(ix, left, program, 69.0, {("W", "N"): 300.0}) == pytest.approx(
        (1500 * 10 + 1440 * 30) / 69)
    # a group that is only ever G counts its green seconds at its saturation flow
    (through,) = [g for g in lane_groups(ix) if g.links == (5,)]
    assert lane_group_capacity(ix, through, program, 69.0, flows) == pytest.approx(1600 * 30 / 69)


def test_a_left_sharing_a_lane_with_the_through_slows_the_lane_by_its_through_car_equivalent():
    """One lane W_0 carries the through (G) and a permissive left (g) opposed by 600 veh/h of E through;
    the opposing left (link 3, a foe as SUMO may mark it) is no opposing flow. Lane saturation flow
    1600 / (1 + P_L (E_L - 1)) with P_L = 100 / 500 and E_L = 1600 / 831.7 (HCM 2000 Ch. 16)."""
    moves = (Movement(0, "W_0", "E_0", "W", "E", "s"), Movement(1, "W_0", "N_0", "W", "N", "l"),
             Movement(2, "E_0", "W_0", "E", "W", "s"), Movement(3, "E_0", "S_0", "E", "S", "l"),
             Movement(4, "N_0", "S_0", "N", "S", "s"))
    program = (("GgGgr", 40.0), ("yyyyr", 3.0), ("rrrrG", 30.0), ("rrrry", 3.0))
    ix = _ix(moves, program, {(1, 2), (1, 3), (0, 3), (0, 4), (1, 4), (2, 4), (3, 4)}, {(0, 4), (1, 4), (2, 4), (3, 4)})
    (west,) = [g for g in lane_groups(ix) if g.from_edge == "W"]
    assert west.links == (0, 1) and west.lanes == ("W_0",)
    flows = {("W", "E"): 400.0, ("W", "N"): 100.0, ("E", "W"): 600.0, ("E", "S"): 300.0}
    e_left = 1600 / permitted_left_saturation(600.0)
    expected = 1600 / (1 + 0.2 * (e_left - 1)) * 40 / 76
    assert lane_group_capacity(ix, west, program, 76.0, flows) == pytest.approx(expected)
    assert lane_group_vc(ix, west, program, 76.0, flows) == pytest.approx(500 / expected)


def test_an_exclusive_permissive_left_lane_is_its_own_lane_group_at_the_filtering_rate():
    """W_1 holds only the left, green (g) with the throughs: HCM's exclusive left lane, a group of its own
    whose 400 veh/h filter through the 963 veh/h E through at s_p = 592 veh/h: v/c above 1, where the
    throughs' lanes would have hidden it. The W right (g, yielding to the crossing only) does not filter."""
    moves = (Movement(0, "W_0", "E_0", "W", "E", "s"), Movement(1, "W_0", "S_0", "W", "S", "r"),
             Movement(2, "W_1", "N_0", "W", "N", "l"), Movement(3, "E_0", "W_0", "E", "W", "s"),
             Movement(4, ":c", ":c", ":c", ":c", "s", "S", True), Movement(5, "N_0", "S_0", "N", "S", "s"))
    program = (("GggGGr", 40.0), ("yyyyrr", 3.0), ("rrrrrG", 20.0), ("rrrrry", 3.0))
    ix = _ix(moves, program, {(2, 3), (1, 4), (0, 5), (2, 5), (3, 5)}, {(0, 5), (2, 5), (3, 5)})
    groups = {g.links: g for g in lane_groups(ix)}
    assert set(groups) == {(0, 1), (2,), (3,), (5,)}  # the left lane apart from the through + right lane
    flows = {("W", "E"): 500.0, ("W", "S"): 100.0, ("W", "N"): 400.0, ("E", "W"): 963.0}
    s_p = permitted_left_saturation(963.0)
    assert s_p == pytest.approx(592.4, abs=0.5)
    assert lane_group_capacity(ix, groups[(2,)], program, 66.0, flows) == pytest.approx(s_p * 40 / 66)
    assert lane_group_vc(ix, groups[(2,)], program, 66.0, flows) > 1.0
    assert lane_group_capacity(ix, groups[(0, 1)], program, 66.0, flows) == pytest.approx(1600 * 40 / 66)


def test_in_left_hand_traffic_the_right_turn_is_the_one_that_filters():
    """Left-hand traffic: the W right (to S) crosses the E through, so it filters at s_p; the W left
    (to N) crosses nothing and goes at its saturation flow."""
    moves = (Movement(0, "W_0", "N_0", "W", "N", "l"), Movement(1, "W_0", "E_0", "W", "E", "s"),
             Movement(2, "W_1", "S_0", "W", "S", "r"), Movement(3, "E_0", "W_0", "E", "W", "s"),
             Movement(4, "N_0", "S_0", "N", "S", "s"))
    program = (("gGgGr", 40.0), ("yyyyr", 3.0), ("rrrrG", 20.0), ("rrrry", 3.0))
    ix = _ix(moves, program, {(2, 3), (1, 4), (2, 4), (3, 4)}, {(1, 4), (2, 4), (3, 4)})
    groups = {g.links: g for g in lane_groups(ix)}
    flows = {("W", "N"): 100.0, ("W", "E"): 500.0, ("W", "S"): 200.0, ("E", "W"): 600.0}
    assert lane_group_capacity(ix, groups[(2,)], program, 66.0, flows) == pytest.approx(
        permitted_left_saturation(600.0) * 40 / 66)
    assert lane_group_capacity(ix, groups[(0, 1)], program, 66.0, flows) == pytest.approx(1600 * 40 / 66)
