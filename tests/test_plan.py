"""Plan generation: Webster by hand, green bands of a known geometry, validation, config errors."""

from __future__ import annotations

import dataclasses

import pytest

from engine.errors import ConfigError
from engine.plan.config import Constraints, PlanConfig, load_plan_config
from engine.plan.corridor import Corridor, build_corridor
from engine.plan.green_wave import band_widths, best_offsets, shift, widest
from engine.plan.model import (PeriodPlan, PlanValidationError, SignalTiming, shares_to_greens, validate_period)
from engine.plan.webster_plan import band_weights, green_wave_period_plan, webster_period_plan
from engine.network import read_intersections

LIMITS = Constraints(cycle_min_s=40, cycle_max_s=120, min_green_s=7, pedestrian_min_s=None)


@pytest.fixture(scope="module")
def grid_ix(grid):
    return read_intersections(grid[0])


def test_webster_plan_matches_hand_computation(grid_ix):
    # A0: phase 0 serves north-south, phase 1 east-west. Critical ratios by hand:
    # EW: 1280 veh/h through on the 2 lanes of left0A0 -> y = 1280 / (1600 * 2) = 0.4
    # NS:  640 veh/h through on the 2 lanes of bottom0A0 -> y = 640 / 3200 = 0.2
    # L = 2 x (3 s yellow + 2 s all-red) = 10 s; C0 = (1.5 L + 5) / (1 - Y) = 20 / 0.4 = 50 s
    # effective green 40 s shared 0.2 : 0.4 -> 13.33 / 26.67 -> 13 / 27 whole seconds
    flows = {("left0A0", "A0B0"): 1280.0, ("bottom0A0", "A0A1"): 640.0}
    pp = webster_period_plan("am_peak", {"A0": grid_ix["A0"]}, flows, LIMITS)
    assert pp.cycle == 50.0
    assert pp.timings["A0"].greens == (13.0, 27.0)
    validate_period(pp, grid_ix, LIMITS)
    # a pedestrian minimum of 15 s on through phases lifts NS to 15 and takes it from EW
    ped = LIMITS.model_copy(update={"pedestrian_min_s": 15.0})
    pp = webster_period_plan("am_peak", {"A0": grid_ix["A0"]}, flows, ped)
    assert pp.cycle == 50.0 and pp.timings["A0"].greens == (15.0, 25.0)


def test_shares_keep_sum_and_minimums():
    assert shares_to_greens([1, 1, 1], 30, [5, 5, 5]) == (10.0, 10.0, 10.0)
    assert shares_to_greens([10, 1, 1], 40, [7, 7, 7]) == (26.0, 7.0, 7.0)
    with pytest.raises(ConfigError, match="minimum greens"):
        shares_to_greens([1, 1], 10, [7, 7])


def _two_signals(travel: float) -> Corridor:
    return Corridor(signals=("X", "Y"), positions=(0.0, travel * 10), forward_times=(travel,),
                    backward_times=(travel,), forward_links=((0,), (0,)), backward_links=((0,), (0,)),
                    forward_edges=(("e",),), backward_edges=(("w",),))


def test_green_band_of_known_geometry():
    green = [[(0.0, 30.0)], [(0.0, 30.0)]]
    # 300 m at 10 m/s = 30 s = half the 60 s cycle: offset 30 gives a full band both ways
    cor = _two_signals(30.0)
    assert band_widths(cor, green, green, [0, 30], 60).forward == pytest.approx(30.0)
    assert band_widths(cor, green, green, [0, 30], 60).backward == pytest.approx(30.0)
    offsets, bands = best_offsets(cor, green, green, 60)
    assert offsets == [0.0, 30.0] and bands.total == pytest.approx(60.0)
    # 15 s apart: simultaneous timing splits 15 + 15; offset 15 favours one direction (30 + 0)
    cor = _two_signals(15.0)
    b = band_widths(cor, green, green, [0, 0], 60)
    assert (b.forward, b.backward) == pytest.approx((15.0, 15.0))
    b = band_widths(cor, green, green, [0, 15], 60)
    assert (b.forward, b.backward) == pytest.approx((30.0, 0.0))
    assert b.forward_start == pytest.approx(0.0)
    # the forward-only weight finds the 30 s forward band
    _, b = best_offsets(cor, green, green, 60, weights=(1.0, 0.0))
    assert b.forward == pytest.approx(30.0)


