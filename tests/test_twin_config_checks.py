"""``cqsignal twin`` input checks found by a new user (nu17): each is one line naming the file and field,
exit 2, before any simulation; the boundary each check draws is the one the simulation has.

* a window exactly one decision interval long (no decision is ever made) is refused; one count
  interval longer makes exactly one decision in a real closed-loop run;
* a window outside the hours of its period, an unknown period, a missing network, a network.yaml
  with a YAML syntax error (line and column), a corridor signal the network lacks (naming the plan
  config too) are refused in one line naming the twin config and the field;
* an incident on a lane its vehicle may not use (a sidewalk) is refused before SUMO, and the lanes
  the check accepts are exactly those SUMO lets the incident's vehicle stop on;
* plans made on a network rebuilt since (same signal ids, other phases) are refused naming
  ``plans:``, the file and that the manifest records another version of the network file;
* the report's time axes are clock times (HH:MM).

Every network is built here with netgenerate (a signalised cross, with and without sidewalks),
with a period demand and a Webster time-of-day plan made by ``cqsignal plan``.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from conftest import PERIOD_WINDOWS, build_cross, twin_config, twin_town

from engine.cli import main as cli_main
from engine.sim import sumo_binary

ROOT = Path(__file__).resolve().parents[1]
WINDOWS = PERIOD_WINDOWS


def _town(root: Path, *netgenerate: str) -> dict:
    return twin_town(root, *netgenerate)


@pytest.fixture(scope="module")
def town(tmp_path_factory) -> dict:
    return _town(tmp_path_factory.mktemp("nu17_town"))


@pytest.fixture(scope="module")
def walk_town(tmp_path_factory) -> dict:
    """The cross with sidewalks: lane 0 of every edge is for pedestrians only, lanes 1 and 2 for vehicles."""
    return _town(tmp_path_factory.mktemp("nu17_walk"), "--sidewalks.guess", "true")


def _config(town: dict, tmp_path: Path, name: str = "cfg", **changes) -> Path:
    return twin_config(town, tmp_path, name, **changes)


def _refused(config: Path, tmp_path: Path, capsys) -> str:
    """Run ``cqsignal twin config``: exit 2, one line naming the config file, no simulation (no --out,
    nothing in the history cache), under 5 s. Returns the line."""
    out, cache = tmp_path / "out", tmp_path / "cache"
    capsys.readouterr()
    t0 = time.perf_counter()
    code = cli_main(["twin", str(config), "--out", str(out), "--cache", str(cache)])
    elapsed = time.perf_counter() - t0
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith(f"cqsignal: error: {config}: "), err
    assert "Traceback" not in err and "internal error" not in err
    assert not out.exists() and not cache.exists(), "a simulation started"
    assert elapsed < 5.0
    return lines[0]


def _checked(path: Path):
    """The twin's whole check path before any simulation (as ``cmd_twin`` runs it)."""
    from engine.twin.closed_loop import resolve
    from engine.twin.config import check_against_network, load_twin_config

    cfg = load_twin_config(path)
    setting = resolve(cfg, path)
    check_against_network(cfg, path, setting.base.net_file, setting.base.demand_file, setting.intersections)
    return cfg, setting


# -- 1. a window of one decision interval ---------------------------------------------------------------
@pytest.mark.parametrize("window, seconds, interval, than, first", [
    ("17:00-17:10", 600, 600, "as long as", "17:10"),
    ("17:00-17:05", 300, 300, "as long as", "17:05"),
    ("17:00-17:10", 600, 900, "longer than", "17:15"),
])
def test_window_of_one_interval_or_less_is_refused(town, tmp_path, capsys, window, seconds, interval, than, first):
    path = _config(town, tmp_path, field={"window": window}, twin={"interval_s": interval})
    assert (f"{path}: twin.interval_s: {interval} s is {than} the field window {window} ({seconds} s): the first "
            f"decision would come at {first}, so the twin would make none (the window must be longer than one "
            "interval)") in _refused(path, tmp_path, capsys)


