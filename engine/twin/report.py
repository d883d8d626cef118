"""The twin's HTML report: delay over time, plans chosen, forecast against actual, decisions, accuracy."""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from engine.calibrate.counts import clock
from engine.twin.forecast import accuracy, rolling_forecasts
from engine.twin.whatif import COUNT_STEP_S

SHOWN_DETECTORS = 6  # busiest count locations drawn with their forecasts
KPI_ROWS = (("mean_delay_s", "mean delay [s/veh]", "{:.1f}"), ("mean_travel_time_s", "travel time [s]", "{:.1f}"),
            ("mean_stops", "stops [/veh]", "{:.2f}"), ("mean_queue_veh", "queue [veh/signal]", "{:.1f}"),
            ("throughput_veh_h", "throughput [veh/h]", "{:.0f}"), ("co2_kg", "CO2 [kg]", "{:.0f}"),
            ("never_inserted", "left outside [veh]", "{:d}"), ("trips", "trips", "{:d}"))


def observed_flows(counts_file: Path, begin: float, n: int) -> dict[str, np.ndarray]:
    """Flows (veh/h) per count location and 5-min interval from ``begin``, shape (n,); NaN where none.

    The feed is read as the twin reads it (:func:`engine.twin.decide.feed_series`): a repeated,
    misaligned or out-of-window row is left out, not an error.
    """
    from engine.calibrate.counts import parse_counts_csv
    from engine.twin.decide import feed_series

    if not counts_file.is_file() or counts_file.stat().st_size == 0:
        return {}
    counts = parse_counts_csv(counts_file, counts_file.read_text(encoding="utf-8"))
    return feed_series(counts, sorted({c.edge for c in counts}), begin, begin + n * COUNT_STEP_S).flows


def forecast_accuracy(counts_file: Path, profile: Mapping[str, np.ndarray], begin: float, settings) -> dict:
    """MAPE [%], RMSE [veh/h] and interval coverage per horizon (15, 30 min; ``horizon_s`` when shorter) of
    the twin's forecast method and of the two baselines (last value, the history profile), issued every
    decision interval, every count location against the counted history ``profile`` (smoothed for
    ``ets``, as :mod:`benchmarks.forecast` scores it; the closed loop forecasts its entry loops
    against the demand model's expected flows instead)."""
    n_all = min(len(v) for v in profile.values()) if profile else 0
    actual = observed_flows(counts_file, begin, n_all)
    if not actual:
        return {}
    counted = int(max(np.flatnonzero(np.isfinite(v)).max(initial=-1) for v in actual.values()) + 1)
    every = int(round(settings.interval_s / COUNT_STEP_S))
    # 15 and 30 min where the decisions look that far ahead; a shorter horizon_s (300 or 600 s) is its own
    horizons = [h for h in (900.0, 1800.0) if h <= settings.horizon_s] or [float(settings.horizon_s)]
    steps = int(round(max(horizons) / COUNT_STEP_S))
    truth = {loc: np.nan_to_num(v, nan=0.0) for loc, v in actual.items()}
    out = {}
    for method in dict.fromkeys((settings.forecast, "last", "profile")):
        fcs = rolling_forecasts(actual, profile, range(every, counted - steps + 1, every), steps, method=method,
                                level=settings.level, counted=set(profile))
        out[method] = {f"{int(h // 60)}min": v for h, v in accuracy(fcs, truth, horizons).items()}
    return out


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return f'<img src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}"/>'


CLOCK_STEPS_MIN = (1, 2, 5, 10, 15, 20, 30, 60, 120, 180, 240, 360)  # tick spacings of a time-of-day axis


def clock_axis(ax, begin: float, end: float, most: int = 12) -> None:
    """Ticks of a time-of-day x axis (drawn in hours since midnight) as clock times (``17:10``),
    at whole minutes: the smallest of :data:`CLOCK_STEPS_MIN` that gives at most ``most`` ticks
    over ``begin``-``end`` (s since midnight)."""
    from matplotlib.ticker import FuncFormatter, MultipleLocator

    span_min = max(1.0, (end - begin) / 60.0)
    step = next((m for m in CLOCK_STEPS_MIN if span_min / m <= most), CLOCK_STEPS_MIN[-1])
    ax.xaxis.set_major_locator(MultipleLocator(step / 60.0))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda h, _pos: _hhmm(h * 3600.0)))


