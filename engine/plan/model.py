"""Plans: a fixed-time program per signal and period, and the checks every plan passes.

A :class:`SignalTiming` is what an engineer types into a controller: an offset
and one green per green phase of the network's own phase sequence, optionally
with right-turn overlaps (each right turn also green wherever none of its foes
is, see :func:`engine.signals.with_right_turn_overlaps`). The program
SUMO runs is built from it by :func:`engine.controllers.programs.timing_program`
(each green followed by the network's clearance to the next), so timing never
touches the safety intervals. :func:`validate_period` refuses a plan whose
greens fall below their minimum, whose clearances are missing or out of order,
whose phase times do not sum to the cycle, or that shows conflicting greens.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from engine.controllers.programs import Program, timing_program
from engine.errors import ConfigError, CqSignalError
from engine.plan.config import Constraints
from engine.safety import SafetyMonitor
from engine.signals import GREEN, YELLOW, Intersection, is_green_state, starts_green, with_right_turn_overlaps

THROUGH = "s"


class PlanValidationError(CqSignalError):
    """A plan breaks a hard constraint; it is never written."""


@dataclass(frozen=True)
class SignalTiming:
    """One signal's fixed-time program in one period."""

    signal: str
    # s, as SUMO reads it: the program's first step (the network's own, maybe a clearance)
    # starts at offset + k * cycle
    offset: float
    greens: tuple[float, ...]  # s, one per green phase in the network's cycle order
    right_turn_overlaps: bool = False  # right turns also green wherever none of their foes is


@dataclass(frozen=True, eq=False)
class PeriodPlan:
    """Every signal's timing for one period of the day, on one common cycle."""

    period: str
    method: str
    cycle: float
    timings: dict[str, SignalTiming]
    notes: dict = field(default_factory=dict)  # method details: band widths, objective, ...

    def with_timings(self, timings: dict[str, SignalTiming], **changes) -> PeriodPlan:
        return PeriodPlan(period=changes.get("period", self.period), method=changes.get("method", self.method),
                          cycle=changes.get("cycle", self.cycle), timings=timings,
                          notes=changes.get("notes", dict(self.notes)))


@dataclass(frozen=True, eq=False)
class Plan:
    """Time-of-day plans for a network: one :class:`PeriodPlan` per period."""

    network: str
    periods: dict[str, PeriodPlan]

    def to_dict(self) -> dict:
        return {"network": self.network,
                "periods": {p: {**asdict(pp), "timings": {s: asdict(t) for s, t in pp.timings.items()}}
                            for p, pp in self.periods.items()}}

    @classmethod
    def from_dict(cls, data: dict, source: str = "plan") -> Plan:
        try:
            periods = {}
            for name, pp in data["periods"].items():
                timings = {s: SignalTiming(signal=t["signal"], offset=float(t["offset"]),
                                           greens=tuple(float(g) for g in t["greens"]),
                                           right_turn_overlaps=bool(t.get("right_turn_overlaps", False)))
                           for s, t in pp["timings"].items()}
                periods[name] = PeriodPlan(period=pp["period"], method=pp["method"], cycle=float(pp["cycle"]),
                                           timings=timings, notes=dict(pp.get("notes", {})))
            return cls(network=str(data["network"]), periods=periods)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ConfigError(f"{source}: not a plan ({exc.__class__.__name__}: {exc})") from None

    @classmethod
    def load(cls, path: str | Path) -> Plan:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read plan ({exc})") from None
        return cls.from_dict(data, source=str(path))


# ----------------------------------------------------------------------------- programs

def signal_phases(ix: Intersection, timing: SignalTiming) -> Intersection:
    """The phases ``timing`` runs: the network's own, or those with right-turn overlaps."""
    return with_right_turn_overlaps(ix) if timing.right_turn_overlaps else ix


def program_of(ix: Intersection, timing: SignalTiming) -> Program:
    """The (state, duration) cycle SUMO runs for ``timing``."""
    return timing_program(signal_phases(ix, timing), timing.greens)


def serves_through(ix: Intersection, k: int) -> bool:
    """True when green phase ``k`` runs a through movement (pedestrians cross alongside)."""
    links = set(ix.phases[k].green_links)
    return any(m.link in links and m.direction == THROUGH for m in ix.movements)


def phase_minimums(ix: Intersection, limits: Constraints) -> tuple[float, ...]:
    """Minimum green of each phase: the vehicle minimum, or the pedestrian one where set."""
    ped = limits.pedestrian_min_by_signal.get(ix.id, limits.pedestrian_min_s)
    return tuple(max(limits.min_green_s, ped) if ped is not None and serves_through(ix, k)
                 else limits.min_green_s for k in range(ix.n_phases))


def shares_to_greens(weights: Sequence[float], total: float, minimums: Sequence[float]) -> tuple[float, ...]:
    """Whole-second greens summing to ``total``, in proportion to ``weights``, none below its minimum.

    Phases whose share would fall below their minimum get the minimum; the rest
    is shared again among the others (so the sum is kept). Rounding is by
    largest remainder. ConfigError if the minimums alone exceed ``total``.
    """
    n = len(weights)
    total = float(round(total))
    mins = [float(math.ceil(m - 1e-9)) for m in minimums]
    if sum(mins) > total + 1e-9:
        raise ConfigError(f"minimum greens {mins} need {sum(mins):g} s, only {total:g} s available")
    fixed: dict[int, float] = {}
    while True:
        free = [i for i in range(n) if i not in fixed]
        left = total - sum(fixed.values())
        w = sum(max(weights[i], 0.0) for i in free)
        share = {i: left * (max(weights[i], 0.0) / w if w > 0 else 1.0 / len(free)) for i in free}
        low = [i for i in free if share[i] < mins[i] - 1e-9]
        if not low:
            break
        for i in low:
            fixed[i] = mins[i]
    raw = [fixed.get(i, share.get(i, 0.0)) for i in range(n)]
    out = [max(math.floor(v), mins[i]) for i, v in enumerate(raw)]
    order = sorted(range(n), key=lambda i: raw[i] - math.floor(raw[i]), reverse=True)
    k = 0
    while sum(out) < total:
        out[order[k % n]] += 1
        k += 1
    while sum(out) > total:  # only when flooring met a minimum: take from the largest slack
        i = max(range(n), key=lambda j: out[j] - mins[j])
        out[i] -= 1
    return tuple(float(v) for v in out)


