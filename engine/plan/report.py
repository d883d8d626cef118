"""The engineer's report (one HTML file, PNGs embedded): timings, time-space diagrams, before/after tables."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from engine.plan.corridor import Corridor, corridor_order
from engine.plan.export import timing_rows
from engine.plan.green_wave import band_widths, corridor_greens, shift
from engine.plan.measure import ApproachResult, intersection_delay
from engine.plan.model import PeriodPlan, Plan, program_of
from engine.signals import Intersection


@dataclass
class PeriodReport:
    """What the report shows for one period."""

    plan: PeriodPlan
    before_kpis: dict | None = None  # network KPIs (seed means) under the network's own programs
    after_kpis: dict | None = None
    before: dict[str, list[ApproachResult]] = field(default_factory=dict)
    after: dict[str, list[ApproachResult]] = field(default_factory=dict)
    seeds: Sequence[int] = ()
    duration_s: float = 0.0


def time_space_png(pp: PeriodPlan, corridor: Corridor, intersections: Mapping[str, Intersection],
                   cycles: int = 3) -> bytes:
    """Time-space diagram: each signal's arterial green (both directions) and the two green bands."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c = pp.cycle
    greens = {s: pp.timings[s].greens for s in corridor.signals}
    fw, bw = corridor_greens(corridor, intersections, greens)
    offsets = [pp.timings[s].offset for s in corridor.signals]
    bands = band_widths(corridor, fw, bw, offsets, c)
    span = cycles * c
    pos = corridor.positions
    fig, ax = plt.subplots(figsize=(11, 6.5), dpi=110)
    bar = max(pos[-1] * 0.012, 6.0) if len(pos) > 1 else 6.0
    for i in range(len(corridor.signals)):
        for arcs, dy in ((fw[i], +bar), (bw[i], -bar)):
            ax.broken_barh([(0, span)], (pos[i] + dy - bar / 2, bar), facecolors="#d62728", linewidth=0)
            g = shift(arcs, offsets[i], c)
            runs = [(a + k * c, b - a) for k in range(cycles) for a, b in g]
            ax.broken_barh(runs, (pos[i] + dy - bar / 2, bar), facecolors="#2ca02c", linewidth=0)
    tf, tb = corridor.arrival_forward(), corridor.arrival_backward()
    for k in range(-1, cycles + 1):
        if bands.forward > 0:
            t0 = bands.forward_start + k * c
            xs = [t0 + t for t in tf] + [t0 + bands.forward + t for t in reversed(tf)]
            ax.fill(xs, list(pos) + list(reversed(pos)), color="#1f77b4", alpha=0.25, linewidth=0)
        if bands.backward > 0:
            t0 = bands.backward_start + k * c
            xs = [t0 + t for t in tb] + [t0 + bands.backward + t for t in reversed(tb)]
            ax.fill(xs, list(pos) + list(reversed(pos)), color="#ff7f0e", alpha=0.25, linewidth=0)
    ax.set_xlim(0, span)
    ax.set_ylim(-3 * bar, (pos[-1] if pos else 0) + 3 * bar)
    ax.set_yticks(list(pos), [f"{s}\n{p:.0f} m" for s, p in zip(corridor.signals, pos)], fontsize=8)
    ax.set_xlabel("time [s] (upper bar of each signal: forward through green, lower: backward)")
    ax.set_title(f"{pp.period}: cycle {c:g} s; green band forward {bands.forward:.0f} s (blue), "
                 f"backward {bands.backward:.0f} s (orange)")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}
