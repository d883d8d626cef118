"""Webster and green-wave period plans from a period's demand.

Each signal's critical flow ratios come from :mod:`engine.webster` (the one place
the formula lives); the common cycle is the longest Webster cycle among the
signals (the critical intersection sets it), within the cycle bounds. Greens
share each signal's effective green in proportion to its ratios (times a bias
on the arterial's coordinated phases when searching), never below a phase's
minimum. The green wave adds the offsets of the widest two-way band.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from engine.errors import ConfigError
from engine.plan.config import Constraints
from engine.plan.corridor import Corridor, coordinated_phases
from engine.plan.green_wave import green_wave_offsets
from engine.plan.model import (PeriodPlan, SignalTiming, phase_minimums, serves_through,
                               shares_to_greens)
from engine.signals import Intersection
from engine.webster import intersection_flow_ratios, webster_timing, lost_time

Flows = Mapping[tuple[str, str], float]


def design_flows(demand_file: Path, net_file: Path, period: str, scale: float = 1.0,
                 design: str = "peak_15min") -> dict[tuple[str, str], float]:
    """Movement flows (veh/h) to design for: the hourly flow, or the peak 15 minutes' rate (v / PHF)."""
    from engine.demand import load_demand, movement_flows

    demand = load_demand(demand_file)
    flows = movement_flows(demand, net_file, period, scale)
    if design == "peak_15min":
        phf = demand.period(period).phf
        flows = {k: v / phf for k, v in flows.items()}
    return flows


QUARTER_S = 900.0  # the design's busiest interval (s)


