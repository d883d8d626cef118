"""Round trip on the small grid: demand -> SUMO counts (+ noise) -> calibrated demand -> GEH.

Real SUMO and real routeSampler.py throughout; the counts are made by the test
from the grid fixture's own routes, so the calibration must find them again.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from engine.calibrate import calibrate
from engine.calibrate.counts import Count, read_counts
from engine.calibrate.sampler import enumerate_routes, read_net
from engine.cli import main as cli_main
from engine.errors import ConfigError
from engine.scenario import Scenario

INTERVALS = 2


@pytest.fixture(scope="module")
def grid_counts(make_grid_counts) -> Path:
    """15-minute counts of every signal movement and entry edge of the grid, 5 % noise."""
    return make_grid_counts(INTERVALS)


@pytest.fixture(scope="module")
def calibrated(grid, grid_counts, tmp_path_factory):
    net, _ = grid
    out = tmp_path_factory.mktemp("cal") / "twin"
    messages: list[str] = []
    result = calibrate(grid_counts, network=net, out=out, seed=2, log=messages.append)
    return result, messages


def test_round_trip_reproduces_the_counts(calibrated, grid_counts):
    result, _ = calibrated
    counts = read_counts(grid_counts).counts
    assert len(result.rows) == len(counts) and sum(c.value for c in counts) > 1000
    assert result.summary.share >= 0.9, result.summary.verdict()
    assert result.summary.r2 > 0.9
    observed = sum(r.count.value for r in result.rows)
    simulated = sum(r.simulated for r in result.rows)
    assert abs(simulated - observed) / observed < 0.1
    assert result.unroutable == []


def test_output_folder_is_a_scenario(calibrated):
    result, _ = calibrated
    out = result.out
    for name in ("network.yaml", "grid.net.xml", "routes.rou.xml", "vtypes.rou.xml", "calibration.md",
                 "calibration.png", "geh.csv"):
        assert (out / name).is_file(), name
    meta = yaml.safe_load((out / "network.yaml").read_text())
    assert meta["net"] == "grid.net.xml" and meta["routes"] == ["vtypes.rou.xml", "routes.rou.xml"]
    assert meta["duration"] == 900 * (INTERVALS + 1)
    assert meta["calibration"]["geh_ok_share"] == pytest.approx(result.summary.share, abs=1e-4)
    scenario = Scenario.load(out)
    assert scenario.net_file == (out / "grid.net.xml").resolve() and scenario.duration == meta["duration"]
    report = (out / "calibration.md").read_text()
    assert report.splitlines()[2] == f"**{result.summary.verdict()}**"
    assert "## Worst locations" in report
    assert (out / "calibration.png").read_bytes()[:4] == b"\x89PNG"
    assert len((out / "geh.csv").read_text().splitlines()) == len(result.rows) + 1


def test_simulate_runs_on_the_calibrated_folder(calibrated, capsys):
    result, _ = calibrated
    assert cli_main(["simulate", "--network", str(result.out), "--duration", "300"]) == 0
    assert "delay" in capsys.readouterr().out


def test_unroutable_counts_are_reported_not_dropped(grid, grid_counts, tmp_path, capsys):
    net, _ = grid
    # A0A1 (going north) and A1A0 (going south) exist, but no car can turn from one onto the other
    counts = tmp_path / "with_uturn.csv"
    counts.write_text(grid_counts.read_text() + "07:00,07:15,A0A1,A1A0,12\n")
    out = tmp_path / "twin"
    status = cli_main(["calibrate", str(counts), "--network", str(net), "--out", str(out),
                       "--begin", "07:00", "--end", "07:15", "--warmup", "0"])
    printed = capsys.readouterr().out
    assert status == 0  # one bad count of many still passes the 85 % criterion
    assert "warning: 1 count(s) at 1 location(s) no route can pass: A0A1>A1A0" in printed
    rows = (out / "geh.csv").read_text().splitlines()
    assert "07:00,07:15,A0A1,A1A0,12,0,48,0,9.80,no" in rows
    assert all(r.startswith("07:00,07:15,") for r in rows[1:])  # --begin/--end kept the first interval
    report = (out / "calibration.md").read_text()
    assert "## Unroutable counts" in report and "`A0A1>A1A0`" in report
    assert "1 count(s) unroutable" in report.splitlines()[2]


def test_unknown_edge_is_a_one_line_error_naming_the_row(grid, tmp_path, capsys):
    net, _ = grid
    counts = tmp_path / "bad.csv"
    counts.write_text("interval_start,interval_end,edge,to_edge,count\n07:00,07:15,left0A0,,10\n"
                      "07:00,07:15,nowhere,,5\n")
    with pytest.raises(ConfigError, match=r"bad.csv:3: edge 'nowhere' does not exist in the network"):
        calibrate(counts, network=net, out=tmp_path / "twin")
    assert cli_main(["calibrate", str(counts), "--network", str(net), "--out", str(tmp_path / "t2")]) == 2
    err = capsys.readouterr().err.strip()
    assert "bad.csv:3: edge 'nowhere' does not exist" in err and len(err.splitlines()) == 1


def test_shipped_example_counts_fit_the_corridor():
    from engine.calibrate.counts import check_network
    from engine.calibrate.make_example import DEFAULT_OUT

    counts = read_counts(DEFAULT_OUT)
    assert DEFAULT_OUT.read_text().startswith("# SYNTHETIC counts, not measurements")
    check_network(counts, set(read_net(Scenario.of_network("chongqing").net_file).edges))
    assert len({(c.begin, c.end) for c in counts.counts}) == 8 and (counts.begin, counts.end) == (25200, 32400)
    assert len(counts.locations) == 100 and all(c.value >= 0 for c in counts.counts)


def test_candidate_routes_of_the_grid(grid):
    net, _ = grid
    routes = enumerate_routes(read_net(net))
    assert ("left0A0", "A0B0", "B0right0") in routes
    assert {r[0] for r in routes} == set(read_net(net).sources) and len(read_net(net).sources) == 8
    assert len(routes) == len(set(routes))


def test_given_candidate_routes_limit_what_is_routable(grid, tmp_path):
    from engine.calibrate.sampler import read_candidates, unroutable

    net, routes = grid
    rn = read_net(net)
    cand = tmp_path / "cand.rou.xml"
    cand.write_text('<routes><route id="a" edges="left0A0 A0B0 B0right0"/>'
                    '<vehicle id="v" depart="0"><route edges="bottom0A0 A0A1 A1top0"/></vehicle></routes>')
    got = read_candidates(cand, rn)
    assert got == [("bottom0A0", "A0A1", "A1top0"), ("left0A0", "A0B0", "B0right0")]
    counts = [Count(0, 900, "A0B0", None, 5, "r1"), Count(0, 900, "A0B0", "B0B1", 5, "r2"),
              Count(0, 900, "A0A1", "A1top0", 5, "r3"), Count(0, 900, "right0B0", None, 5, "r4")]
    assert [c.row for c in unroutable(counts, got)] == ["r2", "r4"]
    cand.write_text('<routes><route id="bad" edges="left0A0 nowhere"/></routes>')
    with pytest.raises(ConfigError, match="route 'bad': edge 'nowhere' not in the network"):
        read_candidates(cand, rn)


def test_a_network_without_an_entry_is_refused_before_sampling(tmp_path, capsys):
    """A one-way ring (every edge is driven into) has no entry, so no candidate route: one line
    naming the network and the missing entries, exit 2, and no output folder left behind."""
    import subprocess

    from engine.sim import sumo_binary

    (tmp_path / "r.nod.xml").write_text(
        '<nodes>\n  <node id="A" x="0" y="0" type="traffic_light"/>\n  <node id="B" x="300" y="0"/>\n'
        '  <node id="C" x="150" y="250"/>\n</nodes>\n')
    (tmp_path / "r.edg.xml").write_text(
        '<edges>\n  <edge id="AB" from="A" to="B" numLanes="1"/>\n  <edge id="BC" from="B" to="C" numLanes="1"/>\n'
        '  <edge id="CA" from="C" to="A" numLanes="1"/>\n</edges>\n')
    net = tmp_path / "ring.net.xml"
    subprocess.run([sumo_binary("netconvert"), "-n", str(tmp_path / "r.nod.xml"), "-e", str(tmp_path / "r.edg.xml"),
                    "-o", str(net)], check=True, capture_output=True)
    counts = tmp_path / "ring.csv"
    counts.write_text("interval_start,interval_end,edge,to_edge,count\n07:00,07:15,AB,,20\n")
    out = tmp_path / "twin"
    assert cli_main(["calibrate", str(counts), "--network", str(net), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "ring.net.xml: no route leads from an entry (an edge nothing drives into: none)" in err, err
    assert len(err.splitlines()) == 1 and not out.exists()
