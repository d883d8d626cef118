"""Writing plans: SUMO programs with a WAUT, a CSV timing sheet, the plan as JSON.

The additional file holds one static ``tlLogic`` per signal and period
(``programID`` = the period) and one ``WAUT`` that switches them at the start of
each scheduled period's window (seconds since midnight, repeating daily).

How SUMO switches (``MSTLLogicControl::WAUTSwitchProcedure_GSP`` in SUMO's
``src/microsim/traffic_lights/MSTLLogicControl.cpp``): from the switch time on,
the old program runs until its position in its own cycle (counted from its
first step, whatever its offset) equals its ``GSP`` parameter ("good switching
point", ``<param key="GSP">`` in seconds, 0 when absent); in that same second
the new program is put at its own GSP position, and with ``synchron`` the step
found there is stretched until the new program is in step with its offset.
Nothing runs in between: the old program's state just before its GSP is
followed directly by the new program's state at its GSP. A GSP of 0 made that
"the old program's last step -> the new program's first step", unsafe wherever
the two differ there (a right-turn overlap green through the old program's
all-red, red in the new program's first green: a green ended without yellow;
a program that starts with a clearance: its yellow stretched).

So every exported program gets a GSP at the start of one of its greens, chosen
per signal by :func:`switch_layout`: preferably a green that every program of
the signal shows identically (the switch is then exactly the old program's own
change into that green, and the new program carries on from it), else any
choice of greens whose every scheduled switch replays cleanly through the
independent safety monitor. The new program dwells in a green, never in a
clearance, until it is in step, so a switch never cuts a green, skips a
clearance or breaks coordination. Where no choice can be safe (split phases
with right-turn overlaps: every green of the overlap program starts while an
overlap that the other program's green does not run is still green), the WAUT
switches that period change through a transition program first
(``<from>_to_<to>``: a cycle of the old program whose last clearance leads into
the new program's green, ending the overlaps with their yellow as a controller
does; :func:`bridge_steps`), and to the period's own program one old cycle
later. :func:`check_switching` proves every switch in SUMO before the file is
kept.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import quoteattr

from engine.controllers.programs import timing_steps
from engine.errors import ConfigError
from engine.plan.corridor import corridor_order
from engine.plan.model import Plan, PeriodPlan, PlanValidationError, signal_phases
from engine.signals import GREEN, YELLOW, Intersection, derive_clearance

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

def _tl_logic(sid: str, program_id: str, offset: float, steps: Sequence[Step], names: Sequence[str] | None = None,
              switch_at: SwitchPoint | None = None, comment: str = "") -> list[str]:
    lines = [f"    <tlLogic id={quoteattr(sid)} type=\"static\" programID={quoteattr(program_id)} "
             f"offset=\"{offset:g}\">\n"]
    if comment:
        lines.append(f"        <!-- {_xml_comment(comment)} -->\n")
    for state, dur, k, kind in steps:
        name = names[k] if names and k < len(names) else f"phase {k + 1}"
        if kind != "green":
            name += ":" + kind
        lines.append(f"        <phase duration=\"{dur:g}\" state=\"{state}\" name={quoteattr(name)}/>\n")
    if switch_at is not None:
        lines.append(f"        <!-- WAUT switches at the start of phase {switch_at.phase + 1}'s green -->\n"
                     f"        <param key=\"GSP\" value=\"{switch_at.gsp}\"/>\n")
    lines.append("    </tlLogic>\n")
    return lines


def _xml_comment(text: str) -> str:
    return text.replace("--", "- -")


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


def period_steps(ix: Intersection, pp: PeriodPlan) -> list[tuple[str, float, int, str]]:
    """The steps of ``ix``'s program in period ``pp`` (:func:`_named_steps`)."""
    timing = pp.timings[ix.id]
    return _named_steps(signal_phases(ix, timing), timing.greens)


