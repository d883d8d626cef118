"""Webster's method: one cycle and its green splits from the critical flow ratios.

Webster (1958) found that the cycle that minimises delay at an isolated signal is
close to ``C0 = (1.5 L + 5) / (1 - Y)``, with ``L`` the time lost per cycle and
``Y`` the sum over phases of the critical flow ratio ``y = v / s`` (the largest
flow-to-saturation ratio among the lane groups a phase serves). Effective green
``C - L`` is then shared in proportion to each phase's ``y``. This module is the
one place the formula lives, together with the quantities around it: lane groups
and their flow ratios (each lane group's flow counted once, however many greens
serve it), the lost time of a program and v/c (a signal's critical v/c and a
lane group's). The ``webster`` controller, plan generation, the plan's
per-approach measures and the demand's v/c table all call it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from engine.errors import ConfigError
from engine.signals import GREEN, Intersection, Movement

SAT_THROUGH = 1600.0  # veh/h/lane for lane groups with a through movement
SAT_TURN = 1500.0  # veh/h/lane for turn-only lane groups
TURN_SIDE = {"l": "left", "L": "left", "t": "left", "r": "right", "R": "right", "T": "right"}
"""The side of each SUMO turn direction (``t``, the U-turn, with the lefts; ``T``, its left-hand
form, with the rights); ``s`` and anything else is through."""
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
    """Seconds per cycle spent in the network's own clearances (yellow, all-red).

    The clearance of each green phase is every step between it and the next
    green phase (:meth:`engine.signals.Intersection.file_clearance`), so a
    pedestrian clearance (crossings red, vehicles still green) counts too.
    """
    ix = intersection
    return sum(d for p in range(ix.n_phases) for _, d in ix.clearance(p, ix.next_phase(p)))


@dataclass(frozen=True)
class LaneGroup:
    """Vehicle links of one approach edge that the same green phases serve (HCM's lane group).

    A link is served by the phases that give it a protected green (``G``); a link
    that never has one by those where it may go permissively (``g``), so a
    protected-permissive left counts against its protected phase only in the
    greens' design (HCM's protected-only simplification); its capacity for v/c
    counts both (:func:`lane_group_capacity`). ``movements`` holds, per destination edge,
    the share of the (``from_edge``, to edge) flow that uses this group: its
    lanes' part of all lanes with a link to that edge. Pedestrian crossing
    links belong to no group.
    """

    from_edge: str
    phases: tuple[int, ...]  # green phases serving the group, in cycle order
    links: tuple[int, ...]
    lanes: tuple[str, ...]
    through: bool  # has a through movement (higher saturation flow)
    movements: tuple[tuple[str, float], ...]  # (to edge, share of that movement's flow)

    def flow(self, flows: Mapping[tuple[str, str], float]) -> float:
        """Hourly flow (veh/h) of the group, each movement's flow counted once over all groups."""
        return sum(flows.get((self.from_edge, to), 0.0) * share for to, share in self.movements)

    def saturation_flow(self, sat_through: float = SAT_THROUGH, sat_turn: float = SAT_TURN) -> float:
        """veh/h of green: ``sat_through`` per lane with a through movement, else ``sat_turn``."""
        return (sat_through if self.through else sat_turn) * len(self.lanes)

    def flow_ratio(self, flows: Mapping[tuple[str, str], float], sat_through: float = SAT_THROUGH,
                   sat_turn: float = SAT_TURN) -> float:
        """y = v / s of the group."""
        return self.flow(flows) / self.saturation_flow(sat_through, sat_turn)


