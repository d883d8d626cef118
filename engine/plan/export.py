"""Writing plans: SUMO programs with a WAUT, a CSV timing sheet, the plan as JSON.

The additional file holds one static ``tlLogic`` per signal and period
(``programID`` = the period) and one ``WAUT`` that switches them at the start of
each scheduled period's window (seconds since midnight, repeating daily). The
switch uses SUMO's GSP procedure with ``synchron``: the old program runs on
until it reaches the start of its first green, and the new one takes over in
the same green (stretched to its own offset), so a switch never cuts a green,
skips a clearance or breaks coordination. :func:`check_switching` proves this
in SUMO for every switch before the file is kept.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from xml.sax.saxutils import quoteattr

from engine.controllers.programs import timing_steps
from engine.errors import ConfigError
from engine.plan.model import Plan, PeriodPlan, PlanValidationError, signal_phases
from engine.signals import GREEN, YELLOW, Intersection

DAY_S = 86400
WAUT_ID = "time_of_day"


def write_text_atomic(path: Path, text: str) -> Path:
    """Write ``text`` so that a reader never sees half a file (:mod:`engine.outputs`)."""
    from engine.outputs import atomic_write_text

    return atomic_write_text(path, text)


# ----------------------------------------------------------------------------- schedule

def schedule_switches(windows: Mapping[str, tuple[int, int]], schedule: Sequence[str]) -> list[tuple[int, str]]:
    """(time of day, period) at which the WAUT switches, sorted; ConfigError if windows overlap."""
    if not schedule:
        raise ConfigError("schedule: no periods to switch between")
    for p in schedule:
        if p not in windows:
            raise ConfigError(f"schedule: period {p!r} has no time-of-day window")
    arcs = {p: _day_arcs(windows[p]) for p in schedule}
    for i, a in enumerate(schedule):
        for b in schedule[i + 1:]:
            if any(x0 < y1 and y0 < x1 for x0, x1 in arcs[a] for y0, y1 in arcs[b]):
                raise ConfigError(f"schedule: periods {a} ({_hhmm(windows[a])}) and {b} ({_hhmm(windows[b])}) "
                                  "overlap; a day plan switches between periods that do not")
    return sorted((windows[p][0] % DAY_S, p) for p in schedule)


def _day_arcs(window: tuple[int, int]) -> list[tuple[int, int]]:
    start, end = window[0] % DAY_S, window[0] % DAY_S + (window[1] - window[0])
    return [(start, end)] if end <= DAY_S else [(start, DAY_S), (0, end - DAY_S)]


def _hhmm(window: tuple[int, int]) -> str:
    return "-".join(f"{(t % DAY_S) // 3600:02d}:{(t % 3600) // 60:02d}" for t in window)


# ----------------------------------------------------------------------------- SUMO programs

def _tl_logic(ix: Intersection, pp: PeriodPlan, names: Sequence[str] | None = None) -> list[str]:
    timing = pp.timings[ix.id]
    lines = [f"    <tlLogic id={quoteattr(ix.id)} type=\"static\" programID={quoteattr(pp.period)} "
             f"offset=\"{timing.offset:g}\">\n"]
    phases = signal_phases(ix, timing)
    for state, dur, k, kind in _named_steps(phases, timing.greens):
        name = names[k] if names and k < len(names) else f"phase {k + 1}"
        if kind != "green":
            name += ":" + kind
        lines.append(f"        <phase duration=\"{dur:g}\" state=\"{state}\" name={quoteattr(name)}/>\n")
    lines.append("    </tlLogic>\n")
    return lines


def _named_steps(ix: Intersection, greens: Sequence[float]) -> list[tuple[str, float, int, str]]:
    """The program's steps (state, s, green phase k, kind): kind is "green", "yellow",
    "pedestrian clearance" (crossings red, vehicles still green: netconvert's programs) or "all-red".

    A step is phase k's green where the step before it (cyclically: a program
    may begin with the last phase's clearance) belongs to another phase.
    """
    steps = timing_steps(ix, greens)
    out = []
    for i, (state, dur, k) in enumerate(steps):
        nxt = ix.phases[ix.next_phase(k)].state
        if steps[i - 1][2] != k:
            kind = "green"
        elif any(c in YELLOW for c in state):
            kind = "yellow"
        elif any(c in GREEN and nxt[L] not in GREEN for L, c in enumerate(state)):
            kind = "pedestrian clearance"  # greens that end later: the crossings ended before them
        else:
            kind = "all-red"
        out.append((state, dur, k, kind))
    return out


def programs_xml(plan: Plan, intersections: Mapping[str, Intersection], periods: Sequence[str] | None = None,
                 switches: Sequence[tuple[int, str]] = (), names: Mapping[str, Sequence[str]] | None = None) -> str:
    """An additional file: every period's programs, and a WAUT when ``switches`` are given."""
    periods = list(periods or plan.periods)
    lines = ['<?xml version="1.0" encoding="UTF-8"?>\n',
             f"<!-- cqsignal plan for {plan.network}: {', '.join(periods)} -->\n", "<additional>\n"]
    signals = [s for s in intersections if any(s in plan.periods[p].timings for p in periods)]
    for p in periods:
        pp = plan.periods[p]
        for sid in signals:
            if sid in pp.timings:
                lines += _tl_logic(intersections[sid], pp, (names or {}).get(sid))
    if switches:
        # startProg is what runs at midnight: the last switch of the day
        lines.append(f"    <WAUT id=\"{WAUT_ID}\" refTime=\"0\" period=\"{DAY_S}\" "
                     f"startProg={quoteattr(switches[-1][1])}>\n")
        for t, p in switches:
            lines.append(f"        <wautSwitch time=\"{t}\" to={quoteattr(p)}/>\n")
        lines.append("    </WAUT>\n")
        for sid in signals:
            lines.append(f"    <wautJunction wautID=\"{WAUT_ID}\" junctionID={quoteattr(sid)} "
                         f"procedure=\"GSP\" synchron=\"true\"/>\n")
    lines.append("</additional>\n")
    return "".join(lines)


def phase_names(net_file: Path, intersections: Mapping[str, Intersection]) -> dict[str, list[str]]:
    """Names the network gives its green phases ("phase k" where it gives none).

    From the program each signal runs (:mod:`engine.network`): its steps as the
    net file writes them, when that program is the net's own.
    """
    from engine.network import load_network

    net = load_network(net_file).net
    out = {}
    for sid, ix in intersections.items():
        try:
            steps = net.getTLS(sid).getPrograms()[ix.program_id].getPhases()
        except KeyError:  # a program from an additional file
            steps = []
        same = [(p.state, float(p.duration)) for p in steps] == list(ix.program)
        out[sid] = [(getattr(steps[ph.program_index], "name", "") if same else "") or f"phase {k + 1}"
                    for k, ph in enumerate(ix.phases)]
    return out


# ----------------------------------------------------------------------------- check in SUMO

def check_switching(add_file: Path, net_file: Path, plan: Plan, intersections: Mapping[str, Intersection],
                    switches: Sequence[tuple[int, str]], workdir: Path) -> list[str]:
    """Simulate (no traffic) across every switch: programs must change and no state may be unsafe.

    Returns one line per switch (when each signal took the new program).
    """
    from engine.safety import SafetyMonitor
    from engine.sim import Simulation

    signals = [s for s in intersections if any(s in pp.timings for pp in plan.periods.values())]
    ixs = [intersections[s] for s in signals]
    log: list[str] = []
    sim = Simulation()
    try:
        for n, (t, to) in enumerate(switches):
            frm = switches[n - 1][1]
            if frm == to:
                continue
            c_from, c_to = plan.periods[frm].cycle, plan.periods[to].cycle
            # start a full old cycle early: the monitor needs history (a yellow already
            # running when it starts watching is not a short yellow)
            begin, end = max(t - int(c_from) - 10, 0), t + int(c_from + c_to) + 10
            warm = begin + 10
            sim.start(["--net-file", str(net_file), "--additional-files", str(add_file),
                       "--begin", str(begin), "--end", str(end), "--no-step-log", "true",
                       "--no-warnings", "true"], error_log=workdir / "waut-check.log")
            monitor = SafetyMonitor(ixs)
            switched: dict[str, float] = {}
            tl = sim.api.trafficlight
            while sim.time < end - 1:
                now = sim.time
                progs = {s: tl.getProgram(s) for s in signals}
                for s, p in progs.items():
                    if now < t and p != frm:
                        raise PlanValidationError(f"{add_file.name}: {s} runs program {p} before the "
                                                  f"{to} switch at {_clock(t)}, expected {frm}")
                    if p == to and s not in switched:
                        switched[s] = now
                monitor.observe(now, {s: sim.signal_state(s) for s in signals})
                sim.step()
            sim.close()
            late = [s for s in signals if s not in switched]
            if late:
                raise PlanValidationError(f"{add_file.name}: {late[0]} did not switch to {to} within "
                                          f"{c_from:g} s of {_clock(t)}")
            unsafe = [v for v in monitor.violations if v.time >= warm]
            if unsafe:
                raise PlanValidationError(f"{add_file.name}: unsafe switch to {to}: {unsafe[0]}")
            last = max(switched.values())
            log.append(f"{_clock(t)} {frm} -> {to}: all {len(signals)} signals switched by "
                       f"{_clock(int(last))} (+{last - t:g} s), no unsafe state")
    finally:
        sim.close()
    return log


def _clock(t: int) -> str:
    t = int(t) % DAY_S
    return f"{t // 3600:02d}:{(t % 3600) // 60:02d}:{t % 60:02d}"


# ----------------------------------------------------------------------------- timing sheet

SHEET_COLUMNS = ("intersection", "period", "cycle_s", "offset_s", "phase", "phase_name", "green_s",
                 "pedestrian_clearance_s", "yellow_s", "all_red_s", "start_in_cycle_s", "overlaps")
_SHEET_KEYS = {"pedestrian clearance": "pedestrian_clearance_s", "yellow": "yellow_s", "all-red": "all_red_s"}


def timing_rows(plan: Plan, intersections: Mapping[str, Intersection],
                names: Mapping[str, Sequence[str]] | None = None) -> list[dict]:
    """One row per signal, period and green phase, as an engineer types it into a controller.

    After its green, a phase's clearance: the pedestrian clearance (crossings
    already red, the phase's vehicles still green, as netconvert writes it), the
    yellow and the all-red. ``overlaps`` names the right turns (approach>exit) the
    phase also shows green beyond the network's own phase, when the plan runs
    right-turn overlaps.
    """
    rows = []
    for pp in plan.periods.values():
        for sid, timing in pp.timings.items():
            ix = intersections[sid]
            phases = signal_phases(ix, timing)
            by_phase: dict[int, dict] = {}
            steps = _named_steps(phases, timing.greens)
            t = 0.0
            for _state, dur, k, kind in steps:
                if kind == "green":
                    added = set(phases.phases[k].green_links) - set(ix.phases[k].green_links)
                    overlaps = sorted({f"{m.from_edge}>{m.to_edge}" for m in ix.movements if m.link in added})
                    by_phase[k] = {"intersection": sid, "period": pp.period, "cycle_s": pp.cycle,
                                   "offset_s": timing.offset, "phase": k + 1,
                                   "phase_name": (names or {}).get(sid, [f"phase {k + 1}"] * (k + 1))[k],
                                   "green_s": dur, "pedestrian_clearance_s": 0.0, "yellow_s": 0.0,
                                   "all_red_s": 0.0, "start_in_cycle_s": t, "overlaps": " ".join(overlaps)}
                t += dur
            for _state, dur, k, kind in steps:
                if kind != "green":
                    by_phase[k][_SHEET_KEYS[kind]] += dur
            rows += [by_phase[k] for k in sorted(by_phase)]
    return rows


def timing_sheet_csv(rows: Sequence[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=SHEET_COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:g}" if isinstance(v, float) else v) for k, v in r.items()})
    return buf.getvalue()


def write_plan_json(plan: Plan, path: Path) -> Path:
    return write_text_atomic(path, json.dumps(plan.to_dict(), indent=2) + "\n")