def route_design_flows(route_files: Sequence[Path], net_file: Path, begin: float, end: float, scale: float = 1.0,
                       design: str = "peak_15min") -> dict[tuple[str, str], float]:
    """Movement flows (veh/h) to design for, from the vehicles of route files departing in
    ``[begin, end)`` (s, the routes' time): their mean hourly flow, or for ``peak_15min`` that
    flow times the busiest whole 15 minutes' rate over the mean rate (all movements together:
    hourly volume / PHF for a one-hour window), as :func:`design_flows` does for a demand file."""
    from engine.controllers.demand_flows import route_file_flows

    flows = route_file_flows(route_files, net_file, begin, end)
    total = sum(flows.values())
    factor = scale
    starts = [begin + k * QUARTER_S for k in range(int((end - begin) // QUARTER_S))]
    if design == "peak_15min" and total > 0 and starts:
        busiest = max(sum(route_file_flows(route_files, net_file, t, t + QUARTER_S).values()) for t in starts)
        factor *= max(busiest / total, 1.0)  # never below the mean
    return {k: v * factor for k, v in flows.items()}


def direction_volumes(corridor: Corridor, intersections: Mapping[str, Intersection],
                      flows: Flows) -> tuple[float, float]:
    """Arterial through volume (veh/h) summed over the corridor's signals, forward and backward.

    MAXBAND weighs the two bands by these (the heavier direction gets the band).
    """
    out = []
    for links_of in (corridor.forward_links, corridor.backward_links):
        total = 0.0
        for sid, links in zip(corridor.signals, links_of):
            pairs = {(m.from_edge, m.to_edge) for m in intersections[sid].movements if m.link in links}
            total += sum(flows.get(p, 0.0) for p in pairs)
        out.append(total)
    return out[0], out[1]


def band_weights(corridor: Corridor, intersections: Mapping[str, Intersection], flows: Flows,
                 given: tuple[float, float] | None) -> tuple[float, float]:
    """The given band weights, or the period's directional volumes normalised to sum 1."""
    if given is not None:
        return given
    f, b = direction_volumes(corridor, intersections, flows)
    return (f / (f + b), b / (f + b)) if f + b > 0 else (0.5, 0.5)


def signal_ratios(intersections: Mapping[str, Intersection], flows: Flows) -> dict[str, list[float]]:
    """Critical flow ratio of each green phase, per signal."""
    return {sid: intersection_flow_ratios(ix, flows) for sid, ix in intersections.items()}


def common_cycle(intersections: Mapping[str, Intersection], ratios: Mapping[str, Sequence[float]],
                 limits: Constraints) -> tuple[float, dict[str, float]]:
    """The common cycle (longest Webster cycle, whole seconds) and each signal's own Webster cycle."""
    own: dict[str, float] = {}
    need = 0.0
    for sid, ix in intersections.items():
        mins = phase_minimums(ix, limits)
        lost = lost_time(ix)
        t = webster_timing(ratios[sid], lost, limits.cycle_min_s, limits.cycle_max_s, min_green=min(mins))
        own[sid] = t.cycle
        need = max(need, lost + sum(mins))
    if need > limits.cycle_max_s:
        raise ConfigError(f"constraints: minimum greens plus clearances need a {need:g} s cycle, "
                          f"above cycle_max_s {limits.cycle_max_s}")
    cycle = max(max(own.values()), need, limits.cycle_min_s)
    lo, step = limits.cycle_min_s, limits.cycle_step_s
    cycle = lo + math.ceil((cycle - lo) / step - 1e-9) * step
    top = lo + (limits.cycle_max_s - lo) // step * step
    if cycle > top and need <= top:
        cycle = top
    return float(min(cycle, limits.cycle_max_s)), own


def split_greens(ix: Intersection, ratios: Sequence[float], cycle: float, limits: Constraints,
                 boost: Sequence[int] = (), bias: float = 1.0, turn_bias: float = 1.0,
                 shares: Sequence[float] | None = None) -> tuple[float, ...]:
    """Webster greens of ``ix`` at ``cycle`` (or ``shares`` of its effective green, when given).

    Phases in ``boost`` weigh ``bias`` times their ratio; turn-only phases (no
    through movement, e.g. protected lefts) weigh ``turn_bias`` times theirs.
    """
    mins = phase_minimums(ix, limits)
    lost = lost_time(ix)
    if shares is None:
        t = webster_timing(ratios, lost, cycle, cycle, min_green=min(mins))
        if abs(t.cycle - cycle) > 0.5:
            raise ConfigError(f"signal {ix.id}: cannot fit its phases in a {cycle:g} s cycle "
                              f"(needs {t.cycle:g} s)")
        shares = t.greens
    weights = [g * (bias if k in boost else 1.0) * (1.0 if serves_through(ix, k) else turn_bias)
               for k, g in enumerate(shares)]
    return shares_to_greens(weights, cycle - lost, mins)


def webster_period_plan(period: str, intersections: Mapping[str, Intersection], flows: Flows,
                        limits: Constraints, cycle: float | None = None) -> PeriodPlan:
    """Common Webster cycle and splits, offsets 0 (isolated operation on one cycle)."""
    ratios = signal_ratios(intersections, flows)
    c, own = common_cycle(intersections, ratios, limits)
    c = float(cycle) if cycle is not None else c
    timings = {sid: SignalTiming(sid, 0.0, split_greens(ix, ratios[sid], c, limits))
               for sid, ix in intersections.items()}
    notes = {"webster_cycles": {s: round(v, 1) for s, v in own.items()},
             "flow_ratio": {s: round(sum(r), 3) for s, r in ratios.items()}}
    return PeriodPlan(period=period, method="webster", cycle=c, timings=timings, notes=notes)


def green_wave_period_plan(period: str, intersections: Mapping[str, Intersection], flows: Flows,
                           limits: Constraints, corridor: Corridor, cycle: float | None = None,
                           bias: float = 1.0, turn_bias: float = 1.0, weights: tuple[float, float] = (1.0, 1.0),
                           seed: int = 0, offsets_mode: str = "band",
                           shares: Mapping[str, Sequence[float]] | None = None) -> PeriodPlan:
    """Webster splits on the common cycle plus offsets of the widest two-way band.

    ``bias`` weighs the arterial's coordinated phases and ``turn_bias`` the
    turn-only phases (1: plain Webster); the optimiser searches them together
    with ``cycle``, the corridor's speed, the direction weights and
    ``offsets_mode`` ("band" through the whole corridor, or "links": each
    link's own overlap, see :func:`engine.plan.green_wave.link_offsets`).
    ``shares`` replaces Webster's split by given green shares per signal (the
    search uses the network's current programs as such an alternative).
    """
    ratios = signal_ratios(intersections, flows)
    c, own = common_cycle(intersections, ratios, limits)
    c = float(cycle) if cycle is not None else c
    greens = {}
    for sid, ix in intersections.items():
        boost: tuple[int, ...] = ()
        if sid in corridor.signals:
            i = corridor.signals.index(sid)
            boost = tuple(set(coordinated_phases(ix, corridor.forward_links[i]))
                          | set(coordinated_phases(ix, corridor.backward_links[i])))
        greens[sid] = split_greens(ix, ratios[sid], c, limits, boost, bias, turn_bias,
                                   shares.get(sid) if shares else None)
    corridor_ix = {s: intersections[s] for s in corridor.signals}
    offsets, bands = green_wave_offsets(corridor, corridor_ix, greens, c, weights, seed, offsets_mode)
    timings = {sid: SignalTiming(sid, float(offsets.get(sid, 0.0)), greens[sid]) for sid in intersections}
    notes = {"webster_cycles": {s: round(v, 1) for s, v in own.items()},
             "flow_ratio": {s: round(sum(r), 3) for s, r in ratios.items()},
             "band_forward_s": round(bands.forward, 1), "band_backward_s": round(bands.backward, 1),
             "splits": "given shares" if shares else "webster", "bias": round(bias, 3),
             "turn_bias": round(turn_bias, 3), "offsets": offsets_mode,
             "travel_forward_s": [round(t, 1) for t in corridor.forward_times]}
    return PeriodPlan(period=period, method="green_wave", cycle=c, timings=timings, notes=notes)