def test_arcs_wrap_around_the_cycle():
    assert shift([(50.0, 70.0)], 0, 60) == [(0.0, 10.0), (50.0, 60.0)]
    assert widest([(0.0, 10.0), (50.0, 60.0)], 60) == (20.0, 50.0)


def test_green_wave_on_the_grid_row(grid, grid_ix):
    cor = build_corridor(grid[0], grid_ix, ["A0", "B0"])
    assert cor.positions[1] > 100  # 200 m grid spacing, less the junction
    flows = {("left0A0", "A0B0"): 600.0, ("A0B0", "B0right0"): 600.0}
    pp = green_wave_period_plan("am_peak", grid_ix, flows, LIMITS, cor)
    validate_period(pp, grid_ix, LIMITS)
    assert pp.notes["band_forward_s"] + pp.notes["band_backward_s"] > 0
    # band weights by through volume: only eastbound flow along the row here
    assert band_weights(cor, grid_ix, flows, None) == (1.0, 0.0)
    assert band_weights(cor, grid_ix, flows, (2.0, 1.0)) == (2.0, 1.0)


def _plan(ix, greens, offset=0.0, cycle=None):
    cycle = cycle if cycle is not None else sum(greens) + 10
    return PeriodPlan("am_peak", "test", float(cycle), {ix.id: SignalTiming(ix.id, offset, tuple(greens))})


def test_invalid_plans_are_refused_with_the_reason(grid_ix):
    ix = grid_ix["A0"]
    validate_period(_plan(ix, (30.0, 30.0)), grid_ix, LIMITS)
    with pytest.raises(PlanValidationError,
                       match=r"signal A0: green of phase 0 .* is 5 s, below its minimum green 7 s"):
        validate_period(_plan(ix, (5.0, 30.0)), grid_ix, LIMITS)
    with pytest.raises(PlanValidationError, match="phase times sum to 70 s, not the cycle 80 s"):
        validate_period(_plan(ix, (30.0, 30.0), cycle=80), grid_ix, LIMITS)
    with pytest.raises(PlanValidationError, match=r"cycle 130 s is outside \[40, 120\]"):
        validate_period(_plan(ix, (60.0, 60.0)), grid_ix, LIMITS)
    with pytest.raises(PlanValidationError, match="offset 70 s"):
        validate_period(_plan(ix, (30.0, 30.0), offset=70), grid_ix, LIMITS)
    with pytest.raises(PlanValidationError, match="all-red after .* is 2 s, needs at least 3 s"):
        validate_period(_plan(ix, (30.0, 30.0)), grid_ix, LIMITS.model_copy(update={"all_red_s": 3.0}))
    # a signal whose phase 0 runs two links that are foes: the safety replay flags it
    a, b = ix.phases[0].green_links[:2]
    bad = dataclasses.replace(ix, conflicts=ix.conflicts | {(a, b)})
    with pytest.raises(PlanValidationError, match="conflicting green"):
        validate_period(_plan(bad, (30.0, 30.0)), {"A0": bad}, LIMITS)


def test_config_errors_are_one_line_naming_the_field(tmp_path):
    f = tmp_path / "plan.yaml"
    f.write_text("constraints:\n  min_gren_s: 5\n")
    with pytest.raises(ConfigError, match=r"plan.yaml: constraints.min_gren_s: unknown key"):
        load_plan_config(f)
    f.write_text("constraints:\n  cycle_min_s: 120\n  cycle_max_s: 90\n")
    with pytest.raises(ConfigError, match=r"cycle_max_s \(90\) < cycle_min_s \(120\)"):
        load_plan_config(f)
    f.write_text("method: magic\n")
    with pytest.raises(ConfigError, match="method: .*'magic'"):
        load_plan_config(f)
    f.write_text("periods: [am_peak]\nmethods: {night: webster}\n")
    with pytest.raises(ConfigError, match="methods: period 'night' is not in periods"):
        load_plan_config(f)


def test_shipped_config_is_valid():
    from pathlib import Path

    cfg = load_plan_config(Path(__file__).resolve().parents[1] / "configs" / "plan_chongqing.yaml")
    assert isinstance(cfg, PlanConfig) and cfg.method_of("am_peak") == "optimise"


def test_cli_reports_a_bad_config_in_one_line(tmp_path, capsys):
    from engine.cli import main

    f = tmp_path / "plan.yaml"
    f.write_text("optimiser:\n  trials: 0\n")
    assert main(["plan", str(f), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "optimiser.trials" in err and "greater than or equal to 1" in err
    assert not (tmp_path / "out").exists()
