"""``cqsignal plan`` (and ``calibrate``) input checks found by a new user (nu17): one line naming the
config file and the field, exit 2, nothing written, before any calibration or simulation.

* a period's ``window`` that the counts do not cover (before them, after them, across a gap, or
  starting inside a count interval) would calibrate zero demand there: refused, naming the window,
  the counts file and the counts' span; ``calibrate --begin/--end`` the same;
* a corridor signal the network lacks (or listed twice), and a missing network, name the config file.

The counts are the corridor's synthetic AM counts (``networks/chongqing/counts``, 07:00-09:00 in
15-min intervals), as in ``test_bad_inputs``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from engine.cli import main

REPO = Path(__file__).resolve().parents[1]
COUNTS = REPO / "networks" / "chongqing" / "counts" / "am_peak_counts.csv"


def _plan(tmp_path: Path, **settings) -> Path:
    config = {"network": "chongqing", "periods": ["am_peak"], "method": "webster",
              "evaluation": {"duration_s": 900, "seeds": [1]}, "report": {"enabled": False}, **settings}
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _refused(argv: list[str], tmp_path: Path, capsys) -> str:
    """Run ``argv``: exit 2, one line, no traceback, nothing in --out. Returns the line."""
    capsys.readouterr()
    code = main([*argv, "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("cqsignal: error: "), err
    assert "Traceback" not in err and "internal error" not in err
    assert not (tmp_path / "out").exists()
    return lines[0]


# -- a plan's counts window the counts do not cover ------------------------------------------------------
@pytest.mark.parametrize("window, gap", [("06:00-08:00", "06:00-07:00"), ("08:00-09:30", "09:00-09:30"),
                                         ("05:00-06:00", "05:00-06:00"), ("06:45-09:15", "06:45-07:00")])
def test_counts_window_outside_the_counts_is_refused(tmp_path, capsys, window, gap):
    path = _plan(tmp_path, demand={"am_peak": {"counts": str(COUNTS), "window": window}})
    msg = _refused(["plan", str(path)], tmp_path, capsys)
    assert (f"{path}: demand.am_peak.window: {window} is not covered by the counts in {COUNTS} (07:00-09:00): "
            f"no count lies inside {gap}, where period am_peak would have no demand; give a window inside "
            "the counts") in msg


def test_counts_window_starting_inside_a_count_interval_is_refused(tmp_path, capsys):
    """A count is used only if its whole interval lies in the window: 07:05 leaves 07:05-07:15 without one."""
    path = _plan(tmp_path, demand={"am_peak": {"counts": str(COUNTS), "window": "07:05-08:00"}})
    msg = _refused(["plan", str(path)], tmp_path, capsys)
    assert ("no count lies inside 07:05-07:15 (the count interval 07:00-07:15 runs past the window's bounds: a "
            "count is used only if its whole interval lies inside)") in msg


def test_counts_window_across_a_gap_in_the_counts_is_refused(tmp_path, capsys):
    counts = tmp_path / "gap.csv"
    counts.write_text("interval_start,interval_end,edge,to_edge,count\n07:00,07:15,C1N-C1,,50\n"
                      "07:30,07:45,C1N-C1,,60\n")
    path = _plan(tmp_path, demand={"am_peak": {"counts": str(counts), "window": "07:00-07:45"}})
    msg = _refused(["plan", str(path)], tmp_path, capsys)
    assert (f"{path}: demand.am_peak.window: 07:00-07:45 is not covered by the counts in {counts} (07:00-07:45): "
            "no count lies inside 07:15-07:30, where period am_peak") in msg
    assert "runs past the window's bounds" not in msg


@pytest.mark.parametrize("window", ["07:00-09:00", "07:15-08:30", None])
def test_counts_window_inside_the_counts_passes(tmp_path, window):
    from engine.plan.config import load_plan_config
    from engine.plan.sources import resolve_demands
    from engine.scenario import Scenario

    source = {"counts": str(COUNTS)} | ({"window": window} if window else {})
    config = load_plan_config(_plan(tmp_path, demand={"am_peak": source}))
    demand = resolve_demands(config, Scenario.of_network("chongqing"))["am_peak"]
    assert demand.kind == "counts" and demand.clock == ((25200, 32400) if window in (None, "07:00-09:00")
                                                        else (26100, 30600))


@pytest.mark.parametrize("begin, end, gap", [("06:30", "08:00", "06:30-07:00"), ("08:00", "09:30", "09:00-09:30"),
                                             ("06:30", None, "06:30-07:00")])
def test_calibrate_window_outside_the_counts_is_refused(tmp_path, capsys, begin, end, gap):
    argv = ["calibrate", str(COUNTS), "--begin", begin, *(["--end", end] if end else [])]
    msg = _refused(argv, tmp_path, capsys)
    shown = f"{begin}-{end or '09:00'}"
    assert (f"{COUNTS}: --begin/--end {shown} is not covered by the counts (07:00-09:00): no count lies inside "
            f"{gap}, where the twin would have no demand") in msg


# -- the plan config's network and corridor --------------------------------------------------------------
@pytest.mark.parametrize("signals, says", [
    (["C1", "C2", "D"], "corridor.signals: 'D' is not a signal of corridor.net.xml (its signals: C1, C2, C3, C4, "
                        "C5, C6, C7)"),
    (["C1", "C2", "C1"], "corridor.signals: 'C1' is listed twice"),
])
def test_corridor_signals_name_the_config_file(tmp_path, capsys, signals, says):
    path = _plan(tmp_path, corridor={"signals": signals})
    assert f"{path}: {says}" in _refused(["plan", str(path)], tmp_path, capsys)


def test_missing_network_names_the_config_file(tmp_path, capsys):
    path = _plan(tmp_path, network=str(tmp_path / "nonexistent"))
    msg = _refused(["plan", str(path)], tmp_path, capsys)
    assert f"{path}: network: unknown network '{tmp_path / 'nonexistent'}'" in msg


def test_plan_config_remembers_its_file(tmp_path):
    """What the later checks name: the file a config was read from (kept through model_copy)."""
    from engine.plan.config import PlanConfig, load_plan_config

    path = _plan(tmp_path)
    config = load_plan_config(path)
    assert config.source == path and config.model_copy(update={"method": "green_wave"}).where("x") == f"{path}: x"
    assert PlanConfig().where("x") == "x"


def test_demand_that_does_not_fit_the_network_is_refused_before_planning(tmp_path, capsys):
    """A wrong turning junction in a period the plan does not even plan first (pm_peak after am_peak):
    refused when the plan's demand is resolved, before am_peak's work, naming the demand file and field."""
    import shutil

    folder = tmp_path / "net"
    shutil.copytree(REPO / "networks" / "chongqing", folder, ignore=shutil.ignore_patterns("counts"))
    demand = yaml.safe_load((folder / "demand.yaml").read_text())
    turns = demand["periods"]["pm_peak"]["turns"]
    turns["NO_SUCH_JUNCTION"] = next(iter(turns.values()))
    (folder / "demand.yaml").write_text(yaml.safe_dump(demand))
    path = _plan(tmp_path, network=str(folder), periods=["am_peak", "pm_peak"])
    msg = _refused(["plan", str(path)], tmp_path, capsys)
    assert "demand.yaml: periods.pm_peak.turns.NO_SUCH_JUNCTION: no junction 'NO_SUCH_JUNCTION'" in msg, msg


# -- numbers that YAML or a typist made something else -----------------------------------------------------
@pytest.mark.parametrize("settings, says", [
    ({"evaluation": {"duration_s": 900, "seeds": [True]}},
     "evaluation.seeds: [0]: expected a number, got True (YAML reads yes/no and true/false as booleans)"),
    ({"constraints": {"cycle_min_s": "60"}}, "constraints.cycle_min_s: expected a number, got '60'"),
    ({"constraints": {"cycle_min_s": True}}, "constraints.cycle_min_s: expected a number, got True (YAML reads"),
])
def test_yes_no_and_quoted_numbers_are_refused(tmp_path, capsys, settings, says):
    path = _plan(tmp_path, **settings)
    assert f"{path}: {says}" in _refused(["plan", str(path)], tmp_path, capsys)
