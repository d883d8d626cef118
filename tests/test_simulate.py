"""`cqsignal simulate` and `info` on real SUMO runs, and their errors for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from engine.cli import main
from engine.metrics import read_statistics


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_short_corridor_run_has_sane_kpis(capsys, tmp_path):
    code, out, err = run_cli(capsys, "simulate", "--period", "am_peak", "--duration", "300",
                             "--seed", "1", "--out", str(tmp_path))
    assert code == 0, err
    kpis = json.loads((tmp_path / "kpis.json").read_text())
    for key in ("mean_delay_s", "mean_travel_time_s", "throughput_veh_h", "mean_queue_veh", "co2_kg"):
        assert key in kpis
    assert kpis["mean_delay_s"] >= 0 and kpis["co2_kg"] > 0 and kpis["arrived"] > 0
    assert "delay [s/veh]" in out
    # every inserted vehicle either arrived or is still running at the end
    trips = ET.parse(tmp_path / "tripinfo.xml").getroot().findall("tripinfo")
    departed = [t for t in trips if float(t.get("depart")) >= 0]
    arrived = [t for t in departed if float(t.get("arrival")) >= 0]
    stats = read_statistics(tmp_path / "statistics.xml")
    assert len(departed) == stats["inserted"] == len(arrived) + stats["running"]
    assert kpis["arrived"] == len(arrived)


def test_info_lists_the_seven_corridor_signals(capsys, monkeypatch):
    from engine.report import console

    monkeypatch.setattr(console, "width", 250)  # one table row per phase, unwrapped
    code, out, _ = run_cli(capsys, "info", "chongqing")
    assert code == 0
    assert "7 signals, 7 controllable" in out
    for i in range(1, 8):
        assert f"C{i}" in out
    assert "E through + right, W through + right" in out  # C1's first phase in an engineer's words
    assert "GGGGrsrrrrGGGGrsrrrr" in out  # beside its raw state


def test_users_own_network_and_sumocfg(capsys, grid, tmp_path):
    net, routes = grid
    code, out, err = run_cli(capsys, "simulate", "--network", str(net), "--routes", str(routes),
                             "--duration", "200", "--out", str(tmp_path / "a"))
    assert code == 0, err
    cfg = tmp_path / "grid.sumocfg"
    cfg.write_text(f"""<configuration><input><net-file value="{net}"/><route-files value="{routes}"/>
        </input><time><begin value="0"/><end value="200"/></time></configuration>""")
    code, out, err = run_cli(capsys, "simulate", "--network", str(cfg), "--out", str(tmp_path / "b"))
    assert code == 0, err
    a = json.loads((tmp_path / "a" / "kpis.json").read_text())
    b = json.loads((tmp_path / "b" / "kpis.json").read_text())
    assert a["trips"] == b["trips"] > 0


@pytest.mark.parametrize(
    "argv, message",
    [
        (["simulate", "--network", "atlantis"], "unknown network 'atlantis'"),
        (["simulate", "--period", "rush_hour"], "unknown period 'rush_hour'"),
        (["simulate", "--duration", "0"], "duration must be positive"),
        (["simulate", "--duration", "-5"], "duration must be positive"),
        (["simulate", "--scale", "0"], "scale must be positive"),
        (["simulate", "--network", "/no/such/net.net.xml"], "no such file"),
        (["simulate", "--controller", "telepathy", "--duration", "60"], "unknown controller 'telepathy'"),
    ],
)
def test_bad_input_gives_one_line_error(capsys, argv, message):
    code, _, err = run_cli(capsys, *argv)
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_malformed_network_file(capsys, tmp_path):
    net = tmp_path / "broken.net.xml"
    net.write_text("<net><edge id='a'")
    routes = tmp_path / "r.rou.xml"
    routes.write_text("<routes/>")
    code, _, err = run_cli(capsys, "simulate", "--network", str(net), "--routes", str(routes))
    assert code == 2
    assert "broken.net.xml" in err and len(err.strip().splitlines()) == 1


def test_network_without_routes_is_refused(capsys, grid):
    net, _ = grid
    code, _, err = run_cli(capsys, "simulate", "--network", str(net))
    assert code == 2 and "--routes" in err


def test_sumo_error_mid_run(capsys, grid, tmp_path):
    net, _ = grid
    routes = tmp_path / "late-error.rou.xml"
    routes.write_text("""<routes>
      <vehicle id="ok" depart="0"><route edges="left0A0 A0B0"/></vehicle>
      <vehicle id="later" depart="300"><route edges="left0A0 A0B0"/></vehicle>
      <vehicle id="bad" depart="400"><route edges="left0A0 no_such_edge"/></vehicle>
    </routes>""")
    code, _, err = run_cli(capsys, "simulate", "--network", str(net), "--routes", str(routes),
                           "--duration", "600")
    assert code == 2
    assert "no_such_edge" in err and "t=" in err and len(err.strip().splitlines()) == 1


def test_console_script_exit_code(tmp_path):
    """The installed entry point, as a user runs it, from another directory."""
    proc = subprocess.run([sys.executable, "-m", "engine.cli", "simulate", "--period", "noon"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "cqsignal: error: unknown period 'noon' (choose from am_peak, midday, pm_peak, night, holiday_evening)"
    )