def lane_groups(intersection: Intersection) -> tuple[LaneGroup, ...]:
    """The lane groups of ``intersection``: its vehicle links by approach edge, serving phases and
    lane kind.

    As in the HCM, an exclusive turn lane (every link of the lane a left, or every one a
    right; U-turns go with the lefts, ``T`` with the rights) is a group of its own, apart
    from the through and shared lanes the same phases serve. Links that are never green
    (e.g. a right turn on red only, ``s``) and pedestrian crossings belong to no group.
    """
    ix = intersection
    turns_of: dict[str, set[str]] = {}
    for m in ix.movements:
        if not m.crossing:
            turns_of.setdefault(m.from_lane, set()).add(TURN_SIDE.get(m.direction, "through"))
    by_key: dict[tuple[str, tuple[int, ...], str], list] = {}
    for m in ix.movements:
        if m.crossing:
            continue
        served = tuple(k for k, ph in enumerate(ix.phases) if _char(ph.state, m.link) == "G")
        if not served:
            served = tuple(k for k, ph in enumerate(ix.phases) if _char(ph.state, m.link) in GREEN)
        if served:
            sides = turns_of[m.from_lane]
            kind = next(iter(sides)) if len(sides) == 1 and "through" not in sides else "mixed"
            by_key.setdefault((m.from_edge, served, kind), []).append(m)
    # lanes with a link to each (from edge, to edge): a movement's flow is shared by its lanes
    lanes_to: dict[tuple[str, str], set[str]] = {}
    for moves in by_key.values():
        for m in moves:
            lanes_to.setdefault((m.from_edge, m.to_edge), set()).add(m.from_lane)
    groups = []
    for (edge, served, _kind), moves in sorted(by_key.items()):
        lanes = tuple(dict.fromkeys(m.from_lane for m in moves))
        shares = []
        for to in dict.fromkeys(m.to_edge for m in moves):
            own = {m.from_lane for m in moves if m.to_edge == to}
            shares.append((to, len(own) / len(lanes_to[(edge, to)])))
        links = tuple(sorted({m.link for m in moves}))
        groups.append(LaneGroup(edge, served, links, lanes, any(m.direction == THROUGH for m in moves),
                                tuple(shares)))
    return tuple(groups)


def _char(state: str, link: int) -> str:
    return state[link] if link < len(state) else "r"


def intersection_flow_ratios(
    intersection: Intersection,
    flows: Mapping[tuple[str, str], float],
    sat_through: float = SAT_THROUGH,
    sat_turn: float = SAT_TURN,
) -> list[float]:
    """Critical flow ratio y of each green phase, in the intersection's phase order.

    Each lane group (:func:`lane_groups`) has the ratio v / s of its flow
    (``flows`` maps (from_edge, to_edge) to veh/h) over the saturation flow of
    its lanes, ``sat_through`` per lane if the group has a through movement,
    else ``sat_turn``. A phase's y is the largest ratio of the groups only it
    serves. A group that several greens serve is counted once, however many
    they are: where the ratios of its phases do not already add up to its own,
    the missing part is shared equally among them (so that greens in proportion
    to y give it at least its share of the cycle). Crossings carry no flow.
    """
    groups = lane_groups(intersection)
    ratios = [0.0] * intersection.n_phases
    for g in groups:
        if len(g.phases) == 1:
            ratios[g.phases[0]] = max(ratios[g.phases[0]], g.flow_ratio(flows, sat_through, sat_turn))
    for g in sorted((g for g in groups if len(g.phases) > 1), key=lambda g: len(g.phases)):
        missing = g.flow_ratio(flows, sat_through, sat_turn) - sum(ratios[k] for k in g.phases)
        if missing > 0:
            for k in g.phases:
                ratios[k] += missing / len(g.phases)
    return ratios


# HCM 2010, Chapter 31 (permitted left turn in an exclusive lane): critical headway
# and follow-up headway of a left turn filtering through opposing traffic, s.
PERMITTED_CRITICAL_HEADWAY_S = 4.5
PERMITTED_FOLLOW_UP_S = 2.5


def permitted_left_saturation(opposing_veh_h: float) -> float:
    """Saturation flow (veh/h/lane of green) of a left turn that yields to ``opposing_veh_h``.

    s_p = v_o e^(-v_o t_cg / 3600) / (1 - e^(-v_o t_fh / 3600)), t_cg = 4.5 s, t_fh = 2.5 s
    (HCM 2010, Chapter 31, permitted left-turn saturation flow rate); 3600 / t_fh = 1440
    veh/h without opposing traffic. Raises ValueError for a negative or infinite flow.
    """
    if not 0 <= opposing_veh_h < math.inf:
        raise ValueError(f"opposing flow must be a finite number >= 0 veh/h, got {opposing_veh_h}")
    v = opposing_veh_h / 3600.0  # veh/s
    if v == 0:
        return 3600.0 / PERMITTED_FOLLOW_UP_S
    return opposing_veh_h * math.exp(-v * PERMITTED_CRITICAL_HEADWAY_S) / -math.expm1(-v * PERMITTED_FOLLOW_UP_S)