def test_window_one_count_interval_longer_makes_one_decision(town, tmp_path):
    """The boundary in a real closed loop: decisions come every interval_s from the window's start, and
    only inside it, so a 600 s window with 300 s decisions makes exactly one (at 17:05); 300 s, none
    (refused above). With horizon_s 300 the report scores the forecasts over 5 min."""
    path = _config(town, tmp_path, field={"window": "17:00-17:10"},
                   twin={"interval_s": 300, "horizon_s": 300, "levels": ["mean"],
                         "candidates": {"cycle_factors": [1.15]}, "workers": 2})
    out = tmp_path / "out"
    assert cli_main(["twin", str(path), "--out", str(out), "--controllers", "twin",
                     "--cache", str(tmp_path / "cache")]) == 0
    records = [json.loads(line) for line in (out / "decisions.jsonl").read_text().splitlines()]
    assert [(r["controller"], r["clock"][:5]) for r in records] == [("twin", "17:05")]
    # a horizon shorter than 15 min is scored over itself (it ended the run in an internal error)
    accuracy = json.loads((out / "results.json").read_text())["forecast_accuracy"]
    assert set(accuracy["last"]) == {"5min"} and accuracy["last"]["5min"]["n"] > 0


# -- 2. a window outside its period's hours ------------------------------------------------------------
@pytest.mark.parametrize("period, window", [("pm_peak", "12:00-12:50"), ("pm_peak", "19:00-19:30"),
                                            ("am_peak", "06:00-07:00"), ("night", "07:00-08:00")])
def test_window_outside_the_period_is_refused(town, tmp_path, capsys, period, window):
    path = _config(town, tmp_path, field={"period": period, "window": window})
    msg = _refused(path, tmp_path, capsys)
    hours = WINDOWS[period]
    assert (f"{path}: field.window: {window} lies outside the hours of field.period {period} "
            f"({hours} in {town['folder'] / 'demand.yaml'})") in msg


@pytest.mark.parametrize("period, window", [("pm_peak", "16:30-17:30"), ("pm_peak", "18:30-19:30"),
                                            ("night", "05:00-06:30"), ("night", "21:30-23:00")])
def test_window_overlapping_the_period_passes(town, tmp_path, period, window):
    _checked(_config(town, tmp_path, field={"period": period, "window": window}))


@pytest.mark.parametrize("path", sorted(ROOT.glob("configs/twin_*.yaml")), ids=lambda p: p.name)
def test_shipped_twin_configs_pass_every_check(path, monkeypatch):
    """The shipped scenarios (pm_peak, 16:30-18:30 against the period's 17:00-19:30) load through the
    whole check path the twin runs before simulating."""
    monkeypatch.chdir(ROOT)  # their paths are relative to the repository
    cfg, setting = _checked(path.relative_to(ROOT))
    assert cfg.field.period == "pm_peak" and setting.tod


# -- 4. a missing network -------------------------------------------------------------------------------
def test_missing_network_is_named_before_the_plan_config(town, tmp_path, capsys):
    path = _config(town, tmp_path, network=str(tmp_path / "nonexistent"))
    msg = _refused(path, tmp_path, capsys)
    assert f"{path}: network: {tmp_path / 'nonexistent'} not found (neither an embedded network" in msg
    assert "plan_config" not in msg


