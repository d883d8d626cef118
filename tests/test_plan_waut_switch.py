"""Time-of-day switching between programs that differ: right-turn overlaps in one period only.

SUMO's GSP switch (``procedure="GSP"``) runs the old program until its position
in its cycle equals its ``GSP`` parameter, then shows the new program's state at
its own GSP at once (stretched until it is in step with its offset). With the
GSP at 0, a program with right-turn overlaps (green through its last all-red)
handed over to one without straight from that all-red to the first green: the
right turns lost their green without yellow. The export now puts every
program's switch point at the start of a green that the switch can enter safely,
and where none exists (split phases with overlaps) switches through a transition
program. Every case here is checked in SUMO against the independent safety monitor.

A small four-arm junction built here with netconvert: leading protected lefts
east-west, then east-west through; the same north-south. With overlaps, the
north-south right turns also run with the east-west lefts, green through the
all-red between (and the east-west rights with the north-south lefts). Variants:
its program starting with a clearance, and split phases (each approach alone).
"""

from __future__ import annotations

import re
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from engine.network import read_intersections
from engine.plan.config import Constraints
from engine.plan.export import (check_switching, period_steps, plan_switches, programs_xml, schedule_switches,
                                switch_layout, switch_pairs, switch_violations, write_text_atomic)
from engine.plan.model import PeriodPlan, Plan, PlanValidationError, SignalTiming, program_of, validate_period
from engine.safety import SafetyMonitor
from engine.signals import GREEN, YELLOW, with_phases, with_right_turn_overlaps
from engine.sim import Simulation, sumo_binary

LIMITS = Constraints(cycle_min_s=40, cycle_max_s=150, min_green_s=7, pedestrian_min_s=None)
WINDOWS = {"day": (6 * 3600, 22 * 3600), "night": (22 * 3600, 30 * 3600)}
RIGHT, THROUGH, LEFT = {"N": "W", "E": "N", "S": "E", "W": "S"}, {"N": "S", "E": "W", "S": "N", "W": "E"}, \
    {"N": "E", "E": "S", "S": "W", "W": "N"}
# links (netconvert's order): N 0 right, 1 through, 2 left; E 3-5; S 6-8; W 9-11
LEADING_LEFTS = [("rrrrrGrrrrrG", 8), ("rrrrryrrrrry", 3), ("rrrrrrrrrrrr", 2),  # E/W protected lefts
                 ("rrrGGgrrrGGg", 29), ("rrryyyrrryyy", 3), ("rrrrrrrrrrrr", 2),  # E/W through, lefts permissive
                 ("rrGrrrrrGrrr", 8), ("rryrrrrryrrr", 3), ("rrrrrrrrrrrr", 2),  # N/S protected lefts
                 ("GGgrrrGGgrrr", 29), ("yyyrrryyyrrr", 3), ("rrrrrrrrrrrr", 2)]  # N/S through
# split phases: N, E, S, W each on its own, with its yellow and all-red
SPLIT = [step for k in range(4) for step in (("r" * 3 * k + "GGG" + "r" * (9 - 3 * k), 20),
                                              ("r" * 3 * k + "yyy" + "r" * (9 - 3 * k), 3), ("r" * 12, 2))]