def programs_xml(plan: Plan, intersections: Mapping[str, Intersection], periods: Sequence[str] | None = None,
                 switches: Sequence[tuple[int, str]] = (), names: Mapping[str, Sequence[str]] | None = None) -> str:
    """An additional file: every period's programs, and a WAUT when ``switches`` are given.

    With switches, each program that takes part in one gets its switch point
    and each period change that some signal cannot make directly its transition
    programs (:func:`plan_switches`); PlanValidationError if a signal has no safe way.
    """
    periods = list(periods or plan.periods)
    lines = ['<?xml version="1.0" encoding="UTF-8"?>\n',
             f"<!-- cqsignal plan for {plan.network}: {', '.join(periods)} -->\n", "<additional>\n"]
    signals = [s for s in intersections if any(s in plan.periods[p].timings for p in periods)]
    pairs = switch_pairs(switches)
    layouts = {sid: plan_switches(plan, intersections[sid], pairs) for sid in signals} if switches else {}
    for p in periods:
        pp = plan.periods[p]
        for sid in signals:
            if sid in pp.timings:
                lines += _tl_logic(sid, p, pp.timings[sid].offset, period_steps(intersections[sid], pp),
                                   (names or {}).get(sid), layouts[sid].points.get(p) if switches else None)
    bridged = [pair for pair in pairs if any(pair in lay.bridges for lay in layouts.values())]
    for a, b in bridged:
        for sid in signals:
            if sid not in plan.periods[a].timings or sid not in plan.periods[b].timings:
                continue
            lay, offset = layouts[sid], plan.periods[b].timings[sid].offset
            if (a, b) in lay.bridges:  # a transition program of its own (bridge_steps)
                lines += _tl_logic(sid, bridge_id(a, b), offset, lay.bridges[(a, b)], (names or {}).get(sid),
                                   SwitchPoint(0, lay.bridges[(a, b)][0][2], "0"),
                                   f"{a} -> {b}: SUMO cannot switch directly here; {a} from its switch point, "
                                   f"its last clearance leading into {b}'s green")
            else:  # switches directly: the new program under the transition's name
                lines += _tl_logic(sid, bridge_id(a, b), offset, period_steps(intersections[sid], plan.periods[b]),
                                   (names or {}).get(sid), lay.points[b], f"{a} -> {b}: {b}'s program")
    if switches:
        waut = waut_switches(plan, switches, bridged)
        # startProg is what runs at midnight: the last switch of the day
        lines.append(f"    <WAUT id=\"{WAUT_ID}\" refTime=\"0\" period=\"{DAY_S}\" "
                     f"startProg={quoteattr(waut[-1][1])}>\n")
        for t, p in waut:
            lines.append(f"        <wautSwitch time=\"{t}\" to={quoteattr(p)}/>\n")
        lines.append("    </WAUT>\n")
        for sid in signals:
            lines.append(f"    <wautJunction wautID=\"{WAUT_ID}\" junctionID={quoteattr(sid)} "
                         f"procedure=\"GSP\" synchron=\"true\"/>\n")
    lines.append("</additional>\n")
    return "".join(lines)


def bridge_id(frm: str, to: str) -> str:
    """programID of the transition programs from period ``frm`` to period ``to``."""
    return f"{frm}_to_{to}"


def waut_switches(plan: Plan, switches: Sequence[tuple[int, str]],
                  bridged: Sequence[tuple[str, str]] = ()) -> list[tuple[int, str]]:
    """The WAUT's (time of day, program) switches, sorted: each period at its time; a change in
    ``bridged`` first to its transition programs, then, one old cycle and a second later (every
    signal has reached its switch point by then), to the period's own."""
    out = []
    for n, (t, to) in enumerate(switches):
        frm = switches[n - 1][1]
        if (frm, to) not in bridged:
            out.append((t, to))
            continue
        wait = int(math.ceil(plan.periods[frm].cycle)) + 1
        nxt = switches[(n + 1) % len(switches)][0]
        if len(switches) > 1 and (nxt - t) % DAY_S <= wait:
            raise PlanValidationError(f"period {to} starts at {_clock(t)}, and its transition from {frm} needs "
                                      f"{wait} s; the next period starts at {_clock(nxt)}")
        out += [(t, bridge_id(frm, to)), ((t + wait) % DAY_S, to)]
    return sorted(out)


# ----------------------------------------------------------------------------- switch points

Step = tuple[str, float, int, str]  # (state, s, green phase k, kind) as :func:`_named_steps` gives them


@dataclass(frozen=True)
class SwitchPoint:
    """Where SUMO's WAUT hands a program over: the start of the green of step ``step``."""

    step: int  # index of the green step in the program as written
    phase: int  # its green phase (0-based)
    gsp: str  # SUMO's GSP parameter: that step's start, s from the program's first step


@dataclass(frozen=True)
class SwitchLayout:
    """One signal's switch points, per period, and its transition programs, per (from, to) period
    change that it cannot make directly."""

    points: dict[str, SwitchPoint]
    bridges: dict[tuple[str, str], list[Step]]


