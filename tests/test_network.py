"""The embedded Chongqing corridor: rebuild, SUMO load, signal safety, geometry."""

from __future__ import annotations

import math
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import sumolib

import networks
from engine.errors import ConfigError
from networks.build import build, program_problems, sumo_env, sumo_home

SIGNALS = [f"C{i}" for i in range(1, 8)]
NET = networks.resolve("chongqing") / "corridor.net.xml"


def summary(net_file: Path) -> dict[str, object]:
    """What makes two nets equivalent: edges, lanes, connections and signal programs."""
    net = sumolib.net.readNet(str(net_file), withPrograms=True)
    edges = {e.getID(): (e.getFromNode().getID(), e.getToNode().getID(),
                         [(round(ln.getSpeed(), 2), round(ln.getLength(), 1))
                          for ln in e.getLanes()])
             for e in net.getEdges()}
    conns = sorted((c.getFrom().getID(), c.getTo().getID(), c.getFromLane().getIndex(),
                    c.getToLane().getIndex(), c.getDirection(), c.getTLSID(), c.getTLLinkIndex())
                   for e in net.getEdges() for cs in e.getOutgoing().values() for c in cs)
    programs = {t.getID(): {pid: [(p.duration, p.state) for p in prog.getPhases()]
                            for pid, prog in t.getPrograms().items()}
                for t in net.getTrafficLights()}
    return {"edges": edges, "connections": conns, "programs": programs}


def test_registry() -> None:
    assert "chongqing" in networks.available()
    info = networks.manifest("chongqing")
    assert info["signals"] == SIGNALS
    assert Path(info["net"]).is_file() and Path(info["demand"]).is_file()
    with pytest.raises(ConfigError, match="chongqing"):
        networks.resolve("atlantis")


def test_rebuild_is_equivalent(tmp_path: Path) -> None:
    rebuilt = build("chongqing", tmp_path)
    expected = summary(NET)
    assert len(expected["connections"]) > 200 and len(expected["programs"]) == 7
    assert summary(rebuilt) == expected
    assert "generated on" not in rebuilt.read_text(encoding="utf-8")[:2000]


def test_loads_in_sumo_with_signals() -> None:
    cmd = [str(sumo_home() / "bin" / "sumo"), "-n", str(NET), "--end", "1", "--no-step-log"]
    res = subprocess.run(cmd, capture_output=True, text=True, env=sumo_env())
    assert res.returncode == 0, res.stderr
    assert "Error" not in res.stderr
    net = sumolib.net.readNet(str(NET), withPrograms=True)
    assert sorted(t.getID() for t in net.getTrafficLights()) == SIGNALS


def test_signal_positions_match_facts() -> None:
    net = sumolib.net.readNet(str(NET))
    location = ET.parse(NET).getroot().find("location")
    assert "+proj=utm +zone=48" in location.get("projParameter")  # lon/lat input, UTM 48N
    lon0, lat0, lon1, lat1 = map(float, location.get("origBoundary").split(","))
    for lat, lon in [(29.609843, 106.341371), (29.612222, 106.367784)]:
        assert lon0 < lon < lon1 and lat0 < lat < lat1
    legs = {("C1", "C2"): 505, ("C2", "C3"): 370, ("C5", "C6"): 314, ("C6", "C7"): 646}
    for (a, b), metres in legs.items():
        (xa, ya), (xb, yb) = net.getNode(a).getCoord(), net.getNode(b).getCoord()
        assert math.hypot(xb - xa, yb - ya) == pytest.approx(metres, rel=0.02)


def test_no_foe_links_green_together() -> None:
    assert program_problems(NET) == []


def test_conflict_check_catches_a_bad_program(tmp_path: Path) -> None:
    text = NET.read_text(encoding="utf-8")
    good = 'state="GGGGrsrrrrGGGGrsrrrr" name="EW-through"'
    assert good in text
    bad = tmp_path / "bad.net.xml"
    all_green = 'state="GGGGGGGGGGGGGGGGGGGG" name="EW-through"'
    bad.write_text(text.replace(good, all_green, 1), encoding="utf-8")
    assert any("foes" in p for p in program_problems(bad))


def test_green_changes_pass_yellow_then_all_red() -> None:
    for tl in ET.parse(NET).getroot().iter("tlLogic"):
        states = [p.get("state") for p in tl.iter("phase")]
        greens = [k for k, s in enumerate(states) if "G" in s]
        assert len(greens) == 4, tl.get("id")
        for k in greens:
            yellow, clear = states[(k + 1) % len(states)], states[(k + 2) % len(states)]
            assert "y" in yellow and "G" not in yellow, tl.get("id")
            assert not set(clear) & set("Ggy"), tl.get("id")
            assert all(c in "rs" for c in clear)
        durations = [float(p.get("duration")) for p in tl.iter("phase")]
        assert sum(durations) == 120
        assert [durations[k + 1] for k in greens] == [3] * 4  # yellow
        assert [durations[k + 2] for k in greens] == [2] * 4  # all-red


def test_right_turns_on_red_are_explicit() -> None:
    net = sumolib.net.readNet(str(NET), withPrograms=True)
    for tls in net.getTrafficLights():
        phases = tls.getPrograms()["0"].getPhases()
        for in_lane, out_lane, index in tls.getConnections():
            conn = next(c for c in in_lane.getOutgoing() if c.getToLane() == out_lane)
            states = {p.state[index] for p in phases}
            if conn.getDirection() == "r":
                assert "r" not in states and "s" in states, (tls.getID(), index)
            else:
                assert "s" not in states


def test_grades() -> None:
    root = ET.parse(NET).getroot()
    signals = set(SIGNALS)
    for edge in root.iter("edge"):
        if edge.get("function") == "internal":
            continue
        lane = edge.find("lane")
        pts = [tuple(map(float, p.split(","))) for p in lane.get("shape").split()]
        grade = abs(pts[-1][2] - pts[0][2]) / float(lane.get("length"))
        assert grade <= 0.08, edge.get("id")
        if edge.get("to") in signals:  # the last ~60 m before a stop line
            assert grade <= 0.03, edge.get("id")
