"""Would another phase structure beat a plan's timing? Each alternative, simulated against it.

    .venv/bin/python benchmarks/plan_structures.py [--plan out/plan/plan.json] [--period am_peak] \
        [--seeds 1 2] [--workers 2]

The plan generator times the network's own phase sequence (at every signal of
this corridor: arterial through, arterial left, cross-street through,
cross-street left). This benchmark keeps a plan's cycle, greens and the start
of the arterial through green in the cycle (so the green wave stays where it
was), changes only the structure, and simulates each variant on the same seeds
and route files as the plan, so every change is paired:

``leading_arterial_lefts``, ``leading_cross_lefts``, ``leading_lefts``
    the left-turn phase before its through phase instead of after it;
``right_turn_overlaps``
    every right turn also green in each phase none of its foes runs in (an
    overlap, e.g. the cross street's right turn during the arterial's lefts);
``permissive_cross_lefts@SIGNAL`` and ``permissive_cross_lefts``
    at one signal (or all), the cross street's left-turn phase dropped: its
    lefts turn with the cross-street through green as SUMO's permissive ``g``
    (yield to the opposing flow), and its green and clearance go to the
    arterial through phase.

Every variant's programs pass the plan validator's safety replay before they run
(for the permissive variants, with the permitted left turns' yields to their
opposing foes allowed, as SUMO's ``g`` means). Prints the variants sorted by
the change in mean delay and writes ``structures.csv`` to ``--out``.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.plan_vs_sumo import (paired_changes, plan_bench_parser, progress_lines, run_guarded,  # noqa: E402
                                     start_plan, write_rows)
from engine.controllers.programs import Program, timing_program, write_tls_programs  # noqa: E402
from engine.errors import ConfigError  # noqa: E402
from engine.plan.config import Constraints  # noqa: E402
from engine.plan.corridor import Corridor  # noqa: E402
from engine.plan.evaluate import PlanEvaluator  # noqa: E402
from engine.plan.model import PeriodPlan, check_program, program_of, signal_phases  # noqa: E402
from engine.signals import GREEN, RIGHT_TURN, Intersection, with_phases, with_right_turn_overlaps  # noqa: E402

LEFT = "lLt"  # SUMO's direction letters of left turns and U-turns


@dataclasses.dataclass(frozen=True)
class Roles:
    """Green phase indices of a four-phase protected-left signal."""

    arterial_through: int
    arterial_left: int
    cross_through: int
    cross_left: int


def phase_roles(ix: Intersection, arterial_edges: set[str]) -> Roles | None:
    """Which green phase serves what; None unless the signal has exactly the four phases."""
    found: dict[tuple[bool, bool], list[int]] = {}
    by_link = {m.link: m for m in ix.movements}
    for k, ph in enumerate(ix.phases):
        moves = [by_link[L] for L in ph.green_links if L in by_link and by_link[L].direction not in RIGHT_TURN]
        if not moves:
            return None
        arterial = any(m.from_edge in arterial_edges for m in moves)
        left = all(m.direction in LEFT for m in moves)
        found.setdefault((arterial, left), []).append(k)
    if sorted(len(v) for v in found.values()) != [1, 1, 1, 1] or len(found) != 4:
        return None
    return Roles(found[(True, False)][0], found[(True, True)][0], found[(False, False)][0], found[(False, True)][0])


def arterial_edges(corridor: Corridor, intersections: Mapping[str, Intersection]) -> dict[str, set[str]]:
    """Per signal: the approach edges of the corridor's through movements (both directions)."""
    out = {}
    for sid, fw, bw in zip(corridor.signals, corridor.forward_links, corridor.backward_links):
        links = set(fw) | set(bw)
        out[sid] = {m.from_edge for m in intersections[sid].movements if m.link in links}
    return out


Step = tuple[str, float, int]  # green state, green seconds, the network phase whose clearance shape it takes


def build_program(ix: Intersection, steps: Sequence[Step]) -> Program:
    """Greens in the given order, each followed by the clearance (network's shape) to the next green."""
    return timing_program(with_phases(ix, [(state, k) for state, _, k in steps]), [g for _, g, _ in steps])


def start_of(program: Program, state: str) -> float:
    """Seconds from the program's start to the green showing ``state``."""
    t = 0.0
    for s, d in program:
        if s == state:
            return t
        t += d
    raise ValueError(f"state {state} not in program")


def ordered(order: Callable[[Roles], Sequence[int]]) -> Callable:
    """A variant that runs the four phases in another order."""
    def make(ix: Intersection, roles: Roles, greens: Sequence[float]) -> list[Step]:
        return [(ix.phases[k].state, greens[k], k) for k in order(roles)]
    return make


def right_turn_overlaps(ix: Intersection, roles: Roles, greens: Sequence[float]) -> list[Step]:
    """Each right turn green too in every phase where none of its foes is green (as ``cqsignal plan`` can)."""
    return [(ph.state, greens[k], k) for k, ph in enumerate(with_right_turn_overlaps(ix).phases)]


def permissive_cross_lefts(ix: Intersection, roles: Roles, greens: Sequence[float]) -> list[Step]:
    """Cross-street lefts turn permissively with their through green; their phase's time goes to the arterial."""
    r = roles
    left_links = set(ix.phases[r.cross_left].green_links) - set(ix.phases[r.cross_through].green_links)
    merged = "".join("g" if L in left_links else c for L, c in enumerate(ix.phases[r.cross_through].state))
    freed = greens[r.cross_left] + sum(d for _, d in ix.clearance(r.cross_left, ix.next_phase(r.cross_left)))
    steps = []
    for k in range(ix.n_phases):
        if k == r.cross_left:
            continue
        state = merged if k == r.cross_through else ix.phases[k].state
        steps.append((state, greens[k] + (freed if k == r.arterial_through else 0.0), k))
    return steps