def build_junction(folder: Path, program: list[tuple[str, int]]) -> Path:
    """netconvert a four-arm junction "J" (three lanes in: right, through, left) running ``program``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "j.nod.xml").write_text(
        '<nodes>\n  <node id="J" x="0" y="0" type="traffic_light" tl="J"/>\n'
        + "".join(f'  <node id="{a}" x="{x}" y="{y}" type="priority"/>\n'
                  for a, x, y in (("N", 0, 250), ("E", 250, 0), ("S", 0, -250), ("W", -250, 0)))
        + "</nodes>\n")
    (folder / "j.edg.xml").write_text(
        "<edges>\n" + "".join(f'  <edge id="{a}J" from="{a}" to="J" numLanes="3" speed="13.89"/>\n'
                              f'  <edge id="J{a}" from="J" to="{a}" numLanes="2" speed="13.89"/>\n' for a in "NESW")
        + "</edges>\n")
    (folder / "j.con.xml").write_text(
        "<connections>\n" + "".join(
            f'  <connection from="{a}J" to="J{RIGHT[a]}" fromLane="0" toLane="0"/>\n'
            f'  <connection from="{a}J" to="J{THROUGH[a]}" fromLane="1" toLane="0"/>\n'
            f'  <connection from="{a}J" to="J{LEFT[a]}" fromLane="2" toLane="1"/>\n' for a in "NESW")
        + "</connections>\n")
    (folder / "j.tll.xml").write_text(
        '<tlLogics>\n  <tlLogic id="J" type="static" programID="0" offset="0">\n'
        + "".join(f'    <phase duration="{d}" state="{s}"/>\n' for s, d in program)
        + "  </tlLogic>\n</tlLogics>\n")
    net = folder / "j.net.xml"
    subprocess.run([sumo_binary("netconvert"), "-n", str(folder / "j.nod.xml"), "-e", str(folder / "j.edg.xml"),
                    "-x", str(folder / "j.con.xml"), "-i", str(folder / "j.tll.xml"), "-o", str(net),
                    "--no-turnarounds", "true", "--junctions.join", "false"], check=True, capture_output=True)
    return net


@pytest.fixture(scope="module")
def junction(tmp_path_factory):
    net = build_junction(tmp_path_factory.mktemp("waut_junction"), LEADING_LEFTS)
    return net, read_intersections(net)["J"]


@pytest.fixture(scope="module")
def rotated_junction(tmp_path_factory):
    """The same junction whose program starts with the N/S through's clearance (a yellow)."""
    net = build_junction(tmp_path_factory.mktemp("waut_rotated"), LEADING_LEFTS[-2:] + LEADING_LEFTS[:-2])
    return net, read_intersections(net)["J"]


@pytest.fixture(scope="module")
def split_junction(tmp_path_factory):
    net = build_junction(tmp_path_factory.mktemp("waut_split"), SPLIT)
    return net, read_intersections(net)["J"]


def day_night_plan(ix) -> Plan:
    """Day: 110 s with right-turn overlaps, offset 17; night: 70 s without, offset 5 (both validated)."""
    day = PeriodPlan("day", "test", 110.0, {"J": SignalTiming("J", 17.0, (12.0, 40.0, 10.0, 28.0), True)})
    night = PeriodPlan("night", "test", 70.0, {"J": SignalTiming("J", 5.0, (8.0, 20.0, 8.0, 14.0), False)})
    for pp in (day, night):
        validate_period(pp, {"J": ix}, LIMITS)
    return Plan("junction", {"day": day, "night": night})


def sumo_trace(net: Path, add: Path, begin: int, end: int) -> list[tuple[float, str, str]]:
    """(time, program, state) of signal J every second from ``begin`` to ``end``."""
    sim = Simulation()
    try:
        sim.start(["--net-file", str(net), "--additional-files", str(add), "--begin", str(begin),
                   "--end", str(end), "--no-step-log", "true", "--no-warnings", "true"])
        out = []
        while sim.time < end - 1:
            out.append((sim.time, sim.api.trafficlight.getProgram("J"), sim.signal_state("J")))
            sim.step()
        return out
    finally:
        sim.close()


def state_at(program, offset: float, t: float) -> str:
    pos = (t - offset) % sum(d for _, d in program)
    for state, dur in program:
        if pos < dur:
            return state
        pos -= dur
    return program[-1][0]


def protected_only(state: str) -> str:
    """``state`` without its permissive greens."""
    return state.replace("g", "r")


def named_steps(ix) -> list[tuple[str, float, int, str]]:
    """``ix.program`` as the export's steps (state, s, green phase, "green" or a clearance)."""
    starts = [ph.program_index for ph in ix.phases]
    assert starts[0] == 0
    return [(s, d, max(k for k, at in enumerate(starts) if at <= i), "green" if i in starts else "clearance")
            for i, (s, d) in enumerate(ix.program)]


def test_the_overlap_program_shows_the_bug_at_gsp_zero(junction):
    """The kind of failure: the day program's last step (all-red, N/S rights green through it)
    straight into the night program's first step (the E/W lefts) ends those greens without yellow."""
    _net, ix = junction
    plan = day_night_plan(ix)
    day, night = (program_of(ix, plan.periods[p].timings["J"]) for p in ("day", "night"))
    assert day[-1][0] == "GrrrrrGrrrrr" and night[0][0] == "rrrrrGrrrrrG"
    at_zero = switch_violations(ix, day, 0, night, 0)  # what GSP 0 did
    assert at_zero and at_zero[0].rule == "green ended without yellow"
    layout = plan_switches(plan, ix, switch_pairs(schedule_switches(WINDOWS, ["night", "day"])))
    points = layout.points
    assert layout.bridges == {}
    assert {p: pt.phase for p, pt in points.items()} == {"day": 1, "night": 1}  # the E/W through, as both run it
    assert switch_violations(ix, day, points["day"].step, night, points["night"].step) == []
    assert switch_violations(ix, night, points["night"].step, day, points["day"].step) == []


