"""PNG plots of a benchmark: KPI bars with 95 % CIs per period, and delay against demand scale."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from benchmarks.results import atomic
from benchmarks.stats import mean_ci
from benchmarks.summary import SUMMARY_KPIS, ok_runs
from engine.metrics import KPI_LABELS


def _save(fig: plt.Figure, path: Path) -> Path:
    with atomic(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    return path


def reference_scale(scales: list[float]) -> float:
    """The scale the bar charts show: 1 (the period's own demand) when it was run."""
    return 1.0 if 1.0 in scales else min(scales)


def kpi_bars(table: pd.DataFrame, network: str, path: Path) -> Path:
    """One panel per KPI: a group of bars per period, one bar per controller, CI whiskers."""
    sub = table[table["network"] == network]
    scale = reference_scale(sorted(set(sub["scale"])))
    sub = sub[sub["scale"] == scale]
    good = ok_runs(sub)
    periods = list(dict.fromkeys(sub["period"]))
    controllers = list(dict.fromkeys(sub["controller"]))
    fig, axes = plt.subplots(2, 3, figsize=(max(9.0, 2.2 * len(periods) + 5), 6.5), squeeze=False)
    width = 0.8 / max(1, len(controllers))
    x = np.arange(len(periods))
    for ax, kpi in zip(axes.flat, SUMMARY_KPIS):
        for i, c in enumerate(controllers):
            est = [mean_ci(good[(good["period"] == p) & (good["controller"] == c)][kpi].to_numpy())
                   for p in periods]
            means = [e.mean for e in est]
            errs = [0.0 if math.isnan(e.half_width) else e.half_width for e in est]
            ax.bar(x + (i - (len(controllers) - 1) / 2) * width, means, width, yerr=errs,
                   capsize=2, label=c)
        ax.set_title(KPI_LABELS[kpi][0], fontsize=10)
        ax.set_xticks(x, periods, rotation=20 if len(periods) > 2 else 0, fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 7), fontsize=9)
    fig.suptitle(f"{network}, demand x{scale:g}: mean and 95 % CI over seeds")
    fig.tight_layout(rect=(0, 0.07, 1, 0.96))
    return _save(fig, path)


def delay_vs_scale(table: pd.DataFrame, network: str, path: Path) -> Path | None:
    """Mean delay against demand scale, a line (with CI band) per controller, a panel per period."""
    sub = table[table["network"] == network]
    periods = [p for p in dict.fromkeys(sub["period"]) if sub[sub["period"] == p]["scale"].nunique() > 1]
    if not periods:
        return None
    good = ok_runs(sub)
    fig, axes = plt.subplots(1, len(periods), figsize=(4.5 * len(periods) + 1, 4), squeeze=False)
    for ax, p in zip(axes.flat, periods):
        scales = sorted(set(sub[sub["period"] == p]["scale"]))
        for c in dict.fromkeys(sub["controller"]):
            est = [mean_ci(good[(good["period"] == p) & (good["controller"] == c)
                                & (good["scale"] == s)]["mean_delay_s"].to_numpy()) for s in scales]
            m = np.array([e.mean for e in est])
            h = np.array([0.0 if math.isnan(e.half_width) else e.half_width for e in est])
            (line,) = ax.plot(scales, m, marker="o", label=c)
            ax.fill_between(scales, m - h, m + h, alpha=0.15, color=line.get_color())
        ax.set_title(p, fontsize=10)
        ax.set_xlabel("demand scale")
        ax.set_ylabel(KPI_LABELS["mean_delay_s"][0])
        ax.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=8)
    fig.suptitle(f"{network}: delay against demand (mean, 95 % CI over seeds)")
    fig.tight_layout()
    return _save(fig, path)


def make_plots(table: pd.DataFrame, folder: Path) -> list[Path]:
    """Every plot for every network in the table."""
    out: list[Path] = []
    for network in dict.fromkeys(table["network"]):
        safe = str(network).replace("/", "_")
        out.append(kpi_bars(table, network, folder / f"{safe}_kpis.png"))
        sweep = delay_vs_scale(table, network, folder / f"{safe}_delay_vs_scale.png")
        if sweep is not None:
            out.append(sweep)
    return out
