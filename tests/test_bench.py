"""``cqsignal bench``: real SUMO runs on the small grid, in worker processes."""

from __future__ import annotations

import io
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from benchmarks.compare import plan_runs
from benchmarks.config import load_config, parse_config
from benchmarks.stats import mean_ci, paired_difference, t_quantile
from engine.cli import main
from engine.errors import ConfigError
from engine.metrics import KPIs

REPO = Path(__file__).resolve().parents[1]
KPI_COLS = KPIs.names()


def write_config(folder: Path, grid: tuple[Path, Path], **changes) -> Path:
    net, routes = grid
    config = {
        "name": "small", "duration": 300, "seeds": 2, "baseline": "fixed",
        "controllers": ["fixed", "max_pressure"],
        "scenarios": [{"network": str(net), "routes": [str(routes)]}],
        **changes,
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "bench.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def small_bench(grid, tmp_path_factory) -> tuple[Path, Path, int]:
    """2 controllers x the grid's routes x 2 seeds, 300 s each: (config, out folder, exit code)."""
    folder = tmp_path_factory.mktemp("bench")
    config = write_config(folder, grid)
    out = folder / "out"
    rc = main(["bench", str(config), "--out", str(out), "--workers", "2", "--no-progress"])
    return config, out, rc


def test_small_bench_writes_table_summary_and_plot(small_bench):
    _, out, rc = small_bench
    assert rc == 0
    table = pd.read_csv(out / "runs.csv", dtype={"error": str}, keep_default_na=False)
    assert len(table) == 4
    assert list(table[["controller", "seed"]].itertuples(index=False, name=None)) == [
        ("fixed", 1), ("fixed", 2), ("max_pressure", 1), ("max_pressure", 2)]
    assert set(KPI_COLS) <= set(table.columns)
    assert {"wall_s", "error", "network", "period", "scale"} <= set(table.columns)
    assert (table["error"] == "").all()
    assert (table["trips"] > 50).all() and (table["mean_delay_s"] > 0).all()
    parquet = pd.read_parquet(out / "runs.parquet")
    pd.testing.assert_series_equal(parquet["mean_delay_s"], table["mean_delay_s"])

    summary = (out / "summary.md").read_text()
    fixed = table[table["controller"] == "fixed"]["mean_delay_s"]
    est = mean_ci(fixed.to_numpy())
    assert f"| fixed | 2 | {est.mean:.1f} ± {est.half_width:.1f} |" in summary
    assert "Change against **fixed**" in summary and "| max_pressure | 2 |" in summary
    png = out / "plots" / "grid_kpis.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "](plots/grid_kpis.png)" in summary


@pytest.mark.slow
def test_same_command_gives_same_numbers(small_bench, tmp_path):
    config, out, _ = small_bench
    again = tmp_path / "again"
    assert main(["bench", str(config), "--out", str(again), "--workers", "1", "--no-progress"]) == 0
    first = pd.read_csv(out / "runs.csv").drop(columns="wall_s")
    second = pd.read_csv(again / "runs.csv").drop(columns="wall_s")
    pd.testing.assert_frame_equal(first, second)

    def tables(path: Path) -> str:  # the summary without its wall-time line and command
        return "\n".join(line for line in path.read_text().splitlines()
                         if not line.startswith(("_Wall time", "cqsignal bench")))

    assert tables(out / "summary.md") == tables(again / "summary.md")


def test_common_random_numbers_pair_controllers(small_bench):
    """Same seed, same vehicles: both controllers see the same number of trips per seed."""
    _, out, _ = small_bench
    t = pd.read_csv(out / "runs.csv")
    trips = t.pivot(index="seed", columns="controller", values="trips")
    assert (trips["fixed"] == trips["max_pressure"]).all()


@pytest.mark.slow
def test_failing_run_is_recorded_and_the_rest_complete(grid, tmp_path):
    """A missing model fails its own runs; exit status 1; Ray is never imported locally."""
    config = write_config(tmp_path, grid, controllers=["fixed", "models/missing.zip"], seeds=[1, 2])
    out = tmp_path / "out"
    code = ("import sys\nfrom engine.cli import main\n"
            f"rc = main(['bench', {str(config)!r}, '--out', {str(out)!r}, '--workers', '2', '--no-progress'])\n"
            "assert 'ray' not in sys.modules, 'ray was imported'\nsys.exit(rc)\n")
    proc = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "2 run(s) failed" in proc.stdout
    table = pd.read_csv(out / "runs.csv", keep_default_na=False)
    ok = table[table["controller"] == "fixed"]
    bad = table[table["controller"] == "missing"]
    assert len(ok) == 2 and (ok["error"] == "").all() and (ok["trips"].astype(int) > 0).all()
    assert len(bad) == 2 and bad["error"].str.contains("model file not found").all()
    summary = (out / "summary.md").read_text()
    assert "## Failed runs (2)" in summary and "missing.zip" in summary