def lane_group_capacity(intersection: Intersection, group: LaneGroup, program: Sequence[tuple[str, float]],
                        cycle_s: float, flows: Mapping[tuple[str, str], float], sat_through: float = SAT_THROUGH,
                        sat_turn: float = SAT_TURN) -> float:
    """Capacity (veh/h) of ``group`` under ``program`` ((state, s) steps of one cycle of ``cycle_s`` s).

    A step counts at the group's saturation flow unless one of its links is a filtering
    turn: a permissive (``g``) turn that crosses a through movement of another approach green
    at the same time (the left in right-hand traffic, the right in left-hand traffic; a
    permissive right that yields only to pedestrians does not filter). A filtering turn
    finds its gaps in the opposing flow v_o, the ``flows`` (veh/h, each (from edge, to edge)
    once) of the vehicle movements green against it that do not filter themselves (the
    opposing through and near-side turn, not the opposing far-side turn, not pedestrians),
    at :func:`permitted_left_saturation` per lane (HCM 2010, Chapter 31). A group of such
    turns alone (an exclusive turn lane, :func:`lane_groups`) gets that rate, at most its
    saturation flow; a lane the turn shares with movements that go unopposed gets
    s / (1 + P_T (E_T - 1)), P_T the turn's share of the group's flow and E_T = s per lane / s_p
    its through-car equivalent (HCM 2000, Chapter 16, shared-lane left-turn factor). So a
    protected-permissive left gets both parts. 0 for a cycle <= 0.
    """
    if cycle_s <= 0:
        return 0.0
    ix = intersection
    movement = {m.link: m for m in ix.movements}
    full = group.saturation_flow(sat_through, sat_turn)
    per_lane = full / len(group.lanes)
    volume = group.flow(flows)
    vehicle_seconds = 0.0  # veh/h of capacity times seconds of green, per cycle
    for state, d in program:
        going = [L for L in group.links if _char(state, L) in GREEN]
        if not going:
            continue
        green = [k for k, m in movement.items() if not m.crossing and _char(state, k) in GREEN]
        yielding = [L for L in going if _filters(ix, movement, state, L, green)]
        if not yielding:
            vehicle_seconds += full * d
            continue
        opposing = {(movement[k].from_edge, movement[k].to_edge) for k in green
                    if k not in group.links and any(ix.is_foe(L, k) for L in yielding)
                    and not _filters(ix, movement, state, k, green)}
        s_p = permitted_left_saturation(sum(flows.get(f, 0.0) for f in opposing))
        if len(yielding) == len(going):  # the group's lanes hold turns that filter, nothing else
            vehicle_seconds += min(full, s_p * len(group.lanes)) * d
            continue
        turning = {movement[L].to_edge for L in yielding}
        turn_flow = sum(flows.get((group.from_edge, to), 0.0) * share for to, share in group.movements
                        if to in turning)
        p_turn = turn_flow / volume if volume > 0 else 0.0
        e_turn = max(per_lane / s_p, 1.0)
        vehicle_seconds += full / (1.0 + p_turn * (e_turn - 1.0)) * d
    return vehicle_seconds / cycle_s


def _filters(ix: Intersection, movement: Mapping[int, Movement], state: str, link: int,
             green: Sequence[int]) -> bool:
    """Whether ``link``, green in ``state``, is a permissive turn crossing a through movement of another
    approach green at the same time (``green``: the state's green vehicle links)."""
    m = movement[link]
    return (_char(state, link) == "g" and m.direction != "s"
            and any(movement[k].direction == "s" and movement[k].from_edge != m.from_edge and ix.is_foe(link, k)
                    for k in green))


def critical_vc(flow_ratios: Sequence[float], cycle_s: float, lost_time_s: float) -> float:
    """Critical v/c of a signal, Xc = Y C / (C - L) (HCM); inf when no green time is left."""
    effective = cycle_s - lost_time_s
    return sum(flow_ratios) * cycle_s / effective if effective > 0 else math.inf



def lane_group_vc(intersection: Intersection, group: LaneGroup, program: Sequence[tuple[str, float]],
                  cycle_s: float, flows: Mapping[tuple[str, str], float], sat_through: float = SAT_THROUGH,
                  sat_turn: float = SAT_TURN) -> float:
    """v/c of one lane group: its flow over :func:`lane_group_capacity` (inf without capacity)."""
    volume = group.flow(flows)
    if volume <= 0:
        return 0.0
    capacity = lane_group_capacity(intersection, group, program, cycle_s, flows, sat_through, sat_turn)
    return volume / capacity if capacity > 0 else math.inf
