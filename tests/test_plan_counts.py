"""Plans from counts (issue 17, item 7): ``cqsignal plan`` with a counts file or a calibrated twin as a
period's demand, on one signalised cross the test builds with netgenerate.

One counts file holds two periods with opposite imbalances: 07:00-07:30 with heavy east-west
traffic and 17:00-17:30 with heavy north-south traffic. The plan calibrates each period's counts
(``calibrate``'s pipeline) into its output folder, and Webster must give the heavier direction
the longer green in each period; the twin folder it wrote then plans the same, with design flows
equal to the counted flows.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from engine.cli import main
from conftest import build_cross

# vehicles per 15 minutes (first, second quarter) of each counted movement at the cross's signal A0
EAST_WEST = {("left0A0", "A0right0"): (200, 240), ("right0A0", "A0left0"): (180, 220),  # through
             ("top0A0", "A0bottom0"): (100, 120), ("bottom0A0", "A0top0"): (90, 110),
             ("left0A0", "A0top0"): (20, 25), ("bottom0A0", "A0right0"): (15, 20)}  # a left, a right turn
_QUARTER_TURN = {"left0": "top0", "top0": "right0", "right0": "bottom0", "bottom0": "left0"}  # W->N->E->S


def _turned(edge: str) -> str:
    """``edge`` of the cross turned a quarter clockwise (its arms are alike)."""
    return edge.replace(edge.replace("A0", ""), _QUARTER_TURN[edge.replace("A0", "")])


# the same counts turned a quarter: north-south carries what east-west did
NORTH_SOUTH = {(_turned(a), _turned(b)): q for (a, b), q in EAST_WEST.items()}
PERIODS = {"am_peak": ("07:00", "07:15", "07:30", EAST_WEST), "pm_peak": ("17:00", "17:15", "17:30", NORTH_SOUTH)}
CONSTRAINTS = {"cycle_min_s": 40, "cycle_max_s": 120, "pedestrian_min_s": None}  # splits follow the flows alone


def write_counts(path: Path) -> Path:
    """The two periods' turning counts in ``calibrate``'s CSV format."""
    rows = ["interval_start,interval_end,edge,to_edge,count"]
    for start, middle, end, counts in PERIODS.values():
        for (edge, to), (first, second) in counts.items():
            rows += [f"{start},{middle},{edge},{to},{first}", f"{middle},{end},{edge},{to},{second}"]
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture(scope="module")
def counted(tmp_path_factory) -> dict:
    """``cqsignal plan`` of both periods from the counts file (Webster; report runs of 300 s)."""
    folder = tmp_path_factory.mktemp("plan_counts")
    net = build_cross(folder / "net")
    write_counts(folder / "counts.csv")
    config = {"network": str(net), "periods": ["am_peak", "pm_peak"], "method": "webster",
              "constraints": CONSTRAINTS, "evaluation": {"duration_s": 300, "seeds": [1]},
              "report": {"seeds": [1], "duration_s": 300},
              # relative paths: from the config's folder
              "demand": {"am_peak": {"counts": "counts.csv", "window": "07:00-07:30"},
                         "pm_peak": {"counts": "counts.csv", "window": "17:00-17:30", "seed": 2}}}
    (folder / "plan.yaml").write_text(yaml.safe_dump(config))
    out = folder / "out"
    assert main(["plan", str(folder / "plan.yaml"), "--out", str(out), "-q"]) == 0
    return {"folder": folder, "net": net, "out": out, "plan": json.loads((out / "plan.json").read_text())}


def _green_of(net: Path, greens: list[float], movement: tuple[str, str]) -> float:
    """Green (s) of the phase that runs ``movement`` (from edge, to edge) at A0."""
    from engine.network import read_intersections

    ix = read_intersections(net)["A0"]
    links = {m.link for m in ix.movements if (m.from_edge, m.to_edge) == movement}
    (k,) = [k for k, ph in enumerate(ix.phases) if all(ph.state[i] in "Gg" for i in links)]
    return greens[k]


def test_the_counted_heavier_direction_gets_the_longer_green(counted):
    net, plan = counted["net"], counted["plan"]
    east_west, north_south = ("left0A0", "A0right0"), ("top0A0", "A0bottom0")  # the two phases' through movements
    am, pm = (plan["periods"][p]["timings"]["A0"]["greens"] for p in ("am_peak", "pm_peak"))
    assert _green_of(net, am, east_west) > 1.3 * _green_of(net, am, north_south) > 1.3 * 7  # above the minimum
    assert _green_of(net, pm, north_south) > 1.3 * _green_of(net, pm, east_west)
    # the counts turned a quarter turn the plan: each direction gets the other period's green
    assert _green_of(net, pm, north_south) == pytest.approx(_green_of(net, am, east_west), abs=1)
    assert _green_of(net, pm, east_west) == pytest.approx(_green_of(net, am, north_south), abs=1)
    assert plan["periods"]["am_peak"]["cycle"] == plan["periods"]["pm_peak"]["cycle"]
    # each period's twin, its calibration report, and the WAUT switching at the counts' times of day
    for period in ("am_peak", "pm_peak"):
        assert (counted["out"] / "demand" / period / "calibration.md").read_text().count("PASS")
    switches = {s.get("to"): int(s.get("time")) for s in ET.parse(counted["out"] / "plan.add.xml").iter("wautSwitch")}
    assert switches == {"am_peak": 7 * 3600, "pm_peak": 17 * 3600}
    report = (counted["out"] / "report.html").read_text()
    assert "am_peak: counts" in report and "mean delay [s/veh]" in report  # before/after runs on the twin


def _twin_context(counted, tmp_path, **demand):
    from engine.plan.config import load_plan_config
    from engine.plan.pipeline import resolve

    config = {"network": str(counted["net"]), "periods": ["am_peak"], "method": "webster",
              "constraints": CONSTRAINTS, "evaluation": {"duration_s": 300, "seeds": [1]},
              "demand": {"am_peak": {"twin": str(counted["out"] / "demand" / "am_peak"), **demand}}}
    path = tmp_path / "twin.yaml"
    path.write_text(yaml.safe_dump(config))
    return resolve(load_plan_config(path))


def test_design_flows_of_the_twin_are_the_counted_flows(counted, tmp_path):
    from engine.plan.webster_plan import webster_period_plan

    ctx = _twin_context(counted, tmp_path)
    counts = PERIODS["am_peak"][3]
    peak = ctx.flows("am_peak")  # the default design: the busiest 15 minutes
    hourly = ctx.demand("am_peak").flows(ctx.scenario, 1.0, "hourly")
    for movement, (first, second) in counts.items():
        assert hourly[movement] == pytest.approx(2 * (first + second), rel=0.05), movement  # 30 min of counts
    quarters = [sum(q[i] for q in counts.values()) for i in (0, 1)]
    factor = max(quarters) / (sum(quarters) / 2)  # busiest quarter's rate over the mean: 1 / PHF
    assert {k: v / hourly[k] for k, v in peak.items()} == pytest.approx({k: factor for k in peak}, rel=0.02)
    # the twin plans what the counts planned, and its evaluation runs the twin's routes from its time 0
    pp = webster_period_plan("am_peak", ctx.intersections, peak, ctx.config.constraints)
    planned = counted["plan"]["periods"]["am_peak"]
    assert (pp.cycle, list(pp.timings["A0"].greens)) == (planned["cycle"], planned["timings"]["A0"]["greens"])
    sc = ctx.period_scenario("am_peak")
    assert sc.demand_file is None and sc.begin == 0 and {p.name for p in sc.route_files} == {
        "vtypes.rou.xml", "routes.rou.xml"}
    assert ctx.windows["am_peak"] == (7 * 3600, 7 * 3600 + 1800)


def test_a_window_inside_the_twin_plans_that_part_of_the_counts(counted, tmp_path):
    ctx = _twin_context(counted, tmp_path, window="07:15-07:30")
    hourly = ctx.demand("am_peak").flows(ctx.scenario, 1.0, "hourly")
    for movement, (_, second) in PERIODS["am_peak"][3].items():
        assert hourly[movement] == pytest.approx(4 * second, rel=0.05), movement
    assert ctx.period_scenario("am_peak").begin == 900  # the twin's time of 07:15, less 900 s of warm-up
    assert ctx.windows["am_peak"] == (7 * 3600 + 900, 7 * 3600 + 1800)


def test_the_search_simulates_the_twin(counted, tmp_path):
    config = {"network": str(counted["net"]), "periods": ["am_peak"], "method": "optimise",
              "constraints": CONSTRAINTS, "evaluation": {"duration_s": 300, "seeds": [1]},
              "optimiser": {"trials": 1, "refine_trials": 0, "finalists": 1},
              "demand": {"am_peak": {"twin": str(counted["out"] / "demand" / "am_peak")}}}
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump(config))
    out = tmp_path / "out"
    assert main(["plan", str(path), "--out", str(out), "-q", "--no-report"]) == 0
    notes = json.loads((out / "plan.json").read_text())["periods"]["am_peak"]
    assert notes["cycle"] >= CONSTRAINTS["cycle_min_s"]
    assert not (out / "demand").exists()  # a twin is used as it is, not calibrated again


def test_the_shipped_counts_config_is_checked_without_simulating():
    from engine.plan.config import load_plan_config
    from engine.plan.pipeline import resolve

    ctx = resolve(load_plan_config(Path(__file__).resolve().parents[1] / "configs" / "plan_chongqing_counts.yaml"))
    demand = ctx.demand("am_peak")
    assert demand.kind == "counts" and demand.source.name == "am_peak_counts.csv" and not demand.routes
    assert ctx.windows["am_peak"] == (7 * 3600, 9 * 3600) and demand.span == 2 * 3600 + 900
