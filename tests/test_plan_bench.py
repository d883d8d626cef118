"""The plan benchmarks' references and tools, on the embedded corridor in SUMO."""

from __future__ import annotations

import csv
import xml.etree.ElementTree as ET

import pytest

from benchmarks import plan_sensitivity, plan_structures
from benchmarks.plan_vs_sumo import netconvert_programs
from engine.scenario import Scenario
from engine.plan.config import load_plan_config
from engine.plan.model import PlanValidationError, check_program, program_of
from engine.plan.pipeline import plan_search, resolve
from engine.network import read_intersections
from engine.signals import GREEN, with_right_turn_overlaps
from engine.sim import Simulation


def test_netconvert_reference_is_netconverts_own_untimed_programs_and_runs(tmp_path):
    sc = Scenario.load("chongqing", period="am_peak", seed=1, duration=120)
    ix = read_intersections(sc.net_file)
    add = netconvert_programs(sc.net_file, ix, tmp_path)
    logics = ET.parse(add).getroot().findall("tlLogic")
    assert sorted(t.get("id") for t in logics) == sorted(ix)
    for t in logics:
        assert t.get("programID") == "netconvert"
        assert sum(float(p.get("duration")) for p in t.iter("phase")) == 90  # netconvert's default cycle
        # lefts go permissively ('g') with the through green: netconvert's guess, not the network's programs
        assert any("g" in p.get("state") for p in t.iter("phase"))
        assert len(t.find("phase").get("state")) == len(ix[t.get("id")].phases[0].state)
    sim = Simulation()
    try:
        sim.start(sc.with_options(additional_files=sc.additional_files + (add,)).sumo_args(tmp_path))
        sim.step(30)
        assert {sim.api.trafficlight.getProgram(s) for s in ix} == {"netconvert"}
    finally:
        sim.close()


@pytest.mark.slow
def test_sensitivity_simulates_every_single_move_paired_with_the_start(tmp_path, capsys):
    rc = plan_sensitivity.main(["--duration", "60", "--seeds", "1", "--workers", "1", "--offset-step", "8",
                                "--green-step", "4", "--out", str(tmp_path)])
    assert rc == 0
    rows = list(csv.DictReader((tmp_path / "sensitivity.csv").open()))
    # 6 offsets (all but the corridor's first signal) x 2 directions, and every legal green move
    assert sum("offset" in r["move"] for r in rows) == 12
    assert sum("green" in r["move"] for r in rows) > 40
    changes = [float(r["change_s"]) for r in rows]
    assert changes == sorted(changes)
    assert "moves:" in capsys.readouterr().out