def permitted_yields(ix: Intersection, program: Program) -> Intersection:
    """``ix`` with the foe pairs a permissive ``g`` link yields in (green with a foe) no longer conflicts."""
    allowed = set()
    for state, _ in program:
        for a, b in ix.conflicts:
            if state[a] in GREEN and state[b] in GREEN and "g" in (state[a], state[b]):
                allowed.add((a, b))
    return dataclasses.replace(ix, conflicts=ix.conflicts - allowed)


def check_safe(ix: Intersection, program: Program, label: str, limits: Constraints) -> None:
    """The plan validator's program checks, with permissive yields allowed; PlanValidationError if unsafe."""
    check_program(f"{label}, signal {ix.id}", permitted_yields(ix, program), program, limits)


VARIANTS: dict[str, Callable] = {
    "leading_arterial_lefts": ordered(lambda r: (r.arterial_left, r.arterial_through, r.cross_through, r.cross_left)),
    "leading_cross_lefts": ordered(lambda r: (r.arterial_through, r.arterial_left, r.cross_left, r.cross_through)),
    "leading_lefts": ordered(lambda r: (r.arterial_left, r.arterial_through, r.cross_left, r.cross_through)),
    "right_turn_overlaps": right_turn_overlaps,
}


def variant_programs(plan: PeriodPlan, intersections: Mapping[str, Intersection], roles: Mapping[str, Roles | None],
                     make: Callable, signals: set[str] | None = None) -> tuple[dict[str, Program], dict[str, float]]:
    """Programs and offsets of ``plan`` with ``make`` applied at ``signals`` (default: every four-phase one).

    The offset moves with the arterial through green, so it starts where it did in
    ``plan``; a variant starts from the phases the plan runs (its overlaps included).
    """
    programs, offsets = {}, {}
    for sid, timing in plan.timings.items():
        ix, r = signal_phases(intersections[sid], timing), roles.get(sid)
        base = program_of(intersections[sid], timing)
        if r is None or (signals is not None and sid not in signals):
            programs[sid], offsets[sid] = base, timing.offset
            continue
        program = build_program(ix, make(ix, r, timing.greens))
        if abs(sum(d for _, d in program) - plan.cycle) > 1e-6:
            raise ConfigError(f"signal {sid}: a structure variant changed the cycle")
        through = ix.phases[r.arterial_through].state
        shift = start_of(base, through) - start_of(program, extending_green(program, through))
        programs[sid], offsets[sid] = program, (timing.offset + shift) % plan.cycle
    return programs, offsets


def extending_green(program: Program, state: str) -> str:
    """The program's green state that extends ``state`` (itself, or ``state`` plus overlaps)."""
    for s, _ in program:
        if all(c == s[L] or (c not in GREEN and s[L] in GREEN) for L, c in enumerate(state)):
            return s
    raise ValueError(f"no green extends {state}")


def main(argv: list[str] | None = None) -> int:
    ap = plan_bench_parser(__doc__, "plan.json whose period to start from (default: the current programs)", [1, 2],
                           "plan_structures")
    return run_guarded("plan_structures", run, ap.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    ctx, plan, source = start_plan(args)
    cfg = ctx.config
    edges = arterial_edges(ctx.corridor, ctx.intersections)
    roles = {sid: phase_roles(ctx.intersections[sid], edges[sid]) for sid in plan.timings}
    four_phase = [sid for sid, r in roles.items() if r is not None]
    variants = {name: (make, None) for name, make in VARIANTS.items()}
    variants.update({f"permissive_cross_lefts@{sid}": (permissive_cross_lefts, {sid}) for sid in four_phase})
    variants["permissive_cross_lefts"] = (permissive_cross_lefts, None)
    work = Path(tempfile.mkdtemp(prefix="cqsignal-structures-"))
    files = {}
    for name, (make, signals) in variants.items():
        programs, offsets = variant_programs(plan, ctx.intersections, roles, make, signals)
        for sid, program in programs.items():
            check_safe(ctx.intersections[sid], program, name, cfg.constraints)
        files[name] = (write_tls_programs(work / f"{name.replace('@', '_')}.add.xml", programs, name, offsets),)
    print(f"{args.period}: {len(variants)} structure variants of {source} (four-phase signals: "
          f"{', '.join(four_phase) or 'none'}), seeds {args.seeds}, {args.duration:g} s, {args.workers} workers",
          flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with PlanEvaluator(ctx.scenario.with_options(period=args.period), args.seeds, args.duration,
                   cfg.evaluation.scale, workdir=work, workers=args.workers) as evaluator:
        evals = evaluator.run_many([plan, *files.values()], ctx.intersections,
                                   progress=progress_lines("plan_structures", args.duration))
    wall = time.perf_counter() - t0
    rows = paired_changes("variant", list(files), evals[1:], evals[0], args.seeds)
    write_rows(out / "structures.csv", rows)
    base = evals[0].kpis
    print(f"plan: {statistics.fmean(b.mean_delay_s for b in base):.2f} s/veh, "
          f"{statistics.fmean(b.mean_stops for b in base):.2f} stops/veh "
          f"(per seed {' '.join(f'{b.mean_delay_s:.1f}' for b in base)})")
    for r in rows:
        per_seed = " ".join(f"{r[f'change_seed{s}']:+.1f}" for s in args.seeds)
        print(f"{r['variant']:30s} {r['mean_delay_s']:7.2f} s/veh  change {r['change_s']:+6.2f} "
              f"({r['change_pct']:+.1f} %, per seed {per_seed})  stops {r['stops_change']:+.2f}")
    print(f"{evaluator.runs} simulations in {wall:.0f} s; wrote {out / 'structures.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
