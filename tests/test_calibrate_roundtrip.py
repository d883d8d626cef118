"""Round trip on the small grid: demand -> SUMO counts (+ noise) -> calibrated demand -> GEH.

Real SUMO and real routeSampler.py throughout; the counts are made by the test
from the grid fixture's own routes, so the calibration must find them again.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from engine.calibrate import calibrate
from engine.calibrate.counts import Count, read_counts, write_csv
from engine.calibrate.measure import simulate_counts
from engine.calibrate.sampler import enumerate_routes, read_net
from engine.cli import main as cli_main
from engine.errors import ConfigError
from engine.scenario import Scenario
from engine.signals import read_intersections

START = 7 * 3600  # counts are labelled from 07:00
INTERVALS = 2


@pytest.fixture(scope="module")
def grid_counts(grid, tmp_path_factory) -> Path:
    """15-minute counts of every signal movement and entry edge of the grid, 5 % noise."""
    net, routes = grid
    scenario = Scenario.load(net, routes=[routes], seed=3, duration=900 * (INTERVALS + 1))
    turns = sorted({(m.from_edge, m.to_edge) for ix in read_intersections(net).values() for m in ix.movements})
    locations = [(e, None) for e in read_net(net).sources] + turns
    probes = [Count(START + 900 * k, START + 900 * (k + 1), e, to, 0.0, "probe")
              for e, to in locations for k in range(INTERVALS)]
    # the first 900 s warm the grid up, as real counts start on a loaded network
    simulated = simulate_counts(scenario, probes, offset=START - 900)
    rng = np.random.default_rng(5)
    noisy = [Count(c.begin, c.end, c.edge, c.to_edge,
                   float(max(0, round(simulated[c] * (1 + 0.05 * rng.standard_normal())))), "x")
             for c in probes]
    path = tmp_path_factory.mktemp("counts") / "grid_counts.csv"
    write_csv(noisy, path, comments=["synthetic test counts"])
    return path


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


def test_unroutable_counts_are_reported_not_dropped(grid, grid_counts, tmp_path):
    net, _ = grid
    # A0A1 (going north) and A1A0 (going south) exist, but no car can turn from one onto the other
    extra = grid_counts.read_text() + "07:00,07:15,A0A1,A1A0,12\n"
    counts = tmp_path / "with_uturn.csv"
    counts.write_text(extra)
    messages: list[str] = []
    result = calibrate(counts, network=net, out=tmp_path / "twin", begin=START, end=START + 900,
                       warmup=0, log=messages.append)
    assert [c.location for c in result.unroutable] == ["A0A1>A1A0"]
    row = next(r for r in result.rows if r.count.location == "A0A1>A1A0")
    assert not row.routable and row.simulated == 0 and row.geh > 5
    assert any(m.startswith("warning: 1 count(s)") and "A0A1>A1A0" in m for m in messages)
    report = (tmp_path / "twin" / "calibration.md").read_text()
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


def test_candidate_routes_of_the_grid(grid):
    net, _ = grid
    routes = enumerate_routes(read_net(net))
    assert ("left0A0", "A0B0", "B0right0") in routes
    assert all(len({r[0] for r in routes}) == 8 for _ in [0])  # every entry edge starts routes
    assert len(routes) == len(set(routes))