def test_sensitivity_refuses_a_missing_period_in_one_line(tmp_path, capsys):
    plan = tmp_path / "plan.json"
    plan.write_text('{"network": "chongqing", "periods": {}}')
    assert plan_sensitivity.main(["--plan", str(plan), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no plan for period 'am_peak'" in err


@pytest.fixture(scope="module")
def current_am():
    ctx = resolve(load_plan_config(plan_structures.ROOT / "configs" / "plan_chongqing.yaml"))
    plan = plan_search(ctx, "am_peak").current_plan()
    edges = plan_structures.arterial_edges(ctx.corridor, ctx.intersections)
    roles = {s: plan_structures.phase_roles(ctx.intersections[s], edges[s]) for s in plan.timings}
    return ctx, plan, roles


def test_structure_variants_are_safe_keep_the_cycle_and_the_arterial_green_start(current_am):
    ctx, plan, roles = current_am
    assert all(r is not None for r in roles.values())  # every corridor signal is four-phase
    same = plan_structures.ordered(lambda r: (r.arterial_through, r.arterial_left, r.cross_through, r.cross_left))
    programs, offsets = plan_structures.variant_programs(plan, ctx.intersections, roles, same)
    for sid, timing in plan.timings.items():  # the builder reproduces the plan itself: changes are paired
        assert programs[sid] == program_of(ctx.intersections[sid], timing) and offsets[sid] == timing.offset
    makers = [*plan_structures.VARIANTS.values(), plan_structures.permissive_cross_lefts]
    for make in makers:
        programs, offsets = plan_structures.variant_programs(plan, ctx.intersections, roles, make)
        for sid, program in programs.items():
            ix = ctx.intersections[sid]
            plan_structures.check_safe(ix, program, "test", ctx.config.constraints)
            assert sum(d for _, d in program) == plan.cycle
            through = plan_structures.extending_green(program, ix.phases[roles[sid].arterial_through].state)
            base = program_of(ix, plan.timings[sid])
            start = plan_structures.start_of(program, through) + offsets[sid]
            assert (start - plan_structures.start_of(base, base[0][0]) - plan.timings[sid].offset) % plan.cycle == 0


def test_structure_variants_of_a_plan_with_overlaps_keep_them(current_am):
    import dataclasses

    ctx, plan, roles = current_am
    over = plan.with_timings({s: dataclasses.replace(t, right_turn_overlaps=True) for s, t in plan.timings.items()})
    leading = plan_structures.VARIANTS["leading_lefts"]
    programs, _ = plan_structures.variant_programs(over, ctx.intersections, roles, leading)
    for sid, program in programs.items():
        ix = ctx.intersections[sid]
        plan_structures.check_safe(ix, program, "test", ctx.config.constraints)
        overlap_greens = {s for s, _ in program_of(ix, over.timings[sid])}
        assert {s for s, _ in program if s in overlap_greens} >= {ph.state for ph in
                                                                  with_right_turn_overlaps(ix).phases}


def test_overlaps_and_permissive_lefts_change_exactly_what_they_say(current_am):
    ctx, plan, roles = current_am
    ix, timing, r = ctx.intersections["C4"], plan.timings["C4"], roles["C4"]
    steps = plan_structures.right_turn_overlaps(ix, r, timing.greens)
    rights = {m.link for m in ix.movements if m.direction in "rR"}
    added = {L for (state, _, k) in steps for L, c in enumerate(state)
             if c in GREEN and ix.phases[k].state[L] not in GREEN}
    assert added and added <= rights  # only right turns gain green, and some do
    assert ix.foes >= ix.conflicts and ix.foes
    for state, _, k in steps:  # an overlap never crosses or merges with a green of its phase
        green = [L for L, c in enumerate(state) if c in GREEN]
        extra = [L for L in green if ix.phases[k].state[L] not in GREEN]
        assert not any((min(a, b), max(a, b)) in ix.foes for a in extra for b in green)
    overlapped = plan_structures.build_program(ix, steps)
    plan_structures.check_safe(ix, overlapped, "overlaps", ctx.config.constraints)  # an overlap may stay green
    no_all_red = overlapped[:2] + overlapped[3:]  # a green, its yellow, and straight on to the next green
    with pytest.raises(PlanValidationError, match="all-red after"):
        plan_structures.check_safe(ix, no_all_red, "overlaps", ctx.config.constraints)
    permissive = plan_structures.build_program(ix, plan_structures.permissive_cross_lefts(ix, r, timing.greens))
    greens = [(s, d) for s, d in permissive if any(c in GREEN for c in s) and "y" not in s]
    assert len(greens) == 3 and any("g" in s for s, _ in greens)
    assert greens[0][1] == timing.greens[r.arterial_through] + timing.greens[r.cross_left] + 5
    # the permissive lefts are foes of the opposing through: the plan validator refuses them unless yields are allowed
    with pytest.raises(PlanValidationError, match="conflicting green"):
        check_program("C4", ix, permissive, ctx.config.constraints)
    plan_structures.check_safe(ix, permissive, "permissive", ctx.config.constraints)
    # a real conflict ('G' against 'G') is still refused
    with pytest.raises(PlanValidationError, match="C4.*conflicting green"):
        plan_structures.check_safe(ix, tuple((s.replace("g", "G"), d) for s, d in permissive), "bad",
                                    ctx.config.constraints)


@pytest.mark.slow
def test_structures_benchmark_simulates_every_variant_paired(tmp_path, capsys):
    rc = plan_structures.main(["--duration", "60", "--seeds", "1", "--workers", "2", "--out", str(tmp_path)])
    assert rc == 0
    rows = list(csv.DictReader((tmp_path / "structures.csv").open()))
    names = {r["variant"] for r in rows}
    assert {"leading_lefts", "right_turn_overlaps", "permissive_cross_lefts", "permissive_cross_lefts@C4"} <= names
    assert len(rows) == 4 + 7 + 1
    changes = [float(r["change_s"]) for r in rows]
    assert changes == sorted(changes)
    assert "simulations in" in capsys.readouterr().out


def test_plan_budget_pairs_two_plan_files_on_held_out_seeds(tmp_path, capsys):
    """The shipped thorough and fast plans, each on two seeds of 300 s: one row per plan and seed,
    and the second against the first paired by seed (the mean of the per-seed differences)."""
    from benchmarks import plan_budget

    out = tmp_path / "budget"
    code = plan_budget.main(["--plans", "thorough=benchmarks/results_plan/plan.json",
                             "fast=benchmarks/results_plan_fast/plan.json", "--periods", "am_peak",
                             "--seeds", "11", "12", "--duration", "300", "--out", str(out)])
    assert code == 0
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [(r["plan"], r["seed"]) for r in rows] == [("thorough", "11"), ("thorough", "12"),
                                                       ("fast", "11"), ("fast", "12")]
    delay = {(r["plan"], r["seed"]): float(r["mean_delay_s"]) for r in rows}
    diff = ((delay["fast", "11"] - delay["thorough", "11"]) + (delay["fast", "12"] - delay["thorough", "12"])) / 2
    assert f"{diff:+.1f} ± " in (out / "summary.md").read_text()


@pytest.mark.parametrize("args, match", [
    (["--plans", "a=benchmarks/results_plan/plan.json"], "at least two"),
    (["--plans", "a=benchmarks/results_plan/plan.json", "a=benchmarks/results_plan_fast/plan.json"], "used twice"),
    (["--plans", "a=benchmarks/results_plan/plan.json", "b"], "LABEL=PATH"),
    (["--plans", "a=benchmarks/results_plan/plan.json", "b=benchmarks/results_plan_fast/plan.json",
      "--seeds", "11", "11"], "each at most once"),
])
def test_plan_budget_bad_input_is_one_line(args, match, tmp_path, capsys):
    from benchmarks import plan_budget

    assert plan_budget.main([*args, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and match in err