def _hhmm(seconds: float) -> str:
    """``HH:MM`` of a time of day in seconds (to the nearest minute; past midnight wraps)."""
    minutes = int(round(seconds / 60.0)) % (24 * 60)
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _delay_chart(results: dict, begin: float) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 3.8))
    for name, r in results["controllers"].items():
        d = np.array([np.nan if v is None else v for v in r["delay_5min"]], dtype=float)
        t = [(begin + (i + 0.5) * COUNT_STEP_S) / 3600.0 for i in range(len(d))]
        ax.plot(t, d, label=name, lw=2.2 if name == "twin" else 1.3)
        if name == "twin":
            for when, plan in r["plans"][1:]:
                ax.axvline(when / 3600.0, color="grey", lw=0.7, ls=":")
                ax.text(when / 3600.0, ax.get_ylim()[1] * 0.97, plan, rotation=90, fontsize=7, va="top")
    n = max((len(r["delay_5min"]) for r in results["controllers"].values()), default=0)
    clock_axis(ax, begin, begin + n * COUNT_STEP_S)
    ax.set_xlabel("time of day")
    ax.set_ylabel("mean delay [s/veh] (by 5 min of due time)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _png(fig)


def _forecast_chart(decisions: Sequence[dict], actual: Mapping[str, np.ndarray], begin: float) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not actual or not decisions:
        return "<p>No forecasts (no twin run).</p>"
    busiest = sorted(actual, key=lambda k: -np.nanmean(actual[k]))[:SHOWN_DETECTORS]
    fig, axes = plt.subplots(len(busiest), 1, figsize=(11, 2.1 * len(busiest)), sharex=True)
    for ax, loc in zip(np.atleast_1d(axes), busiest):
        y = actual[loc]
        t = (begin + (np.arange(len(y)) + 0.5) * COUNT_STEP_S) / 3600.0
        ax.plot(t, y, color="black", lw=1.4, label="counted")
        for k, d in enumerate(decisions):
            f = d.get("forecast", {}).get(loc)
            if not f:
                continue
            tf = (d["time_s"] + (np.arange(len(f["mean"])) + 0.5) * COUNT_STEP_S) / 3600.0
            ax.fill_between(tf, f["low"], f["high"], color="C0", alpha=0.15)
            ax.plot(tf, f["mean"], color="C3" if f.get("fallback") else "C0", lw=1.2,
                    label=("forecast (band: interval)" if k == 0 else None))
        ax.set_ylabel("veh/h", fontsize=8)
        ax.set_title(loc, fontsize=9, loc="left")
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[0].legend(fontsize=7, loc="upper left")
    n = max(len(actual[loc]) for loc in busiest)
    clock_axis(np.atleast_1d(axes)[-1], begin, begin + n * COUNT_STEP_S)  # the axes share x
    np.atleast_1d(axes)[-1].set_xlabel("time of day (red: the profile, used before 7 intervals were counted "
                                        "or where the feed was not trusted)")
    return _png(fig)


def _e(x: object) -> str:
    return html.escape(str(x))


def _fmt(fmt: str, v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return fmt.format(v)


def _kpi_table(results: dict) -> str:
    names = list(results["controllers"])
    head = "".join(f"<th>{_e(n)}</th>" for n in names)
    rows = []
    for key, title, fmt in KPI_ROWS:
        cells = "".join(f"<td>{_fmt(fmt, results['controllers'][n]['kpis'].get(key))}</td>" for n in names)
        rows.append(f"<tr><th>{title}</th>{cells}</tr>")
    return f"<table><tr><th></th>{head}</tr>{''.join(rows)}</table>"


def _decision_table(decisions: Sequence[dict]) -> str:
    if not decisions:
        return "<p>No decisions.</p>"
    rows = []
    for d in decisions:
        cands = "; ".join(f"{c['name']}: " + ", ".join(
            [f"{lv} {x}" for lv, x in c.get("screen", {}).items()]
            + [f"micro {lv} {x}" for lv, x in c.get("final", {}).items()]) for c in d["candidates"])
        feed = "; ".join(d.get("feed", [])) or "ok"
        fb = len(d.get("fallbacks", {}))
        rows.append(f"<tr><td>{_e(d['clock'])}</td><td>{_e(d['current'])}</td><td><b>{_e(d['chosen'])}</b></td>"
                    f"<td>{_e(d['reason'])}</td><td>{_e(feed)}; {fb} location(s) fell back to the profile</td>"
                    f"<td>{d['wall_s']['total']:.0f}</td><td class=small>{_e(cands)}</td></tr>")
    return ("<table><tr><th>time</th><th>running</th><th>chosen</th><th>why</th><th>feed</th><th>wall [s]</th>"
            "<th>candidates: predicted delay [veh·h] (meso low/mean/high, micro)</th></tr>"
            + "".join(rows) + "</table>")


def _accuracy_table(acc: dict) -> str:
    if not acc:
        return ""
    rows = []
    for method, hs in acc.items():
        for h, v in hs.items():
            rows.append(f"<tr><td>{_e(method)}</td><td>{h}</td><td>{_fmt('{:.1f}', v['mape'])}</td>"
                        f"<td>{_fmt('{:.0f}', v['rmse'])}</td><td>{_fmt('{:.0%}', v['coverage'])}</td>"
                        f"<td>{v['n']}</td></tr>")
    return ("<h2>Forecast accuracy (count locations × decision times)</h2><table><tr><th>method</th><th>horizon</th>"
            "<th>MAPE [%]</th><th>RMSE [veh/h]</th><th>interval coverage</th><th>n</th></tr>" + "".join(rows)
            + "</table>")


def render_report(results: dict, decisions: Mapping[str, Sequence[dict]], counts_file: Path,
                  profile: Mapping[str, np.ndarray] | None) -> str:
    """The report as one self-contained HTML page (charts inline)."""
    cfg = results["config"]
    begin = float(cfg["field"]["window"][0])
    end = float(cfg["field"]["window"][1])
    n = int(round((end - begin) / COUNT_STEP_S))
    actual = observed_flows(counts_file, begin, n)
    twin_decisions = decisions.get("twin") or next(iter(decisions.values()), [])
    walls = results.get("decision_wall_s")
    wall = (f"<p>Decision wall time: median {walls['median']:.0f} s, max {walls['max']:.0f} s "
            f"over {walls['n']} decisions.</p>" if walls else "")
    return f"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>cqsignal twin: {_e(cfg['name'])}</title>
<style>body{{font-family:sans-serif;max-width:1200px;margin:1em auto;color:#222}}
table{{border-collapse:collapse;margin:.5em 0}}td,th{{border:1px solid #ccc;padding:3px 7px;font-size:13px;
text-align:right;vertical-align:top}}td.small{{font-size:11px;text-align:left}}h2{{margin-top:1.4em}}</style></head><body>
<h1>Predictive twin — {_e(cfg['name'])}</h1>
<p>{_e(cfg.get('description', ''))}. Field: period {_e(cfg['field']['period'])}, {clock(begin)}–{clock(end)},
seed {results['seed']}. Decisions every {cfg['twin']['interval_s']:g} s looking {cfg['twin']['horizon_s']:g} s
ahead; forecast {_e(cfg['twin']['forecast'])}; what-if from {_e(cfg['twin']['start'])};
screening {_e(cfg['twin']['screening'])}.</p>
<h2>Results (window {clock(begin)}–{clock(end)})</h2>{_kpi_table(results)}
<h2>Delay over time</h2>{_delay_chart(results, begin)}
<h2>Forecast against counts (busiest detectors)</h2>{_forecast_chart(twin_decisions, actual, begin)}
{_accuracy_table(results.get('forecast_accuracy', {}))}
<h2>Decisions</h2>{wall}{_decision_table(twin_decisions)}
</body></html>"""
