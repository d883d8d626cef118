"""The twin benchmark's table (benchmarks.twin): how runs of one seed are merged and paired."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.twin import main, merged_runs, table


def _run(folder: Path, delays: dict[str, float], completed: str | None) -> None:
    folder.mkdir(parents=True)
    kpis = {n: {"kpis": {"mean_delay_s": d, "mean_stops": 2.0, "never_inserted": 0}} for n, d in delays.items()}
    (folder / "results.json").write_text(json.dumps({"controllers": kpis}))
    if completed:
        (folder / "manifest.json").write_text(json.dumps({"completed_at": completed}))


def test_a_later_run_of_a_controller_supersedes_an_earlier_one(tmp_path):
    sc = tmp_path / "surge"
    _run(sc / "seed1-twin+tod", {"twin": 300.0, "tod": 350.0}, None)  # kept without a manifest: oldest
    _run(sc / "seed1-twin", {"twin": 310.0}, "2026-12-01T12:00:00+00:00")
    _run(sc / "seed2-tod", {"tod": 340.0}, "2026-12-01T11:00:00+00:00")
    _run(sc / "seed2-twin", {"twin": 320.0}, "2026-12-01T13:00:00+00:00")
    runs = merged_runs(sc)
    assert runs[1]["controllers"]["twin"]["kpis"]["mean_delay_s"] == 310.0
    assert runs[1]["controllers"]["tod"]["kpis"]["mean_delay_s"] == 350.0
    text = table(tmp_path)
    # twin - tod per seed: -40 and -20; mean -30, t(0.975, 1) x sd 14.14 / sqrt(2) = 127.1
    assert "| surge | -30.0 ± 127.1 (-8.7 %, n=2) |" in text


def test_no_runs_is_a_one_line_error(tmp_path, capsys):
    assert main(["--out", str(tmp_path / "empty")]) == 2
    assert "no runs under" in capsys.readouterr().err