def test_switching_overlaps_on_and_off_is_safe_in_sumo(junction, tmp_path):
    net, ix = junction
    plan = day_night_plan(ix)
    switches = schedule_switches(WINDOWS, ["night", "day"])
    assert switches == [(21600, "day"), (79200, "night")]
    add = write_text_atomic(tmp_path / "plan.add.xml", programs_xml(plan, {"J": ix}, switches=switches))
    text = add.read_text()
    # the switch point of each program: the start of the E/W through's green (8 or 12 s of left + 5 s)
    assert re.findall(r'<param key="GSP" value="([^"]+)"/>', text) == ["17", "13"]

    log = check_switching(add, net, plan, {"J": ix}, switches, tmp_path)  # real SUMO, the independent monitor
    assert len(log) == 2 and all("no unsafe state" in line for line in log)

    for t_switch, old, new in ((21600, "night", "day"), (79200, "day", "night")):
        trace = sumo_trace(net, add, t_switch - 150, t_switch + 400)
        i = next(n for n, (_, p, _) in enumerate(trace) if p == new)
        _, _, before = trace[i - 1]
        _, _, after = trace[i]
        # what failed before: a link green just before the switch must still be green just after
        assert all(after[L] in GREEN for L, c in enumerate(before) if c in GREEN), (before, after)
        assert after == ix.phases[1].state  # entered at the E/W through green, which both programs run
        # coordination kept: the old program ran on its offset, and the new one does after its dwell
        programs = {p: program_of(ix, plan.periods[p].timings["J"]) for p in (old, new)}
        offsets = {p: plan.periods[p].timings["J"].offset for p in (old, new)}
        shifts = [s for s in range(-2, 3)
                  if all(st == state_at(programs[old], offsets[old], t + s) for t, p, st in trace[1:i])]
        assert len(shifts) == 1
        settled = [(t, st) for t, p, st in trace if t > trace[i][0] + plan.periods[new].cycle]
        assert settled and all(st == state_at(programs[new], offsets[new], t + shifts[0]) for t, st in settled)


def test_a_program_that_starts_with_a_clearance_switches_into_a_green(rotated_junction, tmp_path):
    """GSP 0 was the middle of a clearance here: SUMO stretched the new program's first step,
    a yellow, until it was in step (up to a cycle of yellow). Now the switch enters a green."""
    net, ix = rotated_junction
    assert "y" in ix.program[0][0]
    plan = day_night_plan(ix)
    switches = schedule_switches(WINDOWS, ["night", "day"])
    add = write_text_atomic(tmp_path / "plan.add.xml", programs_xml(plan, {"J": ix}, switches=switches))
    log = check_switching(add, net, plan, {"J": ix}, switches, tmp_path)
    assert len(log) == 2 and all("no unsafe state" in line for line in log)
    for t_switch, new in ((21600, "day"), (79200, "night")):
        trace = sumo_trace(net, add, t_switch - 150, t_switch + 300)
        i = next(n for n, (_, p, _) in enumerate(trace) if p == new)
        assert trace[i][2] in {state for state, _ in program_of(ix, plan.periods[new].timings["J"])
                               if not any(c in YELLOW for c in state)} and any(c in GREEN for c in trace[i][2])
        longest_yellow, run = 0, 0
        for _, _, state in trace:
            run = run + 1 if any(c in YELLOW for c in state) else 0
            longest_yellow = max(longest_yellow, run)
        assert longest_yellow <= 3


