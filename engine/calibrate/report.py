"""The calibration report: markdown with a one-line verdict, a scatter plot, a per-count CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.calibrate.counts import clock
from engine.calibrate.files import write_bytes_atomic, write_text_atomic
from engine.calibrate.geh import GEH_OK, Comparison, Summary, fmt_r2, summarise

WORST_N = 10


@dataclass(frozen=True)
class ReportInfo:
    """What the report says about the run besides the comparisons."""

    network: str
    counts_file: Path
    seed: int
    vehicles: int
    candidates: int
    wall_s: float
    warmup_s: float = 0.0
    reconciled: bool = False


def write_report(out: Path, rows: Sequence[Comparison], info: ReportInfo) -> Summary:
    """Write ``calibration.md``, ``calibration.png`` and ``geh.csv`` into ``out``."""
    summary = summarise(rows)
    write_text_atomic(out / "geh.csv", _csv(rows))
    write_bytes_atomic(out / "calibration.png", _scatter(rows, summary))
    write_text_atomic(out / "calibration.md", _markdown(rows, summary, info))
    return summary


def _csv(rows: Sequence[Comparison]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["interval_start", "interval_end", "edge", "to_edge", "observed", "simulated",
                "observed_veh_h", "simulated_veh_h", "geh", "routable"])
    for r in rows:
        c = r.count
        w.writerow([clock(c.begin), clock(c.end), c.edge, c.to_edge or "", f"{c.value:g}",
                    f"{r.simulated:g}", f"{r.observed_h:.0f}", f"{r.simulated_h:.0f}", f"{r.geh:.2f}",
                    "yes" if r.routable else "no"])
    return buf.getvalue()


def geh_band(observed_h: np.ndarray, limit: float = GEH_OK) -> tuple[np.ndarray, np.ndarray]:
    """Simulated flows (low, high) at which GEH equals ``limit`` for each observed flow."""
    # (M - C)^2 = limit^2/2 (M + C); with d = M - C: d^2 - k d - 2 k C = 0, k = limit^2 / 2
    k = limit * limit / 2.0
    root = np.sqrt(k * k + 8.0 * k * observed_h)
    return observed_h + (k - root) / 2.0, observed_h + (k + root) / 2.0


def _scatter(rows: Sequence[Comparison], summary: Summary) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 6.0), dpi=110)
    obs = np.array([r.observed_h for r in rows])
    top = max(1.0, float(obs.max()) if obs.size else 0.0, max((r.simulated_h for r in rows), default=0.0)) * 1.05
    line = np.linspace(0.0, top, 200)
    low, high = geh_band(line)
    ax.fill_between(line, np.maximum(low, 0), high, color="0.9", label=f"GEH < {GEH_OK:g}")
    ax.plot([0, top], [0, top], color="0.4", lw=1, label="1:1")
    for kind, marker, colour in (("turn", "o", "tab:blue"), ("edge", "s", "tab:green")):
        pts = [r for r in rows if r.count.kind == kind and r.routable]
        if pts:
            ax.scatter([r.observed_h for r in pts], [r.simulated_h for r in pts], s=12, marker=marker,
                       color=colour, alpha=0.6, label=f"{kind} counts ({len(pts)})")
    bad = [r for r in rows if not r.routable]
    if bad:
        ax.scatter([r.observed_h for r in bad], [r.simulated_h for r in bad], s=30, marker="x",
                   color="tab:red", label=f"unroutable ({len(bad)})")
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_aspect("equal")
    ax.set_xlabel("observed flow [veh/h]")
    ax.set_ylabel("simulated flow [veh/h]")
    ax.set_title(f"{100 * summary.share:.1f} % of counts with GEH < {GEH_OK:g}, R² = {fmt_r2(summary.r2)}")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def _markdown(rows: Sequence[Comparison], summary: Summary, info: ReportInfo) -> str:
    counts = [r.count for r in rows]
    gehs = np.array([r.geh for r in rows])
    n_turn = sum(c.to_edge is not None for c in counts)
    intervals = sorted({(c.begin, c.end) for c in counts})
    lengths = sorted({c.length for c in counts})
    lines = [
        f"# Calibration of {info.network} to {info.counts_file.name}",
        "",
        f"**{summary.verdict()}**",
        "",
        "| item | value |",
        "|---|---|",
        f"| counts | {len(rows)}: {n_turn} turning movement, {len(rows) - n_turn} edge "
        f"({len({c.location for c in counts})} locations) |",
        f"| intervals | {len(intervals)} of {', '.join(f'{x / 60:g}' for x in lengths)} min, "
        f"{clock(min(c.begin for c in counts))}-{clock(max(c.end for c in counts))} |",
        f"| GEH < {GEH_OK:g} | {summary.n_ok} ({100 * summary.share:.1f} %) |",
        f"| GEH < 10 | {int((gehs < 10).sum())} ({100 * float((gehs < 10).mean()):.1f} %) |",
        f"| mean / max GEH | {gehs.mean():.2f} / {gehs.max():.2f} |",
        f"| R² (simulated vs observed, 1:1 line) | {fmt_r2(summary.r2)} |",
        f"| vehicles counted: observed / simulated | {sum(c.value for c in counts):.0f} / "
        f"{sum(r.simulated for r in rows):.0f} |",
        f"| calibrated demand | {info.vehicles} vehicles on {info.candidates} candidate routes "
        f"(routeSampler, seed {info.seed}) |",
        f"| unroutable counts | {summary.unroutable} |",
        f"| wall time | {info.wall_s:.0f} s |",
        "",
        "![observed against simulated hourly flows](calibration.png)",
        "",
        "## By interval",
        "",
        f"| interval | counts | GEH < {GEH_OK:g} | observed veh | simulated veh |",
        "|---|---:|---:|---:|---:|",
    ]
    for b, e in intervals:
        sel = [r for r in rows if (r.count.begin, r.count.end) == (b, e)]
        ok = sum(r.ok for r in sel)
        lines.append(f"| {clock(b)}-{clock(e)} | {len(sel)} | {100 * ok / len(sel):.0f} % | "
                     f"{sum(r.count.value for r in sel):.0f} | {sum(r.simulated for r in sel):.0f} |")
    lines += ["", "## Worst locations", "",
              "| location | kind | worst GEH | in | observed veh/h | simulated veh/h | mean GEH |",
              "|---|---|---:|---|---:|---:|---:|"]
    for loc, worst, mean in _worst(rows)[:WORST_N]:
        c = worst.count
        lines.append(f"| `{loc}` | {c.kind} | {worst.geh:.2f} | {clock(c.begin)}-{clock(c.end)} | "
                     f"{worst.observed_h:.0f} | {worst.simulated_h:.0f} | {mean:.2f} |")
    bad = [r for r in rows if not r.routable]
    if bad:
        lines += ["", "## Unroutable counts", "",
                  "No candidate route passes these locations, so no demand can reproduce them; "
                  "they are kept in every figure above (compared with what the twin saw there).", ""]
        for loc in sorted({r.count.location for r in bad}):
            first = next(r.count for r in bad if r.count.location == loc)
            lines.append(f"- `{loc}` ({first.kind}; first row {first.row})")
    prep = ("The counts of each interval were first reconciled (non-negative route flows fitted "
            "by least squares in GEH-like units) so that they agree with each other; "
            if info.reconciled else "")
    warm = (f"The twin starts {info.warmup_s:g} s before the first count with the first "
            "interval's demand, so the network is loaded when counting starts. "
            if info.warmup_s > 0 else "")
    lines += ["", "## Method", "",
              f"{prep}SUMO's routeSampler.py then drew, per interval, whole vehicles on the "
              f"{info.candidates} candidate routes, with departures spread over the interval. {warm}",
              "",
              "GEH = sqrt(2 (M - C)² / (M + C)) on hourly flows: each count and its simulated "
              "value are scaled to veh/h (x 3600 / interval length, x 4 for 15 minutes) before GEH "
              "is computed, and always against the original counts. Simulated values come from one "
              "SUMO run of the calibrated scenario (seed as above, the network's own signal "
              "programs): edge counts from SUMO's edgeData (vehicles entering or departing on the "
              "edge), turning movements from its vehroute output with exit times (vehicles leaving "
              "the from-edge onto the to-edge). Per-count figures are in `geh.csv`.", ""]
    return "\n".join(lines)


def _worst(rows: Sequence[Comparison]) -> list[tuple[str, Comparison, float]]:
    """(location, its worst comparison, its mean GEH), worst first."""
    by_loc: dict[str, list[Comparison]] = {}
    for r in rows:
        by_loc.setdefault(r.count.location, []).append(r)
    out = [(loc, max(rs, key=lambda r: r.geh), float(np.mean([r.geh for r in rs])))
           for loc, rs in by_loc.items()]
    return sorted(out, key=lambda t: -t[1].geh)
