"""Summaries of the results table: mean and 95 % CI per controller, and the paired change
against a baseline controller, per network, period and demand scale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd
from rich.markup import escape
from rich.table import Table

from benchmarks.stats import Estimate, mean_ci, paired_difference
from engine.metrics import KPI_LABELS, sumo_options_note

# The KPIs a comparison reports, in table order.
SUMMARY_KPIS = ["mean_delay_s", "mean_travel_time_s", "mean_stops", "mean_queue_veh",
                "throughput_veh_h", "co2_kg", "backlog", "dropped"]
LEVEL = 0.95


@dataclass(frozen=True)
class Group:
    """One network, period and scale: every controller's estimates and changes."""

    network: str
    period: str
    scale: float
    means: dict[str, dict[str, Estimate]]  # controller -> kpi -> estimate over seeds
    changes: dict[str, dict[str, tuple[Estimate, float]]]  # controller -> kpi -> (paired diff, %)
    failed: dict[str, int]  # controller -> failed runs
    options: str = ""  # SUMO's drop and teleport options the runs were measured under

    @property
    def title(self) -> str:
        period = "" if self.period == "-" else f" · {self.period}"
        return f"{self.network}{period} · demand x{self.scale:g}"


def ok_runs(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["error"] == ""]


def groups(table: pd.DataFrame, baseline: str) -> list[Group]:
    """Estimates per (network, period, scale) in the table's run order."""
    out = []
    keys = list(dict.fromkeys(zip(table["network"], table["period"], table["scale"])))
    controllers = list(dict.fromkeys(table["controller"]))
    for network, period, scale in keys:
        sub = table[(table["network"] == network) & (table["period"] == period) & (table["scale"] == scale)]
        good = ok_runs(sub)
        by_seed = {c: good[good["controller"] == c].set_index("seed") for c in controllers}
        means = {c: {k: mean_ci(by_seed[c][k].to_numpy(), LEVEL) for k in SUMMARY_KPIS}
                 for c in controllers if c in set(sub["controller"])}
        base = by_seed.get(baseline)
        changes = {}
        if base is not None and len(base):
            for c in means:
                if c != baseline:
                    changes[c] = {k: paired_difference(by_seed[c][k].to_dict(), base[k].to_dict(), LEVEL)
                                  for k in SUMMARY_KPIS}
        failed = {c: int(((sub["controller"] == c) & (sub["error"] != "")).sum()) for c in means}
        notes = {sumo_options_note(r) for r in good.to_dict("records") if "time_to_teleport_s" in r}
        options = notes.pop() if len(notes) == 1 else "; ".join(sorted(notes))
        out.append(Group(network, period, float(scale), means, changes, failed, options))
    return out


def _fmt(kpi: str, value: float) -> str:
    if math.isnan(value):
        return "–"
    text = KPI_LABELS[kpi][1].replace(":d", ":.0f").format(value)
    return text[1:] if text.startswith("-") and float(text) == 0 else text  # no "-0.0"


def fmt_estimate(kpi: str, est: Estimate) -> str:
    if est.n == 0:
        return "–"
    if est.n < 2:
        return _fmt(kpi, est.mean)
    return f"{_fmt(kpi, est.mean)} ± {_fmt(kpi, est.half_width)}"


def fmt_change(kpi: str, change: tuple[Estimate, float]) -> str:
    diff, pct = change
    if diff.n == 0:
        return "–"
    sign = "+" if diff.mean > 0 else ""
    text = f"{sign}{_fmt(kpi, diff.mean)}"
    if diff.n >= 2:
        text += f" ± {_fmt(kpi, diff.half_width)}"
    if not math.isnan(pct):
        text += f" ({'+' if pct > 0 else ''}{pct:.1f} %)"
    return text


def _n(estimates: dict[str, Estimate]) -> int:
    return max((e.n for e in estimates.values()), default=0)


def markdown_tables(gs: list[Group], baseline: str) -> str:
    """The comparison as markdown: a table of means and a table of paired changes per group."""
    labels = [KPI_LABELS[k][0] for k in SUMMARY_KPIS]
    head = "| controller | n | " + " | ".join(labels) + " |\n|---|---:|" + "---:|" * len(labels) + "\n"
    parts = []
    for g in gs:
        options = f" SUMO options: {g.options}." if g.options else ""
        parts.append(f"### {g.title}\n\nMean ± 95 % CI over seeds (n = seeds that ran).{options}\n\n{head}")
        for c, est in g.means.items():
            failed = f" ({g.failed[c]} failed)" if g.failed[c] else ""
            parts.append(f"| {c}{failed} | {_n(est)} | "
                         + " | ".join(fmt_estimate(k, est[k]) for k in SUMMARY_KPIS) + " |\n")
        if g.changes:
            parts.append(f"\nChange against **{baseline}**, paired over seeds "
                         f"(mean difference ± 95 % CI, relative change); bold where the CI "
                         "excludes zero.\n\n" + head)
            for c, ch in g.changes.items():
                cells = [f"**{fmt_change(k, ch[k])}**" if ch[k][0].excludes_zero else fmt_change(k, ch[k])
                         for k in SUMMARY_KPIS]
                n = max(ch[k][0].n for k in SUMMARY_KPIS)
                parts.append(f"| {c} | {n} | " + " | ".join(cells) + " |\n")
        parts.append("\n")
    return "".join(parts)


def sweep_table(table: pd.DataFrame) -> str:
    """Mean delay ± CI against demand scale, per network, period and controller (markdown)."""
    good = ok_runs(table)
    parts = []
    for (network, period), sub in table.groupby(["network", "period"], sort=False):
        scales = sorted(set(sub["scale"]))
        if len(scales) < 2:
            continue
        parts.append(f"### {network} · {period}: mean delay [s/veh] against demand scale\n\n"
                     "| controller | " + " | ".join(f"x{s:g}" for s in scales) + " |\n|---|"
                     + "---:|" * len(scales) + "\n")
        for c in dict.fromkeys(sub["controller"]):
            cells = []
            for s in scales:
                sel = good[(good["network"] == network) & (good["period"] == period)
                           & (good["controller"] == c) & (good["scale"] == s)]
                cells.append(fmt_estimate("mean_delay_s", mean_ci(sel["mean_delay_s"].to_numpy())))
            parts.append(f"| {c} | " + " | ".join(cells) + " |\n")
        parts.append("\n")
    return "".join(parts)


def failures_table(table: pd.DataFrame) -> str:
    bad = table[table["error"] != ""]
    if bad.empty:
        return ""
    lines = ["| controller | network | period | scale | seed | error |\n|---|---|---|---:|---:|---|\n"]
    for r in bad.itertuples():
        error = str(r.error).replace("|", "\\|")
        lines.append(f"| {r.controller} | {r.network} | {r.period} | {r.scale:g} | {r.seed} | {error} |\n")
    return "".join(lines)


def console_table(g: Group, baseline: str) -> Table:
    """One group as a rich table, with the delay change against the baseline."""
    table = Table(title=g.title, caption=escape(g.options) if g.options else None)
    table.add_column("controller")
    table.add_column("n", justify="right")
    for k in SUMMARY_KPIS:
        table.add_column(escape(KPI_LABELS[k][0]), justify="right")
    table.add_column(escape(f"Δ delay vs {baseline}"), justify="right")
    for c, est in g.means.items():
        change = fmt_change("mean_delay_s", g.changes[c]["mean_delay_s"]) if c in g.changes else ""
        table.add_row(escape(c), str(_n(est)), *(fmt_estimate(k, est[k]) for k in SUMMARY_KPIS),
                      escape(change))
    return table
