"""A network folder's ``network.yaml`` and ``demand.yaml`` are checked whole when the folder loads.

New-user findings (nu18): ``net: [a, a]``, ``net: []``, ``net: 5`` or ``demand: 7`` were internal
errors; ``signals: [NOT_A_SIGNAL]``, an unknown key, a junction under ``turns`` that the network does
not have, and an entry on an edge that leaves the network were silently accepted; ``duration: -5``
was refused by ``simulate`` without naming the file and accepted by ``info``; missing periods were
named one at a time; a period listed twice in a plan's ``schedule`` was reported as an overlap
without the config file. Each is now one line naming the file and the field, exit status 2.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from engine.cli import main
from engine.demand import PERIODS, load_demand
from engine.errors import ConfigError, CqSignalError
from engine.scenario import Scenario
from engine.sim import sumo_binary

WINDOWS = {"am_peak": "07:00-09:00", "midday": "11:00-14:00", "pm_peak": "17:00-19:00",
           "night": "22:00-06:00", "holiday_evening": "19:00-21:00"}
ARMS = {"W": (-200, 0), "E": (200, 0), "N": (0, 200), "S": (0, -200)}


def _build(folder: Path) -> Path:
    """A signalised cross: junction ``J`` run by traffic light ``T1`` (its id is not the junction's), four
    2-lane arms ``WJ``/``JW``..., and a footpath ``PW``/``WP`` (pedestrians only) at the west end."""
    folder.mkdir(parents=True, exist_ok=True)
    nodes = ['<nodes>', '  <node id="J" x="0" y="0" type="traffic_light" tl="T1"/>',
             '  <node id="P" x="-200" y="-100" type="priority"/>']
    nodes += [f'  <node id="{a}" x="{x}" y="{y}" type="priority"/>' for a, (x, y) in ARMS.items()]
    edges = ["<edges>",
             '  <edge id="PW" from="P" to="W" numLanes="1" speed="2" allow="pedestrian"/>',
             '  <edge id="WP" from="W" to="P" numLanes="1" speed="2" allow="pedestrian"/>']
    for a in ARMS:
        edges += [f'  <edge id="{a}J" from="{a}" to="J" numLanes="2" speed="13.89"/>',
                  f'  <edge id="J{a}" from="J" to="{a}" numLanes="2" speed="13.89"/>']
    (folder / "x.nod.xml").write_text("\n".join(nodes + ["</nodes>\n"]))
    (folder / "x.edg.xml").write_text("\n".join(edges + ["</edges>\n"]))
    net = folder / "x.net.xml"
    res = subprocess.run([sumo_binary("netconvert"), "-n", str(folder / "x.nod.xml"), "-e", str(folder / "x.edg.xml"),
                          "--no-turnarounds", "true", "-o", str(net)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return net


def _demand() -> dict:
    turns = {a: [0.1, 0.8, 0.1] for a in ARMS}
    return {"periods": {p: {"window": w, "phf": 0.9, "peak_quarter": 2, "bus_share": 0.0,
                            "entries": {f"{a}J": 300 for a in ARMS}, "turns": {"J": dict(turns)}}
                        for p, w in WINDOWS.items()}}


@pytest.fixture(scope="module")
def net(tmp_path_factory) -> Path:
    return _build(tmp_path_factory.mktemp("cross"))


def _folder(root: Path, net: Path, meta: str | dict, demand: dict | None = None) -> Path:
    """A network folder under ``root``: ``meta`` as network.yaml (text, or a mapping dumped), the net copied
    beside it as ``x.net.xml`` and ``demand`` (default: a valid one) as demand.yaml."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "x.net.xml").write_bytes(net.read_bytes())
    (root / "network.yaml").write_text(meta if isinstance(meta, str) else yaml.safe_dump(meta))
    (root / "demand.yaml").write_text(yaml.safe_dump(demand if demand is not None else _demand()))
    return root


def _refused(capsys, argv: list[str]) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err and "internal error" not in err, err
    return err.strip()


# -- network.yaml: a schema, every key typed, unknown keys refused --------------------------------------
BAD_META = [
    ("net-twice", "net: [x.net.xml, x.net.xml]\ndemand: demand.yaml\n",
     "net: expected one file name (the network's .net.xml), got a list ['x.net.xml', 'x.net.xml']"),
    ("net-empty-list", "net: []\ndemand: demand.yaml\n",
     "net: expected one file name (the network's .net.xml), got an empty list"),
    ("net-number", "net: 5\ndemand: demand.yaml\n", "net: expected a file name (the network's .net.xml), got 5"),
    ("net-missing", "demand: demand.yaml\n", "network.yaml: net: missing"),
    ("net-not-found", "net: y.net.xml\ndemand: demand.yaml\n", "network.yaml: net: file not found: y.net.xml"),
    ("demand-number", "net: x.net.xml\ndemand: 7\n",
     "demand: expected a file name (the period-of-day demand file), got 7"),
    ("unknown-key", "net: x.net.xml\ndemand: demand.yaml\nsignalz: [x]\n",
     "network.yaml: signalz: unknown key (known keys: net, demand, routes, additional, begin, end, duration, "
     "signals, description, calibration)"),
    ("duration-negative", "net: x.net.xml\ndemand: demand.yaml\nduration: -5\n",
     "network.yaml: duration: must be positive, got -5"),
    ("duration-not-a-time", "net: x.net.xml\ndemand: demand.yaml\nduration: soon\n",
     "network.yaml: duration: must be a time (seconds or HH:MM[:SS]), got 'soon'"),
    ("duration-nan", "net: x.net.xml\ndemand: demand.yaml\nduration: .nan\n", "network.yaml: duration: must be a time"),
    ("duration-too-long", "net: x.net.xml\ndemand: demand.yaml\nduration: 1e9\n",
     "network.yaml: duration: 1e+09 s is longer than the limit of 604800 s (7 days)"),
    ("begin-negative", "net: x.net.xml\ndemand: demand.yaml\nbegin: -1\n",
     "network.yaml: begin: must be between 0 and"),
    ("begin-minutes-99", "net: x.net.xml\ndemand: demand.yaml\nbegin: '25:99'\n",
     "network.yaml: begin: must be a time (seconds or HH:MM[:SS]), got '25:99'"),
    ("end-seconds-60", "net: x.net.xml\ndemand: demand.yaml\nend: '07:00:60'\n",
     "network.yaml: end: must be a time (seconds or HH:MM[:SS]), got '07:00:60'"),
    ("begin-negative-clock", "net: x.net.xml\ndemand: demand.yaml\nbegin: '-1:00'\n",
     "network.yaml: begin: must be a time (seconds or HH:MM[:SS]), got '-1:00'"),
    ("begin-five-fields", "net: x.net.xml\ndemand: demand.yaml\nbegin: '07:00:00:00:00'\n",
     "network.yaml: begin: must be a time (seconds or HH:MM[:SS]), got '07:00:00:00:00'"),
    ("begin-fractional-hour", "net: x.net.xml\ndemand: demand.yaml\nbegin: '07.5:00'\n",
     "network.yaml: begin: must be a time (seconds or HH:MM[:SS]), got '07.5:00'"),
    ("end-exponent-seconds", "net: x.net.xml\ndemand: demand.yaml\nend: '07:00:1e1'\n",
     "network.yaml: end: must be a time (seconds or HH:MM[:SS]), got '07:00:1e1'"),
    ("end-before-begin", "net: x.net.xml\ndemand: demand.yaml\nbegin: '08:00'\nend: '07:00'\n",
     "network.yaml: end: 25200 s is not after begin 28800 s"),
    ("end-and-duration", "net: x.net.xml\ndemand: demand.yaml\nend: 600\nduration: 600\n",
     "network.yaml: end, duration: give end or duration, not both"),
    ("demand-and-routes", "net: x.net.xml\ndemand: demand.yaml\nroutes: [demand.yaml]\n",
     "network.yaml: demand, routes: give demand (period-of-day demand) or routes (route files), not both"),
    ("routes-empty", "net: x.net.xml\nroutes: []\n", "network.yaml: routes: empty list"),
    ("routes-twice", "net: x.net.xml\nroutes: [a.rou.xml, a.rou.xml]\n",
     "network.yaml: routes: a.rou.xml is listed twice"),
    ("additional-number", "net: x.net.xml\ndemand: demand.yaml\nadditional: [3]\n",
     "network.yaml: additional: [0]: expected a file name, got 3"),
    ("signals-unknown", "net: x.net.xml\ndemand: demand.yaml\nsignals: [NOT_A_SIGNAL]\n",
     "network.yaml: signals: 'NOT_A_SIGNAL' is not a traffic light of x.net.xml (its traffic lights: T1)"),
    ("signals-twice", "net: x.net.xml\ndemand: demand.yaml\nsignals: [T1, T1]\n",
     "network.yaml: signals: 'T1' is listed twice"),
    ("signals-not-a-list", "net: x.net.xml\ndemand: demand.yaml\nsignals: T1\n",
     "network.yaml: signals: expected a non-empty list of traffic-light ids, got 'T1'"),
    ("description-number", "net: x.net.xml\ndemand: demand.yaml\ndescription: 5\n", "network.yaml: description: "),
    ("calibration-unknown-key", "net: x.net.xml\ndemand: demand.yaml\ncalibration: {begn: '07:00'}\n",
     "network.yaml: calibration.begn: unknown key"),
    ("calibration-begin", "net: x.net.xml\ndemand: demand.yaml\ncalibration: {begin: seven}\n",
     "network.yaml: calibration.begin: must be a time of day"),
    ("not-a-mapping", "- net: x.net.xml\n", "network.yaml: expected a mapping of keys"),
]


@pytest.mark.parametrize("command", ["info", "simulate"])
@pytest.mark.parametrize("name, meta, message", BAD_META, ids=[c[0] for c in BAD_META])
def test_bad_network_yaml_is_one_line_naming_file_and_field(capsys, tmp_path, net, command, name, meta, message):
    folder = _folder(tmp_path / name, net, meta)
    argv = ["info", str(folder)] if command == "info" else ["simulate", "--network", str(folder), "--duration", "5"]
    err = _refused(capsys, argv)
    assert str(folder / "network.yaml") in err and message in err, err


def test_network_yaml_duration_is_refused_even_when_the_command_line_sets_one(capsys, tmp_path, net):
    folder = _folder(tmp_path, net, "net: x.net.xml\ndemand: demand.yaml\nduration: -5\n")
    err = _refused(capsys, ["simulate", "--network", str(folder), "--duration", "60"])
    assert f"{folder / 'network.yaml'}: duration: must be positive, got -5" in err


def test_good_network_yaml_of_every_kind_loads(tmp_path, net):
    """An embedded network, a folder with all the keys, and a twin as `cqsignal calibrate` writes one."""
    import networks

    for name in networks.available():
        info = networks.manifest(name)
        assert info["signals"] and Path(info["net"]).is_file() and Path(info["demand"]).is_file()
    folder = _folder(tmp_path / "all", net, {"net": "x.net.xml", "demand": "demand.yaml", "signals": ["T1"],
                                             "begin": "07:00", "duration": 600, "description": "a cross"})
    sc = Scenario.load(folder)
    assert (sc.begin, sc.duration, sc.period) == (25200, 600, "am_peak")
    twin = tmp_path / "twin"
    twin.mkdir()
    (twin / "r.rou.xml").write_text('<routes><vehicle id="0" depart="0"><route edges="WJ JE"/></vehicle></routes>\n')
    meta = {"net": str(net), "routes": ["r.rou.xml"], "duration": 3600.0, "signals": ["T1"], "description": "twin",
            "calibration": {"counts": "c.csv", "begin": "07:00", "end": "08:00", "warmup_s": 900.0,
                            "geh_ok_share": 0.99, "r2": 0.98, "verdict": "ok"}}
    (twin / "network.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    assert Scenario.of_network(twin).route_files == ((twin / "r.rou.xml").resolve(),)


# -- demand.yaml against the network, whole, when a scenario with period demand loads ----------------------
def _edit(change) -> dict:
    demand = _demand()
    change(demand["periods"])
    return demand


BAD_DEMAND = [
    ("entry-leaves-the-network", _edit(lambda p: p["midday"]["entries"].update(JW=900)),
     "demand.yaml: periods.midday.entries.JW: edge JW leads out of the network at W (no connection from it to "
     "another edge), so vehicles entering there go nowhere; an entry is an edge into the network "
     "(here: EJ, NJ, SJ, WJ)"),
    ("entry-not-an-edge", _edit(lambda p: p["am_peak"]["entries"].update(NOPE=10)),
     "demand.yaml: periods.am_peak.entries.NOPE: no such edge in the network (x.net.xml)"),
    ("entry-closed-to-cars", _edit(lambda p: p["am_peak"]["entries"].update(PW=10)),
     "demand.yaml: periods.am_peak.entries.PW: edge PW of x.net.xml is closed to cars (passenger)"),
    ("turns-unknown-junction", _edit(lambda p: p["night"]["turns"].update(J99={"E": [0.0, 1.0, 0.0]})),
     "demand.yaml: periods.night.turns.J99: no junction 'J99' that cars reach in x.net.xml "
     "(junctions where routes branch: J)"),
    ("turns-traffic-light-id", _edit(lambda p: p["pm_peak"]["turns"].update(T1=p["pm_peak"]["turns"].pop("J"))),
     "demand.yaml: periods.pm_peak.turns.T1: no junction 'T1' that cars reach in x.net.xml "
     "('T1' is a traffic light, of junction J: turns are given by junction)"),
    ("turns-unknown-approach", _edit(lambda p: p["holiday_evening"]["turns"]["J"].update(NE=[0.0, 1.0, 0.0])),
     "demand.yaml: periods.holiday_evening.turns.J.NE: no car approach from NE at J (its approaches: E, N, S, W)"),
    ("turns-missing", _edit(lambda p: p["midday"]["turns"]["J"].pop("S")),
     "demand.yaml: periods.midday.turns.J.S: missing (edge SJ branches there)"),
    ("period-key-typo", _edit(lambda p: p["night"].update(peak_quater=3)),
     "demand.yaml: periods.night.peak_quater: unknown key (a period's keys: window, phf, peak_quarter, "
     "bus_share, entries, turns)"),
    ("periods-missing", _edit(lambda p: [p.pop("midday"), p.pop("holiday_evening")]),
     "demand.yaml: periods.midday, periods.holiday_evening: missing; a demand file must define all five "
     "periods (am_peak, midday, pm_peak, night, holiday_evening)"),
]


@pytest.mark.parametrize("name, demand, message", BAD_DEMAND, ids=[c[0] for c in BAD_DEMAND])
def test_demand_that_does_not_fit_the_network_is_refused_at_load(capsys, tmp_path, net, name, demand, message):
    """Whatever the period asked for: the file is checked whole before the simulation starts."""
    folder = _folder(tmp_path / name, net, "net: x.net.xml\ndemand: demand.yaml\n", demand)
    err = _refused(capsys, ["simulate", "--network", str(folder), "--period", "am_peak", "--duration", "5"])
    assert str(folder / "demand.yaml") in err and message in err, err


def test_all_missing_periods_in_one_line(tmp_path):
    path = tmp_path / "demand.yaml"
    path.write_text(yaml.safe_dump(_edit(lambda p: [p.pop(k) for k in ("am_peak", "night")])))
    with pytest.raises(ConfigError) as err:
        load_demand(path)
    assert str(err.value) == (f"{path}: periods.am_peak, periods.night: missing; a demand file must define all "
                              f"five periods ({', '.join(PERIODS)})")


def test_a_good_folder_still_loads_and_simulates(capsys, tmp_path, net):
    folder = _folder(tmp_path, net, "net: x.net.xml\ndemand: demand.yaml\nsignals: [T1]\n")
    assert main(["simulate", "--network", str(folder), "--period", "night", "--duration", "30"]) == 0, \
        capsys.readouterr().err


# -- plan config: a period listed twice in schedule -------------------------------------------------------
def test_plan_schedule_with_a_period_twice_names_the_config(tmp_path, net):
    from engine.plan.config import load_plan_config

    folder = _folder(tmp_path / "n", net, "net: x.net.xml\ndemand: demand.yaml\n")
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump({"network": str(folder), "periods": ["am_peak", "midday", "pm_peak", "night"],
                                    "schedule": ["night", "am_peak", "midday", "pm_peak", "night"]}))
    with pytest.raises(CqSignalError) as err:
        load_plan_config(path)
    assert str(err.value) == (f"{path}: schedule: period 'night' is listed twice (the day plan switches to each "
                              "period once, at the start of its time-of-day window)")


def test_unquoted_time_of_day_is_a_time_not_yaml_base_60(tmp_path, net):
    """YAML 1.1 reads ``17:00`` as 1020 (base 60) but ``07:00`` as text: both are times of day here."""
    from engine.yamlfile import read_yaml

    path = tmp_path / "t.yaml"
    path.write_text("a: 17:00\nb: 07:00\nc: 7:00:30\nd: [1, 2:30]\ne: 25200\nf: 1.5\n")
    assert read_yaml(path) == {"a": "17:00", "b": "07:00", "c": "7:00:30", "d": [1, "2:30"], "e": 25200, "f": 1.5}
    folder = _folder(tmp_path / "n", net, "net: x.net.xml\ndemand: demand.yaml\nbegin: 17:00\nend: 17:30\n")
    sc = Scenario.load(folder)
    assert (sc.begin, sc.duration) == (61200, 1800)