def switch_pairs(switches: Sequence[tuple[int, str]]) -> list[tuple[str, str]]:
    """(from, to) of each program change the WAUT makes, in the day's order (the day repeats:
    the last period of the day runs into the first)."""
    return list(dict.fromkeys((switches[n - 1][1], to) for n, (_, to) in enumerate(switches)
                              if switches[n - 1][1] != to))


def plan_switches(plan: Plan, ix: Intersection, pairs: Sequence[tuple[str, str]]) -> SwitchLayout:
    """:func:`switch_layout` of signal ``ix``'s programs in ``plan``."""
    programs = {p: period_steps(ix, pp) for p, pp in plan.periods.items() if ix.id in pp.timings}
    return switch_layout(ix, programs, [(a, b) for a, b in pairs if a in programs and b in programs])


def switch_layout(ix: Intersection, programs: Mapping[str, Sequence[Step]],
                  pairs: Sequence[tuple[str, str]]) -> SwitchLayout:
    """A switch point for each program of signal ``ix`` that takes part in a switch of ``pairs``,
    and the transition programs of the switches it cannot make directly.

    SUMO goes straight from the old program's state just before its switch
    point to the new program's state at its own (module docstring). The point is
    always the start of a green, so the old program has run its clearance in
    full and the new one enters, and dwells in, a green. Tried in this order:

    1. a green state that every program shows (the same green phase, with the
       same overlaps), earliest phase first: entering it from the old program's
       own clearance is the old program's own change, safe as that program is;
    2. the same green phase k in every program, earliest first (the programs
       share no green state, say one runs a right-turn overlap in every phase);
    3. any green of each program, earliest phases first.

    A choice is kept only if every switch of ``pairs`` replays cleanly through
    the safety monitor (:func:`switch_violations`). Where no choice does (split
    phases with right-turn overlaps: every green of one program starts while an
    overlap the other's greens do not run is still green), the same order is
    tried again letting a switch go through a transition program
    (:func:`bridge_steps`). PlanValidationError if none works.
    """
    names = list(dict.fromkeys(p for pair in pairs for p in pair))
    if not names:
        return SwitchLayout({}, {})
    greens = {p: sorted((i for i, step in enumerate(programs[p]) if step[3] == "green"),
                        key=lambda i, p=p: (programs[p][i][2], i)) for p in names}
    for p in names:
        if not greens[p]:
            raise PlanValidationError(f"{ix.id}: program {p} has no green step to switch at")
    plain = {p: [s[:2] for s in programs[p]] for p in names}
    direct_cache: dict[tuple[str, int, str, int], list] = {}
    bridge_cache: dict[tuple[str, int, str, int], list[Step] | None] = {}

    def violations(a: str, ia: int, b: str, ib: int) -> list:
        key = (a, ia, b, ib)
        if key not in direct_cache:
            direct_cache[key] = switch_violations(ix, plain[a], ia, plain[b], ib)
        return direct_cache[key]

    def bridge(a: str, ia: int, b: str, ib: int) -> list[Step] | None:
        key = (a, ia, b, ib)
        if key not in bridge_cache:
            bridge_cache[key] = next(
                (steps for steps in bridge_steps(ix, programs[a], ia, programs[b], ib)
                 if not (switch_violations(ix, plain[a], ia, [s[:2] for s in steps], 0)
                         or switch_violations(ix, [s[:2] for s in steps], 0, plain[b], ib))), None)
        return bridge_cache[key]

    def ok(choice: Mapping[str, int], bridges: bool) -> bool:
        return all(not violations(a, choice[a], b, choice[b])
                   or (bridges and bridge(a, choice[a], b, choice[b]) is not None)
                   for a, b in pairs if a in choice and b in choice)

    first = names[0]
    same_state = [{p: next((i for i in greens[p] if programs[p][i][0] == programs[first][i0][0]), None)
                   for p in names} for i0 in greens[first]]
    phases = sorted({programs[first][i][2] for i in greens[first]})
    same_phase = [{p: next((i for i in greens[p] if programs[p][i][2] == k), None) for p in names} for k in phases]

    def search(choice: dict[str, int], rest: list[str], bridges: bool) -> dict[str, int] | None:
        if not rest:
            return dict(choice)
        p, rest = rest[0], rest[1:]
        for i in greens[p]:
            choice[p] = i
            if ok(choice, bridges) and (found := search(choice, rest, bridges)) is not None:
                return found
            del choice[p]
        return None

    for bridges in (False, True):
        choices = [c for c in same_state + same_phase if None not in c.values()]
        choice = next((c for c in choices if ok(c, bridges)), None) or search({}, names, bridges)
        if choice is not None:
            return SwitchLayout(_points(programs, choice),
                                {(a, b): bridge(a, choice[a], b, choice[b]) for a, b in pairs
                                 if violations(a, choice[a], b, choice[b])})
    failing = [(a, b) for a, b in pairs if violations(a, greens[a][0], b, greens[b][0])] or list(pairs)
    a, b = failing[0]
    why = violations(a, greens[a][0], b, greens[b][0])
    raise PlanValidationError(
        f"{ix.id}: no way for SUMO to make every scheduled switch safely, directly or through a transition "
        f"program, e.g. {a} -> {b} at the start of phase {programs[a][greens[a][0]][2] + 1}'s green: "
        f"{why[0] if why else 'another switch of the day fails there'}")


