"""Webster's method: one cycle and its green splits from the critical flow ratios.

Webster (1958) found that the cycle that minimises delay at an isolated signal is
close to ``C0 = (1.5 L + 5) / (1 - Y)``, with ``L`` the time lost per cycle and
``Y`` the sum over phases of the critical flow ratio ``y = v / s`` (the largest
flow-to-saturation ratio among the lane groups a phase serves). Effective green
``C - L`` is then shared in proportion to each phase's ``y``. This module is the
one place the formula lives: the ``webster`` controller and plan generation
both call it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from engine.errors import ConfigError
from engine.signals import Intersection

SAT_THROUGH = 1600.0  # veh/h/lane for lane groups with a through movement
SAT_TURN = 1500.0  # veh/h/lane for turn-only lane groups
THROUGH = "s"  # SUMO's direction letter for straight on


@dataclass(frozen=True)
class WebsterTiming:
    """A fixed-time timing: cycle (greens + lost time) and a green per phase, in seconds."""

    cycle: float
    greens: tuple[float, ...]
    lost_time: float
    flow_ratio: float  # Y, the sum of the phases' critical flow ratios
    webster_cycle: float  # C0 before clamping (inf when Y >= 1: the formula has no answer)

    @property
    def saturated(self) -> bool:
        """True when demand is at or above capacity (Y >= 1)."""
        return self.flow_ratio >= 1.0


def webster_cycle(flow_ratio: float, lost_time_s: float) -> float:
    """Webster's optimum cycle ``(1.5 L + 5) / (1 - Y)``; inf when ``Y >= 1``."""
    if flow_ratio >= 1.0:
        return math.inf
    return (1.5 * lost_time_s + 5.0) / (1.0 - flow_ratio)


def webster_timing(
    phase_flow_ratios: Sequence[float],
    lost_time_s: float,
    min_cycle: float = 60.0,
    max_cycle: float = 180.0,
    min_green: float = 10.0,
    max_green: float | None = None,
    whole_seconds: bool = True,
) -> WebsterTiming:
    """Cycle and greens for one intersection by Webster's method.

    The cycle is C0 clamped to ``[min_cycle, max_cycle]``, then widened if the
    phases' minimum greens do not fit (min green wins over max cycle) or
    narrowed if every phase would exceed ``max_green``. Greens share ``C - L`` in
    proportion to the flow ratios, clamped to ``[min_green, max_green]`` with the
    remainder shared again among the unclamped phases. ``whole_seconds`` rounds
    greens to whole seconds (largest remainder, same total).
    """
    ys = [float(y) for y in phase_flow_ratios]
    if not ys:
        raise ConfigError("webster_timing: no green phases")
    if any(not math.isfinite(y) or y < 0 for y in ys):
        raise ConfigError(f"webster_timing: flow ratios must be finite and >= 0, got {ys}")
    if not math.isfinite(lost_time_s) or lost_time_s < 0:
        raise ConfigError(f"webster_timing: lost time must be >= 0, got {lost_time_s}")
    if min_green < 0 or not 0 < min_cycle <= max_cycle:
        raise ConfigError(
            f"webster_timing: need 0 <= min_green and 0 < min_cycle <= max_cycle "
            f"(got {min_green}, {min_cycle}, {max_cycle})"
        )
    if max_green is not None and max_green < min_green:
        raise ConfigError(f"webster_timing: max_green {max_green} < min_green {min_green}")
    n = len(ys)
    big_y = sum(ys)
    c0 = webster_cycle(big_y, lost_time_s)
    cycle = min(max(c0, min_cycle), max_cycle)
    cycle = max(cycle, lost_time_s + n * min_green)
    if max_green is not None:
        cycle = min(cycle, lost_time_s + n * max_green)
    greens = _split(cycle - lost_time_s, ys, min_green, max_green)
    if whole_seconds:
        greens = _round_keeping_sum(
            greens,
            lo=math.ceil(min_green - 1e-9),
            hi=math.floor(max_green + 1e-9) if max_green is not None else None,
        )
    return WebsterTiming(
        cycle=lost_time_s + sum(greens),
        greens=tuple(greens),
        lost_time=lost_time_s,
        flow_ratio=big_y,
        webster_cycle=c0,
    )


def _split(total: float, ys: list[float], lo: float, hi: float | None) -> list[float]:
    """Share ``total`` in proportion to ``ys`` (equally if all zero), within [lo, hi]."""
    n = len(ys)
    fixed: dict[int, float] = {}
    while True:
        free = [i for i in range(n) if i not in fixed]
        left = total - sum(fixed.values())
        weight = sum(ys[i] for i in free)
        share = {i: left * (ys[i] / weight if weight > 0 else 1.0 / len(free)) for i in free}
        low = [i for i in free if share[i] < lo - 1e-9]
        high = [i for i in free if hi is not None and share[i] > hi + 1e-9]
        if not low and not high:
            return [fixed[i] if i in fixed else share[i] for i in range(n)]
        for i in low:
            fixed[i] = lo
        for i in high:
            fixed[i] = hi  # type: ignore[assignment]
        if len(fixed) == n:
            return [fixed[i] for i in range(n)]


def _round_keeping_sum(values: list[float], lo: int, hi: int | None) -> list[float]:
    """Whole seconds with the same (rounded) total, by largest remainder, within [lo, hi]."""
    target = round(sum(values))
    out = [min(max(math.floor(v), lo), hi if hi is not None else math.inf) for v in values]
    order = sorted(
        range(len(values)), key=lambda i: values[i] - math.floor(values[i]), reverse=True
    )
    for i in order:
        if sum(out) >= target:
            break
        if hi is None or out[i] < hi:
            out[i] += 1
    return [float(v) for v in out]


def lost_time(intersection: Intersection) -> float:
    """Seconds per cycle spent in the network's own clearances (yellow, all-red)."""
    ix = intersection
    return sum(d for p in range(ix.n_phases) for _, d in ix.clearance(p, ix.next_phase(p)))


def intersection_flow_ratios(
    intersection: Intersection,
    flows: Mapping[tuple[str, str], float],
    sat_through: float = SAT_THROUGH,
    sat_turn: float = SAT_TURN,
) -> list[float]:
    """Critical flow ratio y of each green phase, in the intersection's phase order.

    A phase's lane groups are its approach edges: each group's ratio is the flow
    of the movements the phase shows green from that edge (``flows`` maps
    (from_edge, to_edge) to veh/h) over the saturation flow of the lanes they
    use, ``sat_through`` per lane if the group has a through movement, else
    ``sat_turn``. The phase's y is its largest group ratio.
    """
    ratios = []
    for phase in intersection.phases:
        green = set(phase.green_links)
        groups: dict[str, tuple[set[str], set[str], list[bool]]] = {}
        for m in intersection.movements:
            if m.link not in green:
                continue
            lanes, to_edges, through = groups.setdefault(m.from_edge, (set(), set(), [False]))
            lanes.add(m.from_lane)
            to_edges.add(m.to_edge)
            through[0] = through[0] or m.direction == THROUGH
        y = 0.0
        for from_edge, (lanes, to_edges, through) in groups.items():
            flow = sum(flows.get((from_edge, t), 0.0) for t in to_edges)
            sat = sat_through if through[0] else sat_turn
            y = max(y, flow / (sat * len(lanes)))
        ratios.append(y)
    return ratios
