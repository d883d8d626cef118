"""The plan benchmarks' references and tools, on the embedded corridor in SUMO."""

from __future__ import annotations

import csv
import xml.etree.ElementTree as ET

from benchmarks import plan_sensitivity
from benchmarks.plan_vs_sumo import netconvert_programs
from engine.scenario import Scenario
from engine.signals import read_intersections
from engine.sim import Simulation


def test_netconvert_reference_is_netconverts_own_untimed_programs_and_runs(tmp_path):
    sc = Scenario.load("chongqing", period="am_peak", seed=1, duration=120)
    ix = read_intersections(sc.net_file)
    add = netconvert_programs(sc.net_file, ix, tmp_path)
    logics = ET.parse(add).getroot().findall("tlLogic")
    assert sorted(t.get("id") for t in logics) == sorted(ix)
    for t in logics:
        assert t.get("programID") == "netconvert"
        assert sum(float(p.get("duration")) for p in t.iter("phase")) == 90  # netconvert's default cycle
        # lefts go permissively ('g') with the through green: netconvert's guess, not the network's programs
        assert any("g" in p.get("state") for p in t.iter("phase"))
        assert len(t.find("phase").get("state")) == len(ix[t.get("id")].phases[0].state)
    sim = Simulation()
    try:
        sim.start(sc.with_options(additional_files=sc.additional_files + (add,)).sumo_args(tmp_path))
        sim.step(30)
        assert {sim.api.trafficlight.getProgram(s) for s in ix} == {"netconvert"}
    finally:
        sim.close()


def test_sensitivity_simulates_every_single_move_paired_with_the_start(tmp_path, capsys):
    rc = plan_sensitivity.main(["--duration", "60", "--seeds", "1", "--workers", "1", "--offset-step", "8",
                                "--green-step", "4", "--out", str(tmp_path)])
    assert rc == 0
    rows = list(csv.DictReader((tmp_path / "sensitivity.csv").open()))
    # 6 offsets (all but the corridor's first signal) x 2 directions, and every legal green move
    assert sum("offset" in r["move"] for r in rows) == 12
    assert sum("green" in r["move"] for r in rows) > 40
    changes = [float(r["change_s"]) for r in rows]
    assert changes == sorted(changes)
    assert "moves:" in capsys.readouterr().out


def test_sensitivity_refuses_a_missing_period_in_one_line(tmp_path, capsys):
    plan = tmp_path / "plan.json"
    plan.write_text('{"network": "chongqing", "periods": {}}')
    assert plan_sensitivity.main(["--plan", str(plan), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no plan for period 'am_peak'" in err
