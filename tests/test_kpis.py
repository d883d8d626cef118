"""The delay KPI against an independent recomputation from a bare SUMO run.

Each test runs the project (``cqsignal simulate``) and, separately, SUMO itself
with the same inputs and options, then recomputes the delay from SUMO's own
tripinfo and summary outputs with sumolib only (none of the project's parsing):
the mean of ``timeLoss + departDelay`` over every vehicle due to depart in
``[begin, end)``, a vehicle still waiting to enter charged its wait so far, a
vehicle dropped after ``max-depart-delay`` charged that wait. The number of
vehicles counted is also checked against the route file itself.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import sumolib

from engine.cli import main
from engine.sim import sumo_binary

TOLERANCE = 0.005  # 0.5 %


# -- the independent side: SUMO and sumolib only ---------------------------------------------
def bare_sumo(out: Path, net: Path, routes: list[Path], begin: float, end: float, seed: int,
              additional: tuple[Path, ...] = (), extra: tuple[str, ...] = ()) -> tuple[Path, Path]:
    """Run SUMO's own binary with its defaults (plus ``extra``); (tripinfo, summary)."""
    out.mkdir(parents=True, exist_ok=True)
    trips, summary = out / "bare_tripinfo.xml", out / "bare_summary.xml"
    cmd = [sumo_binary("sumo"), "--net-file", str(net), "--route-files", ",".join(map(str, routes)),
           "--begin", f"{begin:g}", "--end", f"{end:g}", "--seed", str(seed),
           "--tripinfo-output", str(trips), "--tripinfo-output.write-unfinished", "true",
           "--tripinfo-output.write-undeparted", "true", "--summary-output", str(summary),
           "--no-step-log", "true", *extra]
    if additional:
        cmd += ["--additional-files", ",".join(map(str, additional))]
    subprocess.run(cmd, check=True, capture_output=True)
    return trips, summary


def independent_kpis(trips: Path, summary: Path, begin: float, end: float,
                     max_depart_delay: float | None = None) -> dict:
    """Delay per vehicle due in [begin, end), from SUMO's outputs read with sumolib."""
    total, n, backlog, waits = 0.0, 0, 0, []
    for t in sumolib.output.parse(str(trips), "tripinfo"):
        depart, depart_delay = float(t.depart), float(t.departDelay)
        wanted = depart - depart_delay if depart >= 0 else end - depart_delay  # SUMO stopped at end
        if not begin - 1e-6 <= wanted < end - 1e-6:
            continue  # read ahead, due at or after the end
        n += 1
        if depart >= 0:
            total += float(t.timeLoss) + depart_delay
        else:  # never entered: the wait so far
            total += depart_delay
            backlog += 1
            waits.append(depart_delay)
    last = list(sumolib.output.parse(str(summary), "step"))[-1]
    dropped = int(last.discarded)
    total += dropped * (max_depart_delay or 0.0)
    n += dropped
    return {"mean_delay_s": total / n, "trips": n, "backlog": backlog, "dropped": dropped,
            "longest_wait_s": max(waits, default=0.0)}


def vehicles_due(route_file: Path, begin: float, end: float) -> int:
    """<vehicle> elements of a route file due in [begin, end)."""
    return sum(begin <= float(v.depart) < end for v in sumolib.xml.parse(str(route_file), "vehicle"))


