"""Candidate plans the twin tries for the next horizon.

The set a traffic engineer would consider when demand departs from the day's
plan: the plan running now, the other time-of-day plans, and plans re-timed
for the forecast flows — Webster's cycle and splits (isolated), the same with
green-wave offsets (:mod:`engine.plan.webster_plan`), and the green wave on a
shorter and a longer common cycle. Every candidate keeps each signal's phases
(its right-turn overlaps as in the plan running now), so that the
:class:`~engine.twin.follower.PlanFollower` can take it over safely, and every
one passes the plan validator (min greens, clearances, no conflicting green).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from engine.errors import ConfigError
from engine.plan.config import Constraints
from engine.plan.corridor import Corridor
from engine.plan.model import PeriodPlan, validate_period
from engine.signals import Intersection

Flows = dict[tuple[str, str], float]


def label(plan: PeriodPlan) -> str:
    """A candidate's name: ``tod:<period>`` for a time-of-day plan, else ``<method>@<cycle>``."""
    return plan.notes.get("candidate") or f"{plan.method}@{plan.cycle:g}"


def tod_candidate(plan: PeriodPlan) -> PeriodPlan:
    return plan.with_timings(dict(plan.timings), notes={**plan.notes, "candidate": f"tod:{plan.period}"})


def like(plan: PeriodPlan, current: PeriodPlan, name: str) -> PeriodPlan:
    """``plan`` with ``current``'s right-turn overlaps per signal, named ``name``."""
    timings = {s: dataclasses.replace(t, right_turn_overlaps=current.timings[s].right_turn_overlaps)
               if s in current.timings else t for s, t in plan.timings.items()}
    return plan.with_timings(timings, notes={**plan.notes, "candidate": name})


def candidate_plans(current: PeriodPlan, tod: Mapping[str, PeriodPlan], flows: Flows,
                    intersections: Mapping[str, Intersection], corridor: Corridor, limits: Constraints,
                    retime: bool = True, cycle_factors: Sequence[float] = (0.85, 1.15),
                    tag: str = "") -> list[PeriodPlan]:
    """Distinct candidates with distinct names (:func:`label`), the current plan first (as it is);
    ``flows``: forecast veh/h per movement; ``tag`` (e.g. the decision's time of day) is added to
    the names of the re-timed plans, which are made for that moment's forecast.

    Raises :class:`ConfigError` if a time-of-day plan fails validation (the re-timed ones
    are built within the limits; one that cannot be is left out).
    """
    from engine.plan.webster_plan import green_wave_period_plan, webster_period_plan

    out: list[PeriodPlan] = [current]
    for pp in tod.values():
        out.append(tod_candidate(pp))
    if retime and flows:
        period = current.period
        try:
            web = webster_period_plan(period, intersections, flows, limits)
            at = f"/{tag}" if tag else ""
            out.append(like(web, current, f"webster@{web.cycle:g}{at}"))
            wave = green_wave_period_plan(period, intersections, flows, limits, corridor)
            out.append(like(wave, current, f"green_wave@{wave.cycle:g}{at}"))
            for f in cycle_factors:
                c = _round_cycle(wave.cycle * f, limits)
                if c != wave.cycle:
                    v = green_wave_period_plan(period, intersections, flows, limits, corridor, cycle=c)
                    out.append(like(v, current, f"green_wave@{c:g}{at}"))
        except ConfigError:
            pass  # the forecast flows exceed what any cycle within the limits serves: keep the others
    unique: dict[tuple, PeriodPlan] = {}
    names: set[str] = set()
    for pp in out:
        key = _key(pp)
        if key in unique:
            continue
        validate_period(pp, intersections, limits)
        name, k = label(pp), 2
        while name in names:  # e.g. Webster on the same cycle as the running plan, other splits
            name, k = f"{label(pp)}#{k}", k + 1
        names.add(name)
        unique[key] = pp if name == label(pp) else pp.with_timings(dict(pp.timings),
                                                                   notes={**pp.notes, "candidate": name})
    return list(unique.values())


def _key(plan: PeriodPlan) -> tuple:
    return tuple(sorted((s, t.offset % plan.cycle, t.greens, t.right_turn_overlaps) for s, t in plan.timings.items()))


def _round_cycle(cycle: float, limits: Constraints) -> float:
    step = limits.cycle_step_s or 1.0
    c = round(cycle / step) * step
    return float(min(max(c, limits.cycle_min_s), limits.cycle_max_s))