table{border-collapse:collapse;margin:0.6em 0 1.4em}th,td{border:1px solid #bbb;padding:3px 7px;text-align:right}
th{background:#eee}td.l,th.l{text-align:left}.losA,.losB{background:#d9f2d9}.losC,.losD{background:#fff4cc}
.losE,.losF{background:#f8d0d0}.note{color:#555;font-size:0.9em}"""


def _e(x: object) -> str:
    return html.escape(str(x))


def _timing_table(pp: PeriodPlan, intersections: Mapping[str, Intersection],
                  names: Mapping[str, Sequence[str]], order: Sequence[str] = ()) -> str:
    overlaps: dict[str, list[str]] = {}
    sheet = timing_rows(Plan("", {pp.period: pp}), intersections, names, order)
    for r in sheet:
        if r["overlaps"]:
            overlaps.setdefault(r["intersection"], []).append(f"{r['phase_name']}: {r['overlaps']}")
    rows = ["<table><tr><th class=l>signal</th><th>cycle [s]</th><th>offset [s]</th>"
            "<th class=l>greens [s] (phase: green)</th><th>clearance [s]</th>"
            "<th class=l>right-turn overlaps (phase: approach&gt;exit)</th></tr>"]
    for sid in dict.fromkeys(r["intersection"] for r in sheet):  # the sheet's order
        t, ix = pp.timings[sid], intersections[sid]
        program = program_of(ix, t)
        clear = sum(d for _, d in program) - sum(t.greens)
        greens = ", ".join(f"{_e((names.get(sid) or [''] * ix.n_phases)[k] or k + 1)}: {g:g}"
                           for k, g in enumerate(t.greens))
        rows.append(f"<tr><td class=l>{_e(sid)}</td><td>{pp.cycle:g}</td><td>{t.offset:g}</td>"
                    f"<td class=l>{greens}</td><td>{clear:g}</td>"
                    f"<td class=l>{_e('; '.join(overlaps.get(sid, [])) or 'none')}</td></tr>")
    rows.append("</table>")
    return "".join(rows)


def _kpi_table(before: dict | None, after: dict | None) -> str:
    if not before or not after:
        return ""
    keys = [("mean_delay_s", "mean delay [s/veh]", "{:.1f}"), ("mean_stops", "stops [/veh]", "{:.2f}"),
            ("mean_travel_time_s", "travel time [s]", "{:.1f}"), ("throughput_veh_h", "throughput [veh/h]", "{:.0f}"),
            ("never_inserted", "never inserted [veh]", "{:.0f}")]
    rows = ["<table><tr><th class=l>network</th><th>before</th><th>after</th><th>change</th></tr>"]
    for k, label, fmt in keys:
        b, a = before[k], after[k]
        ch = f"{(a - b) / b * 100:+.1f} %" if b else ""
        rows.append(f"<tr><td class=l>{label}</td><td>{fmt.format(b)}</td><td>{fmt.format(a)}</td><td>{ch}</td></tr>")
    rows.append("</table>")
    return "".join(rows)


def _approach_table(before: dict[str, list[ApproachResult]], after: dict[str, list[ApproachResult]],
                    order: Sequence[str] = ()) -> str:
    head = ("<table><tr><th class=l>signal</th><th class=l>approach</th><th>veh</th>"
            "<th>delay before [s]</th><th>delay after [s]</th><th>v/c before</th><th>v/c after</th>"
            "<th>95% queue before [veh]</th><th>95% queue after [veh]</th><th>LOS before</th><th>LOS after</th></tr>")
    rows = [head]
    for sid in corridor_order(after, order):
        after_rows = after[sid]
        before_rows = {r.approach.stop_edge: r for r in before.get(sid, [])}
        for r in sorted(after_rows, key=lambda r: r.approach.label):
            b = before_rows.get(r.approach.stop_edge)
            bd = f"{b.delay_s:.1f}" if b else ""
            bv = f"{b.vc:.2f}" if b else ""
            bq = f"{b.queue95_veh:.0f}" if b else ""
            bl = b.los if b else ""
            rows.append(f"<tr><td class=l>{_e(sid)}</td><td class=l>{_e(r.approach.label)} "
                        f"({_e(r.approach.stop_edge)})</td><td>{r.vehicles}</td><td>{bd}</td>"
                        f"<td>{r.delay_s:.1f}</td><td>{bv}</td><td>{r.vc:.2f}</td><td>{bq}</td>"
                        f"<td>{r.queue95_veh:.0f}</td><td class=los{bl}>{bl}</td>"
                        f"<td class=los{r.los}>{r.los}</td></tr>")
        d_b, l_b = intersection_delay(before.get(sid, []))
        d_a, l_a = intersection_delay(after_rows)
        rows.append(f"<tr><th class=l>{_e(sid)}</th><th class=l>intersection</th><th></th><th>{d_b:.1f}</th>"
                    f"<th>{d_a:.1f}</th><th></th><th></th><th></th><th></th><th class=los{l_b}>{l_b}</th>"
                    f"<th class=los{l_a}>{l_a}</th></tr>")
    rows.append("</table>")
    return "".join(rows)


def render_report(plan: Plan, periods: Sequence[PeriodReport], corridor: Corridor,
                  intersections: Mapping[str, Intersection], names: Mapping[str, Sequence[str]],
                  header: Mapping[str, str], switch_log: Sequence[str] = (), diagram_cycles: int = 3) -> str:
    """The whole report as one self-contained HTML page."""
    out = ["<!DOCTYPE html><html><head><meta charset='utf-8'>",
           f"<title>Signal plan: {_e(plan.network)}</title><style>{_CSS}</style></head><body>",
           f"<h1>Fixed-time signal plan: {_e(plan.network)}</h1><table>"]
    out += [f"<tr><td class=l>{_e(k)}</td><td class=l>{_e(v)}</td></tr>" for k, v in header.items()]
    out.append("</table>")
    if switch_log:
        out.append("<h2>Time-of-day switching (checked in SUMO)</h2><ul>")
        out += [f"<li>{_e(line)}</li>" for line in switch_log]
        out.append("</ul>")
    for pr in periods:
        pp = pr.plan
        out.append(f"<h2>{_e(pp.period)} ({_e(pp.method)})</h2>")
        notes = {k: v for k, v in pp.notes.items() if not isinstance(v, (dict, list))}
        if notes:
            out.append("<p class=note>" + "; ".join(f"{_e(k)} = {_e(v)}" for k, v in notes.items()) + "</p>")
        out.append(_timing_table(pp, intersections, names, corridor.signals))
        png = base64.b64encode(time_space_png(pp, corridor, intersections, diagram_cycles)).decode()
        out.append(f"<img alt='time-space diagram {_e(pp.period)}' src='data:image/png;base64,{png}'/>")
        if pr.after:
            out.append(f"<h3>Before (network's own programs) and after, {len(pr.seeds)} seed(s) "
                       f"{', '.join(map(str, pr.seeds))}, {pr.duration_s:g} s simulated</h3>")
            out.append(_kpi_table(pr.before_kpis, pr.after_kpis))
            out.append(_approach_table(pr.before, pr.after, corridor.signals))
    out.append("<p class=note>Control delay per approach: SUMO edgeData time loss on the approach's edges "
               "(from the upstream signal or source to the stop line) per arriving vehicle. 95% queue: the "
               "95th percentile over cycles of the largest number of halting vehicles on the approach. v/c: "
               "the period's design demand over capacity (saturation flow x lanes x green / cycle; a "
               "permissive left's green at the rate its opposing traffic leaves it, HCM 2010 Ch. 31) of the "
               "critical lane group. LOS: HCM thresholds for signalised intersections (A &le; 10, B &le; 20, "
               "C &le; 35, D &le; 55, E &le; 80, F &gt; 80 s/veh, F also when v/c &gt; 1).</p>")
    out.append("</body></html>\n")
    return "".join(out)