# -- the project's side ----------------------------------------------------------------------
def project(capsys, out: Path, *argv: str) -> tuple[dict, str]:
    code = main(["simulate", *argv, "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads((out / "kpis.json").read_text()), captured.err


def agree(mine: dict, theirs: dict) -> None:
    rel = abs(mine["mean_delay_s"] - theirs["mean_delay_s"]) / theirs["mean_delay_s"]
    print(f"project {mine['mean_delay_s']:.3f} s/veh, independent {theirs['mean_delay_s']:.3f} s/veh "
          f"({100 * rel:.4f} %), trips {mine['trips']}/{theirs['trips']}")
    assert rel <= TOLERANCE
    assert mine["trips"] == theirs["trips"]
    assert mine["backlog"] == theirs["backlog"] and mine["dropped"] == theirs["dropped"]


def write_vehicles(path: Path, edges: list[str], begin: float, end: float, headway: float) -> int:
    """Explicit <vehicle> elements on routes over ``edges``, one every ``headway`` s."""
    lines, t, i = ['<routes>', '  <vType id="car" length="5" minGap="2.5"/>'], begin, 0
    for k, route in enumerate(edges):
        lines.append(f'  <route id="r{k}" edges="{route}"/>')
    while t < end - 1e-9:
        lines.append(f'  <vehicle id="v{i}" type="car" route="r{i % len(edges)}" depart="{t:.2f}" '
                     'departLane="best"/>')
        i += 1
        t += headway
    lines.append("</routes>")
    path.write_text("\n".join(lines) + "\n")
    return i


GRID_ROUTES = ["left0A0 A0B0 B0right0", "right0B0 B0A0 A0left0", "bottom0A0 A0A1 A1top0",
               "top0A1 A1A0 A0bottom0", "bottom1B0 B0B1 B1top1", "left1A1 A1B1 B1right1"]


# -- (i) the corridor ------------------------------------------------------------------------
@pytest.mark.slow
def test_corridor_am_peak_delay_equals_bare_sumo(capsys, tmp_path):
    from engine.scenario import Scenario

    mine, _ = project(capsys, tmp_path / "proj", "--period", "am_peak", "--seed", "1", "--duration", "600")
    sc = Scenario.load("chongqing", period="am_peak", seed=1, duration=600)
    routes = sc.prepare_routes(tmp_path)  # the same generated vehicles (the input, not the KPIs)
    theirs = independent_kpis(*bare_sumo(tmp_path / "bare", sc.net_file, list(routes), 0, 600, 1,
                                         sc.additional_files), 0, 600)
    agree(mine, theirs)
    assert mine["trips"] == vehicles_due(routes[0], 0, 600)
    assert mine["max_depart_delay_s"] is None and mine["time_to_teleport_s"] == 300


# -- (ii) an entry queue longer than 300 s -----------------------------------------------------
@pytest.fixture(scope="module")
def bottleneck(tmp_path_factory) -> tuple[Path, Path]:
    """A signalised single-lane entry fed at 3,000 veh/h for 15 min: the queue to enter grows
    far beyond 300 s of waiting."""
    folder = tmp_path_factory.mktemp("bottleneck")
    (folder / "n.nod.xml").write_text("""<nodes>
  <node id="A" x="0" y="0"/><node id="B" x="300" y="0" type="traffic_light"/>
  <node id="C" x="600" y="0"/><node id="D" x="300" y="300"/><node id="E" x="300" y="-300"/>
</nodes>""")
    (folder / "n.edg.xml").write_text("""<edges>
  <edge id="AB" from="A" to="B" numLanes="1" speed="13.9"/><edge id="BC" from="B" to="C" numLanes="1" speed="13.9"/>
  <edge id="DB" from="D" to="B" numLanes="1" speed="13.9"/><edge id="BE" from="B" to="E" numLanes="1" speed="13.9"/>
</edges>""")
    net = folder / "bottleneck.net.xml"
    subprocess.run([sumo_binary("netconvert"), "-n", str(folder / "n.nod.xml"), "-e", str(folder / "n.edg.xml"),
                    "--no-turnarounds", "-o", str(net)], check=True, capture_output=True)
    routes = folder / "bottleneck.rou.xml"
    write_vehicles(routes, ["AB BC", "AB BC", "AB BC", "AB BC", "DB BE"], 0, 900, 1.2)
    return net, routes


def test_entry_queue_longer_than_300s_is_charged_its_whole_wait(capsys, tmp_path, bottleneck):
    net, routes = bottleneck
    mine, _ = project(capsys, tmp_path / "proj", "--network", str(net), "--routes", str(routes),
                      "--duration", "900")
    theirs = independent_kpis(*bare_sumo(tmp_path / "bare", net, [routes], 0, 900, 1), 0, 900)
    agree(mine, theirs)
    assert theirs["longest_wait_s"] > 300  # the queue the old forced 300 s bound cut short
    assert mine["dropped"] == 0 and mine["backlog"] > 100
    assert mine["trips"] == vehicles_due(routes, 0, 900)


def test_explicit_max_depart_delay_drops_and_charges_the_wait(capsys, tmp_path, bottleneck):
    net, routes = bottleneck
    mine, _ = project(capsys, tmp_path / "proj", "--network", str(net), "--routes", str(routes),
                      "--duration", "900", "--max-depart-delay", "300")
    theirs = independent_kpis(*bare_sumo(tmp_path / "bare", net, [routes], 0, 900, 1,
                                         extra=("--max-depart-delay", "300")), 0, 900, 300.0)
    agree(mine, theirs)
    assert mine["dropped"] > 0 and mine["max_depart_delay_s"] == 300
    assert mine["never_inserted"] == mine["backlog"] + mine["dropped"]
    assert mine["trips"] == vehicles_due(routes, 0, 900)


# -- (iii) a run shorter than its route file ----------------------------------------------------
def test_run_shorter_than_route_file_counts_only_vehicles_due(capsys, tmp_path, grid):
    net, _ = grid
    routes = tmp_path / "long.rou.xml"
    write_vehicles(routes, GRID_ROUTES, 0, 900, 1.5)
    mine, _ = project(capsys, tmp_path / "proj", "--network", str(net), "--routes", str(routes),
                      "--duration", "300")
    theirs = independent_kpis(*bare_sumo(tmp_path / "bare", net, [routes], 0, 300, 1), 0, 300)
    agree(mine, theirs)
    assert mine["trips"] == vehicles_due(routes, 0, 300) == 200  # SUMO loaded more, read ahead
    assert mine["arrived"] <= mine["trips"]


# -- (iv) a route file that starts at 07:00 ---------------------------------------------------
def test_route_file_at_seven_with_begin(capsys, tmp_path, grid):
    net, _ = grid
    routes = tmp_path / "seven.rou.xml"
    n = write_vehicles(routes, GRID_ROUTES, 25200 - 30, 25200 + 900, 2.0)  # 15 vehicles before 07:00
    mine, err = project(capsys, tmp_path / "proj", "--network", str(net), "--routes", str(routes),
                        "--begin", "25200", "--duration", "600")
    theirs = independent_kpis(*bare_sumo(tmp_path / "bare", net, [routes], 25200, 25800, 1), 25200, 25800)
    agree(mine, theirs)
    assert mine["trips"] == vehicles_due(routes, 25200, 25800) == 300
    assert mine["begin_s"] == 25200 and mine["duration_s"] == 600 and mine["arrived"] > 0
    assert f"15 of {n} vehicles" in err and "before begin 25200" in err


def test_route_file_at_seven_without_begin_is_refused(capsys, tmp_path, grid):
    net, _ = grid
    routes = tmp_path / "seven.rou.xml"
    write_vehicles(routes, GRID_ROUTES, 25200, 26100, 2.0)
    code = main(["simulate", "--network", str(net), "--routes", str(routes), "--duration", "600"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "no vehicle departs in the window 0-600 s" in err and "25200" in err