def _points(programs: Mapping[str, Sequence[Step]], choice: Mapping[str, int]) -> dict[str, SwitchPoint]:
    out = {}
    for p, i in choice.items():
        # the step's start as SUMO reads the durations written (ms), so that it meets the GSP exactly
        ms = sum(round(float(f"{dur:g}") * 1000) for _, dur, _, _ in programs[p][:i])
        out[p] = SwitchPoint(step=i, phase=programs[p][i][2], gsp=f"{ms / 1000:.3f}".rstrip("0").rstrip("."))
    return out


def bridge_steps(ix: Intersection, old: Sequence[Step], old_at: int, new: Sequence[Step],
                 new_at: int) -> list[list[Step]]:
    """Transition programs from ``old`` (switching at the start of its green step ``old_at``) to
    ``new`` (at its green step ``new_at``), best first; each is entered and left at its start (GSP 0).

    1. One cycle of the old program from its switch point, whose last clearance
       leads into the new green instead of the old one: each link the new green
       does not run shows its yellow (and an all-red where a foe starts;
       :func:`engine.signals.derive_clearance`), as a controller ends an overlap
       when the plan changes. Every phase is served while the WAUT waits.
    2. The old green, the clearance of what the new green does not run, the new green.

    SUMO enters either from the old program's own clearance into that same old
    green (and stretches it), and leaves it at the end of its cycle, from its
    last clearance into the new green; should the WAUT not have switched yet, it
    runs another cycle, back into the old green.
    """
    (s1, d1, k1, _), (s2, d2, k2, _) = old[old_at], new[new_at]

    def clearance(a: str, b: str, k: int) -> list[Step]:
        return [(st, d, k, "yellow" if any(c in YELLOW for c in st) else "all-red")
                for st, d in derive_clearance(ix, a, b)]

    cycle = [*old[old_at:], *old[:old_at]]
    last = max(i for i, step in enumerate(cycle) if step[3] == "green")  # the old green before the point
    return [[*cycle[:last + 1], *clearance(cycle[last][0], s2, cycle[last][2])],
            [(s1, d1, k1, "green"), *clearance(s1, s2, k1), (s2, d2, k2, "green"), *clearance(s2, s1, k2)]]