def test_network_folder_without_network_yaml_is_refused(town, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    path = _config(town, tmp_path, network=str(tmp_path / "empty"))
    assert f"{path}: network: {tmp_path / 'empty'}: folder has no network.yaml" in _refused(path, tmp_path, capsys)


# -- 5. an incident on a lane its vehicle may not use ---------------------------------------------------
INCIDENT = {"edge": "left0A0", "lane": 1, "start": "17:10", "duration_s": 600, "pos_m": 100}


@pytest.mark.parametrize("lane, says", [
    (0, "field.incident.lane: lane 0 of edge left0A0 is a sidewalk: the incident's vehicle (passenger) may not "
        "stop there (lanes vehicles can use: 1..2)"),
    (3, "field.incident.lane: 3 is not a lane of edge left0A0 (lanes vehicles can use: 1..2)"),
])
def test_incident_on_a_lane_vehicles_may_not_use_is_refused(walk_town, tmp_path, capsys, lane, says):
    path = _config(walk_town, tmp_path, field={"incident": {**INCIDENT, "lane": lane}})
    assert f"{path}: {says}" in _refused(path, tmp_path, capsys)


def test_incident_lane_range_without_closed_lanes(town, tmp_path, capsys):
    path = _config(town, tmp_path, field={"incident": {**INCIDENT, "lane": 2}})
    assert "field.incident.lane: 2 is not a lane of edge left0A0 (lanes 0..1)" in _refused(path, tmp_path, capsys)


def test_incident_lanes_accepted_are_those_sumo_accepts(walk_town, tmp_path):
    """For every lane of the edge: the config check accepts it exactly when SUMO starts with the
    incident's route file (its vehicle stopping there), and refuses it exactly when SUMO would not."""
    from engine.errors import ConfigError
    from engine.twin.field import Incident, write_incident

    net = walk_town["folder"] / "cross.net.xml"
    verdicts = {}
    for lane in range(3):
        path = _config(walk_town, tmp_path, name=f"lane{lane}", field={"incident": {**INCIDENT, "lane": lane}})
        try:
            _checked(path)
            accepted = True
        except ConfigError:
            accepted = False
        routes = write_incident(Incident(**{**INCIDENT, "start": 61800, "lane": lane}), net,
                                tmp_path / f"incident{lane}.rou.xml")
        sumo = subprocess.run([sumo_binary("sumo"), "-n", str(net), "-r", str(routes), "--begin", "61800",
                               "--end", "61810", "--no-step-log", "true"], capture_output=True, text=True, timeout=60)
        verdicts[lane] = (accepted, sumo.returncode == 0)
        if not accepted:
            assert "not allowed to stop on lane" in sumo.stderr, sumo.stderr
    assert verdicts == {0: (False, False), 1: (True, True), 2: (True, True)}


# -- 6. plans made on another version of the network ----------------------------------------------------
@pytest.fixture
def rebuilt(tmp_path) -> dict:
    """A town whose network was rebuilt after its plans were made: signal A0 with four green phases
    (one per approach) instead of two."""
    town = _town(tmp_path / "rebuilt")
    build_cross(town["folder"], 250.0, "--tls.layout", "incoming")
    return town


def test_plans_of_a_rebuilt_network_name_plans_and_the_network_version(rebuilt, tmp_path, capsys):
    path = _config(rebuilt, tmp_path)
    msg = _refused(path, tmp_path, capsys)
    net = rebuilt["folder"] / "cross.net.xml"
    assert f"{path}: plans: {rebuilt['plans']}: plan pm_peak, signal A0: 2 greens for 4 green phases" in msg
    assert f"(the plans were made for a different version of the network file {net}: its manifest.json " in msg
    assert "make the plans again with cqsignal plan)" in msg


def test_plans_of_the_same_network_have_no_version_note(rebuilt, tmp_path, capsys):
    """Plans made again on the rebuilt network pass; a plan that does not validate on the network it
    was made for says nothing of versions."""
    from engine.plan.pipeline import network_changed

    assert network_changed(rebuilt["plans"], rebuilt["folder"] / "cross.net.xml") is not None
    assert cli_main(["plan", str(rebuilt["plan_config"]), "--out", str(rebuilt["root"] / "plan"), "-q",
                     "--no-report"]) == 0
    assert network_changed(rebuilt["plans"], rebuilt["folder"] / "cross.net.xml") is None
    _checked(_config(rebuilt, tmp_path))
    data = json.loads(rebuilt["plans"].read_text())
    data["periods"]["pm_peak"]["timings"]["A0"]["greens"] = [3.0] * 4  # below the 7 s minimum green
    bad = tmp_path / "bad_plan" / "plan.json"
    bad.parent.mkdir()
    bad.write_text(json.dumps(data))
    msg = _refused(_config(rebuilt, tmp_path, plans=str(bad)), tmp_path, capsys)
    assert f"plans: {bad}: plan pm_peak, signal A0: " in msg and "version" not in msg


def test_plans_that_still_validate_on_a_changed_network_are_a_warning(town, tmp_path, capsys):
    """The network file changed but its signals did not: the plans run, with a one-line warning."""
    from engine.twin.closed_loop import resolve
    from engine.twin.config import load_twin_config

    copy = _town(tmp_path / "copy")
    net = copy["folder"] / "cross.net.xml"
    net.write_text(net.read_text() + "<!-- edited by hand -->\n")
    path = _config(copy, tmp_path)
    capsys.readouterr()
    resolve(load_twin_config(path), path)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"cqsignal: warning: {path}: plans: {copy['plans']}: the plans "
                                               "were made for a different version of the network file"), err


