"""``cqsignal twin`` refuses a bad config in one line, naming the file and field, before any simulation.

Every refusal here must come before the history profile run (minutes on the corridor):
the --out folder and the history cache stay untouched and each refusal takes well under
5 s. The scenario is the signalised cross of ``conftest.build_cross`` with a period demand
and a Webster time-of-day plan (``cqsignal plan``), as in ``test_twin_loop``.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import CROSS_ENTRIES, twin_config, twin_town

from engine.cli import main as cli_main

ROOT = Path(__file__).resolve().parents[1]
ENTRIES = CROSS_ENTRIES


@pytest.fixture(scope="module")
def town(tmp_path_factory) -> dict:
    """The cross, its demand, a plan config and its time-of-day plan (``cqsignal plan``, no report)."""
    return twin_town(tmp_path_factory.mktemp("twin_config"))


def _config(town: dict, tmp_path: Path, name: str = "cfg", **changes) -> Path:
    return twin_config(town, tmp_path, name, **changes)


def _refused(config: Path, tmp_path: Path, capsys, *extra: str) -> str:
    """Run ``cqsignal twin config``; assert a non-zero exit, one line naming the file, no simulation
    (no --out, nothing in the history cache) and under 5 s. Returns the message."""
    out, cache = tmp_path / "out", tmp_path / "cache"
    capsys.readouterr()
    t0 = time.perf_counter()
    code = cli_main(["twin", str(config), "--out", str(out), "--cache", str(cache), *extra])
    elapsed = time.perf_counter() - t0
    err = capsys.readouterr().err
    assert code != 0, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cqsignal: error: "), err
    assert config.name in lines[0] and "internal error" not in lines[0]
    assert not out.exists() and not cache.exists(), "a simulation started"
    assert elapsed < 5.0
    return lines[0]


def test_valid_config_passes_every_check(town, tmp_path):
    """The base config of these tests passes the config and network checks (so each refusal is its own)."""
    from engine.twin.closed_loop import resolve
    from engine.twin.config import check_against_network, load_twin_config

    path = _config(town, tmp_path, field={"entries": {"left0A0": [["17:00", 1.2]]},
                                          "incident": {"edge": "left0A0", "lane": 1, "start": "17:10",
                                                       "duration_s": 600, "pos_m": 100}},
                   feed_faults=[{"kind": "dead", "edges": ["left0A0"], "start": "17:10", "duration_s": 600}])
    cfg = load_twin_config(path)
    s = resolve(cfg)
    check_against_network(cfg, path, s.base.net_file, s.base.demand_file, s.intersections)


# F3: the incident is checked against the network before the history run
@pytest.mark.parametrize("incident, says", [
    ({"edge": "nowhere"}, "field.incident.edge: no edge 'nowhere'"),
    ({"lane": 4}, "field.incident.lane: 4 is not a lane of edge left0A0 (lanes 0..1)"),
    ({"pos_m": 900}, "field.incident.pos_m: 900 m is beyond lane left0A0_1"),
])
def test_incident_off_the_network_is_refused(town, tmp_path, capsys, incident, says):
    base = {"edge": "left0A0", "lane": 1, "start": "17:10", "duration_s": 600, "pos_m": 100}
    path = _config(town, tmp_path, field={"incident": {**base, **incident}})
    assert says in _refused(path, tmp_path, capsys)


# F4: per-entry multipliers for an edge where no demand enters
def test_unknown_entry_is_refused(town, tmp_path, capsys):
    path = _config(town, tmp_path, field={"entries": {"foo": [["17:00", 1.5]]}})
    msg = _refused(path, tmp_path, capsys)
    assert f"{path.name}: field.entries: unknown edge 'foo' (entries are: {', '.join(ENTRIES)})" in msg


# F5: feed faults on an edge the loops do not count
def test_unknown_feed_fault_edge_is_refused(town, tmp_path, capsys):
    path = _config(town, tmp_path, feed_faults=[{"kind": "gap", "edges": ["left0A0", "nope"], "start": "17:10",
                                                 "duration_s": 600}])
    msg = _refused(path, tmp_path, capsys)
    assert "feed_faults[0].edges: 'nope' is not a count location (the loops count: " in msg
    assert "left0A0" in msg


# F6/F7: NaN and inf anywhere in the config
@pytest.mark.parametrize("changes, says", [
    ({"feed_faults": [{"kind": "clock_jump", "start": "17:10", "duration_s": 600, "shift_s": math.nan}]},
     "feed_faults[0].shift_s: Input should be a finite number"),
    ({"twin": {"candidates": {"cycle_factors": [0.85, math.inf]}}},
     "twin.candidates.cycle_factors[1]: Input should be a finite number"),
    ({"twin": {"level": math.nan}}, "twin.level: Input should be a finite number"),
    ({"field": {"incident": {"edge": "left0A0", "lane": 0, "start": "17:10", "duration_s": 600,
                             "pos_m": math.inf}}}, "field.incident.pos_m: Input should be a finite number"),
    ({"field": {"demand": [["17:00", 1.0], ["17:30", math.nan]]}},
     "field.demand[1]: multiplier must be a finite number in [0, 10], got nan"),
    ({"field": {"day": [[math.inf, 1.0]]}}, "field.day[0] time: inf is not a time of day"),
    ({"twin": {"min_gain": False}}, "twin.min_gain: expected a number, got False (YAML reads yes/no"),
    ({"twin": {"workers": True}}, "twin.workers: expected a number, got True"),
    ({"seed": True}, "cfg.yaml: seed: expected a number, got True"),
])
def test_non_finite_numbers_are_refused(town, tmp_path, capsys, changes, says):
    assert says in _refused(_config(town, tmp_path, **changes), tmp_path, capsys)


# F8: a window shorter than one 5-min count interval
def test_window_shorter_than_a_count_interval_is_refused(town, tmp_path, capsys):
    path = _config(town, tmp_path, field={"window": "17:00-17:04"})
    assert "field.window: 17:00-17:04 is shorter than one 300 s count interval" in _refused(path, tmp_path, capsys)


# F9: clock times and multipliers a user means
@pytest.mark.parametrize("changes, says", [
    ({"field": {"window": "23:00-25:00"}}, "field.window end: '25:00' is not a time of day (00:00 to 24:00"),
    ({"field": {"window": "17:00-17:75"}}, "field.window end: time '17:75' is neither seconds nor HH:MM"),
    ({"field": {"window": "18:00-17:00"}}, "field.window: end 17:00 must be after start 18:00"),
    ({"field": {"window": "-1:00-18:30"}}, "window: 'HH:MM-HH:MM', got '-1:00-18:30'"),
    ({"field": {"entries": {"left0A0": [["17:00", math.inf]]}}},
     "field.entries.left0A0[0]: multiplier must be a finite number in [0, 10], got inf"),
    ({"field": {"demand": [["17:00", -0.5]]}}, "field.demand[0]: multiplier must be a finite number in [0, 10]"),
    ({"feed_faults": [{"kind": "gap", "start": "30:00", "duration_s": 600}]},
     "feed_faults[0].start: '30:00' is not a time of day"),
])
def test_times_and_multipliers_out_of_range_are_refused(town, tmp_path, capsys, changes, says):
    assert says in _refused(_config(town, tmp_path, **changes), tmp_path, capsys)


# F10: a config that is not UTF-8 (through the real command line: exit code and one line)
def test_non_utf8_config_is_a_one_line_error(town, tmp_path):
    path = _config(town, tmp_path)
    path.write_bytes(path.read_bytes().replace(b"name: cfg", b"name: caf\xe9"))
    proc = subprocess.run([sys.executable, "-m", "engine.cli", "twin", str(path), "--out", str(tmp_path / "out")],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "internal error" not in lines[0], proc.stderr
    assert f"{path}: twin config is not UTF-8 text (byte 0xe9 on line" in lines[0]
    assert not (tmp_path / "out").exists()


def test_read_yaml_names_the_bad_byte(tmp_path):
    from engine.errors import ConfigError
    from engine.yamlfile import read_yaml

    path = tmp_path / "demand.yaml"
    path.write_bytes(b"periods:\n  am_peak: {}\n# \xff\n")
    with pytest.raises(ConfigError, match=r"demand.yaml: demand file is not UTF-8 text \(byte 0xff on line 3\)"):
        read_yaml(path, "demand file")


# F11: no demand level to screen or run
@pytest.mark.parametrize("key", ["screen_levels", "levels"])
def test_empty_levels_are_refused(town, tmp_path, capsys, key):
    path = _config(town, tmp_path, twin={key: []})
    assert f"twin.{key}: at least one demand level" in _refused(path, tmp_path, capsys)


# F12 (and F8's other half): a window shorter than one decision interval
def test_interval_longer_than_the_window_is_refused(town, tmp_path, capsys):
    path = _config(town, tmp_path, field={"window": "17:00-17:10"}, twin={"interval_s": 900})
    msg = _refused(path, tmp_path, capsys)
    assert "twin.interval_s: 900 s is longer than the field window 17:00-17:10 (600 s)" in msg


# F13: --out holding another command's output
def test_out_of_another_command_is_refused(town, tmp_path, capsys):
    from engine.outputs import staged_output

    theirs = tmp_path / "theirs"
    with staged_output(theirs, command="cqsignal plan") as stage:
        (stage.path / "plan.json").write_text("{}")
    capsys.readouterr()
    code = cli_main(["twin", str(_config(town, tmp_path)), "--out", str(theirs), "--cache", str(tmp_path / "c")])
    err = capsys.readouterr().err.strip()
    assert code != 0 and len(err.splitlines()) == 1
    assert f"--out {theirs}: holds the output of 'cqsignal plan'" in err
    assert (theirs / "plan.json").read_text() == "{}" and not (tmp_path / "c").exists()


def test_check_out_with_a_command(tmp_path):
    from engine.errors import ConfigError
    from engine.outputs import check_out, staged_output

    ours = tmp_path / "ours"
    with staged_output(ours, command="cqsignal twin") as stage:
        (stage.path / "results.json").write_text("{}")
    check_out(ours, command="cqsignal twin")  # its own output is replaced
    check_out(ours)  # without a command, any cqsignal output (as before)
    with pytest.raises(ConfigError, match="holds the output of 'cqsignal twin'"):
        check_out(ours, command="cqsignal bench")
    foreign = tmp_path / "foreign"  # a manifest.json cqsignal did not write is another's file
    foreign.mkdir()
    (foreign / "manifest.json").write_text('{"name": "a web app"}')
    with pytest.raises(ConfigError, match=r"holds files cqsignal did not write there \(e.g. manifest.json\)"):
        check_out(foreign, command="cqsignal twin")
    with pytest.raises(ConfigError, match="did not write"):
        check_out(foreign)


# F17: what --help says about relative paths is what the code does; results.json has units
def test_help_says_relative_paths_follow_the_working_directory(town, tmp_path, capsys):
    assert cli_main(["twin", "--help"]) == 0
    assert "current working directory" in " ".join(capsys.readouterr().out.split())
    cfg = yaml.safe_load(_config(town, tmp_path).read_text())
    cfg["plans"] = "plan/plan.json"  # relative to the config's folder (town root), not to the working directory
    sub = town["root"] / "relative.yaml"
    sub.write_text(yaml.safe_dump(cfg))
    assert "plans: file not found: plan/plan.json" in _refused(sub, tmp_path, capsys)


def test_results_units_name_every_controller_value():
    from engine.metrics import KPIs
    from engine.twin.cli import RESULTS_UNITS

    for key in KPIs.names():
        assert f"controllers.*.kpis.{key}" in RESULTS_UNITS
    assert RESULTS_UNITS["controllers.*.kpis.mean_delay_s"] == "s/veh"
    for key in ("wall_s", "delay_5min", "plans"):
        assert f"controllers.*.{key}" in RESULTS_UNITS
    json.dumps(RESULTS_UNITS)


@pytest.mark.parametrize("race, says", [
    ([700], "race_s: 700 s must be a multiple of the 300 s count interval and shorter than horizon_s"),
    ([1800], "race_s: 1800 s must be a multiple of the 300 s count interval and shorter than horizon_s"),
    ([900, 300], "race_s: [900.0, 300.0] must increase"),
])
def test_bad_race_checkpoints_are_refused(town, tmp_path, capsys, race, says):
    path = _config(town, tmp_path, twin={"screening": "race", "horizon_s": 1800, "race_s": race})
    assert says in _refused(path, tmp_path, capsys)


def test_race_checkpoints_default_to_thirds_of_the_horizon():
    from engine.twin.config import TwinSettings

    assert TwinSettings(horizon_s=1800).checkpoints == (600.0, 1200.0)
    assert TwinSettings(horizon_s=900).checkpoints == (300.0, 600.0)
    assert TwinSettings(horizon_s=600).checkpoints == (300.0,)
    assert TwinSettings(horizon_s=300).checkpoints == ()