def switch_violations(ix: Intersection, old: Sequence[tuple[str, float]], old_at: int,
                      new: Sequence[tuple[str, float]], new_at: int) -> list:
    """What the safety monitor finds when SUMO switches from program ``old`` at the start of its
    step ``old_at`` to program ``new`` at the start of its step ``new_at``.

    Replays, second by second as the plan validator does, two cycles of ``old``
    ending at its switch point, then two cycles of ``new`` from its own (unstretched:
    the shortest the new green can be); returns the violations from the switch on.
    """
    from engine.safety import SafetyMonitor

    monitor = SafetyMonitor([ix])
    t = 0
    before = [*old[old_at:], *old[:old_at]] * 2
    switch_t = sum(int(round(d)) for _, d in before)
    for state, dur in [*before, *([*new[new_at:], *new[:new_at]] * 2)]:
        for _ in range(int(round(dur))):
            monitor.observe(float(t), {ix.id: state})
            t += 1
    return [v for v in monitor.violations if v.time >= switch_t]


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

    Each period change is simulated from a cycle before it until the new program
    has taken over (through the transition programs the file's WAUT switches to
    first, if any). Returns one line per switch (when each signal took the new program).
    """
    from engine.safety import SafetyMonitor
    from engine.sim import Simulation

    signals = [s for s in intersections if any(s in pp.timings for pp in plan.periods.values())]
    ixs = [intersections[s] for s in signals]
    waut, cycles = _waut_of(add_file)

    def longest(programs: Sequence[str]) -> float:
        return max((cycles.get((s, p), 0.0) for s in signals for p in programs), default=0.0)

    log: list[str] = []
    sim = Simulation()
    try:
        for n, (t, to) in enumerate(switches):
            frm = switches[n - 1][1]
            if frm == to:
                continue
            # the WAUT's switches from this period's start to the next's: transitions, then the period
            until = (switches[(n + 1) % len(switches)][0] - t) % DAY_S or DAY_S
            steps = sorted(((w - t) % DAY_S, p) for w, p in waut if (w - t) % DAY_S < until)
            via = [p for _, p in steps[:-1]]
            if not steps or steps[-1][1] != to:
                raise PlanValidationError(f"{add_file.name}: the WAUT does not switch to {to} at {_clock(t)}")

            c_from = plan.periods[frm].cycle
            # start a full old cycle early: the monitor needs history (a yellow already
            # running when it starts watching is not a short yellow)
            begin = max(t - int(c_from) - 10, 0)
            # the old program reaches its switch point within a cycle; a transition program, whose first
            # green SUMO stretches on entry, within two of its own cycles
            end = t + steps[-1][0] + int((2 if via else 1) * longest([frm, *via]) + longest([to])) + 10
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
                raise PlanValidationError(f"{add_file.name}: {late[0]} did not switch to {to} by "
                                          f"{_clock(int(end))} (switch at {_clock(t)})")
            unsafe = [v for v in monitor.violations if v.time >= warm]
            if unsafe:
                raise PlanValidationError(f"{add_file.name}: unsafe switch to {to}: {unsafe[0]}")
            last = max(switched.values())
            log.append(f"{_clock(t)} {frm} -> {to}: all {len(signals)} signals switched by "
                       f"{_clock(int(last))} (+{last - t:g} s)"
                       + (f" through the transition program {', '.join(via)}" if via else "")
                       + ", no unsafe state")
    finally:
        sim.close()
    return log


def _waut_of(add_file: Path) -> tuple[list[tuple[int, str]], dict[tuple[str, str], float]]:
    """The file's WAUT switches (time of day, program) and each (signal, program)'s cycle (s)."""
    import xml.etree.ElementTree as ET

    root = ET.parse(add_file).getroot()
    waut = [(int(float(el.get("time"))) % DAY_S, el.get("to")) for el in root.iter("wautSwitch")]
    cycles = {(el.get("id"), el.get("programID")): sum(float(ph.get("duration")) for ph in el.iter("phase"))
              for el in root.iter("tlLogic")}
    return waut, cycles


def _clock(t: int) -> str:
    t = int(t) % DAY_S
    return f"{t // 3600:02d}:{(t % 3600) // 60:02d}:{t % 60:02d}"


# ----------------------------------------------------------------------------- timing sheet

SHEET_COLUMNS = ("intersection", "period", "cycle_s", "offset_s", "phase", "phase_name", "green_s",
                 "pedestrian_clearance_s", "yellow_s", "all_red_s", "start_in_cycle_s", "overlaps")
_SHEET_KEYS = {"pedestrian clearance": "pedestrian_clearance_s", "yellow": "yellow_s", "all-red": "all_red_s"}


def timing_rows(plan: Plan, intersections: Mapping[str, Intersection],
                names: Mapping[str, Sequence[str]] | None = None, order: Sequence[str] = ()) -> list[dict]:
    """One row per signal, period and green phase, as an engineer types it into a controller.

    Each period's signals come in ``order`` (e.g. the corridor's, from one end to the other),
    then any others by id.

    After its green, a phase's clearance: the pedestrian clearance (crossings
    already red, the phase's vehicles still green, as netconvert writes it), the
    yellow and the all-red. ``overlaps`` names the right turns (approach>exit) the
    phase also shows green beyond the network's own phase, when the plan runs
    right-turn overlaps.
    """
    rows = []
    for pp in plan.periods.values():
        for sid in corridor_order(pp.timings, order):
            timing, ix = pp.timings[sid], intersections[sid]
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