# -- 7. messages that named no file or field ------------------------------------------------------------
def test_unknown_period_names_the_file_and_field(town, tmp_path, capsys):
    path = _config(town, tmp_path, field={"period": "evening"})
    assert (f"{path}: field.period: unknown period 'evening' (choose from am_peak, midday, pm_peak, night, "
            "holiday_evening)") in _refused(path, tmp_path, capsys)


def test_corridor_signal_the_network_lacks_names_both_configs(town, tmp_path, capsys):
    plan_cfg = yaml.safe_load(town["plan_config"].read_text())
    plan_cfg["corridor"]["signals"] = ["A0", "D"]
    other = tmp_path / "plan_d.yaml"
    other.write_text(yaml.safe_dump(plan_cfg))
    path = _config(town, tmp_path, plan_config=str(other))
    assert (f"{path}: plan_config: {other}: corridor.signals: 'D' is not a signal of cross.net.xml "
            "(its signals: A0)") in _refused(path, tmp_path, capsys)


def test_network_yaml_syntax_error_gives_line_and_column(town, tmp_path, capsys):
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("cross.net.xml", "demand.yaml"):
        (broken / name).write_bytes((town["folder"] / name).read_bytes())
    (broken / "network.yaml").write_text("net: cross.net.xml\ndemand: demand.yaml\nsignals: [A0\ndescription: x\n")
    path = _config(town, tmp_path, network=str(broken))
    assert (f"{path}: network: {broken / 'network.yaml'}: not valid YAML: line 4, column 12: expected ',' or ']', "
            "but got ':' (while parsing a flow sequence that starts on line 3)") in _refused(path, tmp_path, capsys)


def test_read_yaml_gives_line_column_and_problem(tmp_path):
    from engine.errors import ConfigError
    from engine.yamlfile import read_yaml

    path = tmp_path / "twin.yaml"
    path.write_text("name: x\nfield:\n  period: pm_peak\n    window: 17:00-18:00\n")
    with pytest.raises(ConfigError) as err:
        read_yaml(path, "twin config")
    assert str(err.value) == f"{path}: not valid YAML: line 4, column 11: mapping values are not allowed here"


# -- 8. the report's time axes --------------------------------------------------------------------------
def test_report_time_axes_are_clock_times(tmp_path, monkeypatch):
    """Both charts of report.html label their time axis HH:MM (not decimal hours such as 17.1)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from engine.calibrate.counts import Count, write_csv
    from engine.twin import report

    labels: list[list[str]] = []

    def png(fig) -> str:
        fig.canvas.draw()
        for ax in fig.axes:
            labels.append([t.get_text() for t in ax.get_xticklabels() if t.get_text()])
        plt.close(fig)
        return "<img/>"

    monkeypatch.setattr(report, "_png", png)
    begin, n = 61200.0, 10  # 17:00, ten 5-min intervals
    counts = tmp_path / "counts.csv"
    write_csv([Count(begin + 300 * i, begin + 300 * (i + 1), e, None, 40.0 + i, "loop")
               for i in range(n) for e in ("a", "b")], counts)
    forecast = {e: {"mean": [500.0] * 3, "low": [450.0] * 3, "high": [550.0] * 3} for e in ("a", "b")}
    decisions = [{"time_s": begin + 600 * k, "clock": f"17:{10 * k:02d}", "forecast": forecast, "current": "tod",
                  "chosen": "tod", "reason": "kept", "candidates": [], "wall_s": {"total": 1.0}} for k in (1, 2, 3)]
    results = {"seed": 1, "config": {"name": "t", "description": "", "field": {"period": "pm_peak",
                                                                                "window": [begin, begin + 300 * n]},
                                     "twin": {"interval_s": 600, "horizon_s": 900, "forecast": "last",
                                              "start": "state", "screening": "none"}},
               "controllers": {c: {"kpis": {}, "delay_5min": [30.0 + i for i in range(n)],
                                   "plans": [[begin, "tod"], [begin + 1200, "webster"]]} for c in ("twin", "tod")}}
    html = report.render_report(results, {"twin": decisions}, counts, None)
    assert html.count("<img/>") == 2
    shown = [label for axis in labels for label in axis]
    assert shown and all(re.fullmatch(r"\d\d:\d\d", label) for label in shown), labels
    assert {"17:00", "17:10", "17:20", "17:30", "17:40", "17:50"} <= set(labels[0]), labels[0]