# ----------------------------------------------------------------------------- validation

def validate_period(plan: PeriodPlan, intersections: Mapping[str, Intersection], limits: Constraints) -> None:
    """Raise :class:`PlanValidationError` (saying why) unless every timing of ``plan`` is safe and legal."""
    where = f"plan {plan.period}"
    if not math.isfinite(plan.cycle) or plan.cycle != round(plan.cycle):
        raise PlanValidationError(f"{where}: cycle {plan.cycle:g} s is not a whole number of seconds")
    if not limits.cycle_min_s <= plan.cycle <= limits.cycle_max_s:
        raise PlanValidationError(f"{where}: cycle {plan.cycle:g} s is outside "
                                  f"[{limits.cycle_min_s}, {limits.cycle_max_s}] s")
    if not plan.timings:
        raise PlanValidationError(f"{where}: no signal timings")
    for sid, timing in plan.timings.items():
        if sid not in intersections:
            raise PlanValidationError(f"{where}: signal {sid} is not in the network")
        _validate_signal(f"{where}, signal {sid}", intersections[sid], timing, plan.cycle, limits)


def validate_plan(plan: Plan, intersections: Mapping[str, Intersection], limits: Constraints) -> None:
    """Validate every period of ``plan``."""
    if not plan.periods:
        raise PlanValidationError("plan has no periods")
    for pp in plan.periods.values():
        validate_period(pp, intersections, limits)


def _validate_signal(where: str, ix: Intersection, timing: SignalTiming, cycle: float, limits: Constraints) -> None:
    if len(timing.greens) != ix.n_phases:
        raise PlanValidationError(f"{where}: {len(timing.greens)} greens for {ix.n_phases} green phases")
    for k, (g, lo) in enumerate(zip(timing.greens, phase_minimums(ix, limits))):
        if not math.isfinite(g) or g != round(g):
            raise PlanValidationError(f"{where}: green of phase {k} is {g:g} s, not a whole number of seconds")
        if g + 1e-9 < lo:
            kind = "pedestrian" if lo > limits.min_green_s else "minimum"
            raise PlanValidationError(f"{where}: green of phase {k} ({ix.phases[k].state}) is {g:g} s, "
                                      f"below its {kind} green {lo:g} s")
    if not 0 <= timing.offset < cycle or timing.offset != round(timing.offset):
        raise PlanValidationError(f"{where}: offset {timing.offset:g} s must be a whole second in [0, {cycle:g})")
    program = program_of(ix, timing)
    total = sum(d for _, d in program)
    if abs(total - cycle) > 1e-6:
        raise PlanValidationError(f"{where}: phase times sum to {total:g} s, not the cycle {cycle:g} s "
                                  f"(greens {sum(timing.greens):g} s + clearances {total - sum(timing.greens):g} s)")
    check_program(where, ix, program, limits)


def check_program(where: str, ix: Intersection, program: Program, limits: Constraints) -> None:
    """Clearances after every green, then the safety replay; PlanValidationError naming ``where``."""
    _check_clearances(where, ix, program, limits)
    _check_states(where, ix, program)


def _check_clearances(where: str, ix: Intersection, program: Program, limits: Constraints) -> None:
    """After each green: yellow of at least ``yellow_s``, then all-red of at least ``all_red_s``.

    The clearance lasts until a step turns a link green (a link green on both
    sides of it, an overlap, may stay green throughout; a left that ends
    permissive may come back protected after it). Crossings get no yellow.
    """
    n = len(program)
    for i, (state, _) in enumerate(program):
        if not is_green_state(state):
            continue
        nxt = program[(i + 1) % n][0]
        ending = [L for L, c in enumerate(state)
                  if c in GREEN and nxt[L] not in GREEN and L not in ix.crossing_links]  # no yellow for walkers
        if not ending:
            continue
        yellow = red = 0.0
        j = (i + 1) % n
        while j != i and not starts_green(program[(j - 1) % n][0], program[j][0]):
            s, d = program[j]
            if any(s[L] in YELLOW for L in ending):
                if red > 0:
                    raise PlanValidationError(f"{where}: yellow after all-red leaving {state}")
                yellow += d
            else:
                red += d
            j = (j + 1) % n
        if yellow + 1e-9 < limits.yellow_s:
            raise PlanValidationError(f"{where}: yellow after {state} is {yellow:g} s, "
                                      f"needs at least {limits.yellow_s:g} s")
        if red + 1e-9 < limits.all_red_s:
            raise PlanValidationError(f"{where}: all-red after {state} is {red:g} s, "
                                      f"needs at least {limits.all_red_s:g} s")


def _check_states(where: str, ix: Intersection, program: Program) -> None:
    """Replay two cycles second by second through the engine's independent safety monitor."""
    monitor = SafetyMonitor([ix])
    t = 0.0
    for _ in range(2):
        for state, duration in program:
            for _s in range(int(round(duration))):
                monitor.observe(t, {ix.id: state})
                t += 1.0
    if monitor.violations:
        raise PlanValidationError(f"{where}: {monitor.violations[0]}")