def test_split_phases_switch_through_a_transition_program(split_junction, tmp_path):
    """Split phases with overlaps: each right turn also runs with the phase before its own, so
    every green of the day program starts while a right turn is still green that the night
    program's green there does not run; no direct switch day -> night is safe. The WAUT goes
    through a transition program: a cycle of the day program whose last clearance ends those
    right turns with their yellow and leads into the night program's green."""
    net, ix = split_junction
    plan = day_night_plan(ix)
    day, night = (period_steps(ix, plan.periods[p]) for p in ("day", "night"))
    assert all(switch_violations(ix, [s[:2] for s in day], i, [s[:2] for s in night], j)
               for i, a in enumerate(day) if a[3] == "green" for j, b in enumerate(night) if b[3] == "green")
    switches = schedule_switches(WINDOWS, ["night", "day"])
    layout = plan_switches(plan, ix, switch_pairs(switches))
    assert list(layout.bridges) == [("day", "night")]  # night -> day needs none
    add = write_text_atomic(tmp_path / "plan.add.xml", programs_xml(plan, {"J": ix}, switches=switches))
    root = ET.parse(add).getroot()
    assert {el.get("programID") for el in root.iter("tlLogic")} == {"day", "night", "day_to_night"}
    # the transition, then night once every signal is in it: one day cycle (110 s) and a second later
    assert [(int(el.get("time")), el.get("to")) for el in root.iter("wautSwitch")] == \
        [(21600, "day"), (79200, "day_to_night"), (79311, "night")]

    log = check_switching(add, net, plan, {"J": ix}, switches, tmp_path)
    assert len(log) == 2 and all("no unsafe state" in line for line in log)
    assert "through the transition program day_to_night" in log[1]
    trace = sumo_trace(net, add, 79200 - 150, 79200 + 500)
    assert [p for n, (_, p, _) in enumerate(trace) if n == 0 or trace[n - 1][1] != p] == \
        ["day", "day_to_night", "night"]
    for (_, _, before), (_, _, after) in zip(trace, trace[1:]):  # every green that ends shows its yellow
        assert not any(b in GREEN and a in "rR" for b, a in zip(before, after)), (before, after)


def test_programs_sharing_no_green_in_another_phase_order(junction, tmp_path):
    """No green state in common and a different phase order: the search still finds switch
    points that replay cleanly, and SUMO, running the two programs with them, agrees."""
    net, ix = junction
    a = with_right_turn_overlaps(ix)
    p = [ph.state for ph in ix.phases]
    # E/W lefts, then N/S through, N/S lefts, E/W through; no permissive lefts
    b = with_phases(ix, [(p[0], 0), (protected_only(p[3]), 3), (p[2], 2), (protected_only(p[1]), 1)])
    steps = {"a": named_steps(a), "b": named_steps(b)}
    assert not {ph.state for ph in a.phases} & {ph.state for ph in b.phases}
    pairs = [("a", "b"), ("b", "a")]
    layout = switch_layout(ix, steps, pairs)
    points = layout.points
    assert layout.bridges == {}
    # a hands over after its N/S through's clearance (its N/S rights still green into its E/W
    # lefts) into b's N/S through, which runs those rights
    assert (points["a"].phase, steps["b"][points["b"].step][0]) == (0, "GGrrrrGGrrrr")
    for x, y in pairs:
        assert switch_violations(ix, [s[:2] for s in steps[x]], points[x].step,
                                 [s[:2] for s in steps[y]], points[y].step) == []
    # in SUMO: the two programs, switched both ways by a WAUT at those points
    add = tmp_path / "ab.add.xml"
    add.write_text(
        '<additional>\n' + "".join(
            f'  <tlLogic id="J" type="static" programID="{name}" offset="0">\n'
            + "".join(f'    <phase duration="{d:g}" state="{s}"/>\n' for s, d, _, _ in steps[name])
            + f'    <param key="GSP" value="{points[name].gsp}"/>\n  </tlLogic>\n' for name in ("a", "b"))
        + '  <WAUT id="w" refTime="0" period="86400" startProg="a">\n'
          '    <wautSwitch time="1000" to="b"/>\n    <wautSwitch time="2000" to="a"/>\n  </WAUT>\n'
          '  <wautJunction wautID="w" junctionID="J" procedure="GSP" synchron="true"/>\n</additional>\n')
    monitor = SafetyMonitor([ix])
    trace = sumo_trace(net, add, 800, 2400)
    for t, _, state in trace:
        monitor.observe(t, {"J": state})
    assert trace[-1][1] == "a" and "b" in {p for _, p, _ in trace}
    assert [v for v in monitor.violations if v.time > 850] == []


def test_no_safe_switch_is_refused(junction):
    """A program that shows conflicting greens has no safe switch into it, directly or through a
    transition: the export refuses (PlanValidationError naming the signal and the switch)."""
    _net, ix = junction
    everything = [("GGGGGGGGGGGG", 20.0, 0, "green"), ("rrrrrrrrrrrr", 5.0, 0, "all-red")]
    with pytest.raises(PlanValidationError, match=r"J: no way for SUMO to make every scheduled switch safely.*"
                                                  r"plain -> everything"):
        switch_layout(ix, {"plain": named_steps(ix), "everything": everything}, [("plain", "everything")])