@pytest.mark.slow
def test_demand_sweep_resume_and_plot(grid, tmp_path):
    """scale as an axis: more demand, more trips; the sweep table and plot; --resume reuses runs."""
    config = write_config(tmp_path, grid, controllers=["fixed"], scales=[0.5, 1.5], seeds=[3])
    out = tmp_path / "out"
    assert main(["bench", str(config), "--out", str(out), "--workers", "2", "--no-progress"]) == 0
    t = pd.read_csv(out / "runs.csv").set_index("scale")
    assert t.loc[1.5, "trips"] > 2 * t.loc[0.5, "trips"]
    summary = (out / "summary.md").read_text()
    assert "## Demand sweep" in summary and "| x0.5 | x1.5 |" in summary
    assert (out / "plots" / "grid_delay_vs_scale.png").is_file()
    before = (out / "runs.csv").read_text()
    assert main(["bench", str(config), "--out", str(out), "--resume", "--no-progress"]) == 0
    assert "reused 2 of 2 rows" in (out / "summary.md").read_text()
    after = pd.read_csv(out / "runs.csv")
    pd.testing.assert_frame_equal(pd.read_csv(io.StringIO(before)), after)


def test_bad_config_is_one_line_naming_the_field(grid, tmp_path, capsys):
    net, routes = grid
    bad = write_config(tmp_path, grid, scenarios=[{"network": str(net), "routes": [str(routes)], "perod": "x"}])
    assert main(["bench", str(bad), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "scenarios.0.perod: unknown key" in err and str(bad) in err

    with pytest.raises(ConfigError, match=r"seeds: must be"):
        parse_config({"controllers": ["fixed"], "scenarios": [{"network": "x"}], "seeds": [1, 1]}, "c.yaml")
    with pytest.raises(ConfigError, match=r"c.yaml: controllers.1: unknown controller 'nope'"):
        cfg = parse_config({"controllers": ["fixed", "nope"], "scenarios": [{"network": str(net),
                                                                             "routes": [str(routes)]}],
                            "seeds": 1}, "c.yaml")
        plan_runs(cfg, tmp_path, "c.yaml")
    with pytest.raises(ConfigError, match=r"scenarios.0: period 'am_peak' given"):
        cfg = parse_config({"controllers": ["fixed"], "scenarios": [{"network": str(net), "routes": [str(routes)],
                                                                     "periods": ["am_peak"]}], "seeds": 1}, "c.yaml")
        plan_runs(cfg, tmp_path, "c.yaml")


@pytest.mark.parametrize("name", ["bench_quick.yaml", "bench_full.yaml"])
def test_shipped_configs_plan(name):
    config, base = load_config(REPO / "configs" / name)
    plan = plan_runs(config, base, name)
    assert plan.specs and {s.controller for s in plan.specs} >= {"fixed", "max_pressure"}
    assert len({s.key for s in plan.specs}) == len(plan.specs)
    if name == "bench_full.yaml":
        assert {s.period for s in plan.specs} == {"am_peak", "midday", "pm_peak", "night", "holiday_evening"}
        assert len({s.seed for s in plan.specs if s.scale == 1.0}) >= 5
        assert (REPO / "agents/models/corridor_ppo.zip").is_file() == ("ppo" in {s.controller for s in plan.specs})


def test_t_interval_and_paired_difference():
    # Published two-sided 95 % critical values of Student's t.
    for df, value in [(1, 12.706), (2, 4.303), (4, 2.776), (9, 2.262), (30, 2.042)]:
        assert t_quantile(df) == pytest.approx(value, abs=5e-4)
    est = mean_ci([10.0, 12.0, 14.0])
    assert est.mean == 12.0 and est.half_width == pytest.approx(4.303 * 2.0 / math.sqrt(3), rel=1e-3)
    assert math.isnan(mean_ci([5.0]).half_width)
    diff, pct = paired_difference({1: 9.0, 2: 11.0, 3: 13.5}, {1: 10.0, 2: 12.0, 3: 14.0})
    assert diff.n == 3 and diff.mean == pytest.approx(-5 / 6) and pct == pytest.approx(-100 * (5 / 6) / 12)
    # Pairing removes the seed-to-seed spread: the paired interval is far tighter.
    assert diff.half_width < mean_ci([9.0, 11.0, 13.5]).half_width / 3


@pytest.mark.slow
def test_bench_on_a_local_ray_instance(small_bench, tmp_path):
    """The Ray backend: the same runs give the same numbers as local processes."""
    ray = pytest.importorskip("ray", reason="the optional 'ray' extra is not installed")
    config, local, _ = small_bench
    cfg = yaml.safe_load(config.read_text())
    one_seed = write_config(tmp_path, (Path(cfg["scenarios"][0]["network"]),
                                       Path(cfg["scenarios"][0]["routes"][0])), seeds=[2])
    on_ray = tmp_path / "ray"
    # '--ray local' starts a private instance with --workers CPUs and shuts it down afterwards.
    rc = main(["bench", str(one_seed), "--out", str(on_ray), "--ray", "local", "--workers", "2",
               "--no-progress"])
    assert not ray.is_initialized()
    a = pd.read_csv(on_ray / "runs.csv", dtype={"error": str}, keep_default_na=False)
    assert rc == 0 and (a["error"] == "").all(), a["error"].tolist()
    a = a.drop(columns="wall_s")
    b = pd.read_csv(local / "runs.csv", dtype={"error": str}, keep_default_na=False).drop(columns="wall_s")
    b = b[b["seed"] == 2].reset_index(drop=True)
    assert len(a) == 2 and (a["trips"] > 0).all()
    pd.testing.assert_frame_equal(a, b)
    assert "ray (local)" in (on_ray / "summary.md").read_text()
