"""Plans in SUMO: WAUT switching, the plan controller, a short search, distilling a policy."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest
import sumolib

from engine.controllers import make_controller
from engine.loop import ControlLoop, LoopOptions
from engine.plan.config import Constraints, Optimiser, PlanConfig
from engine.plan.corridor import build_corridor
from engine.plan.distil import distilled_period_plan, record_usage
from engine.plan.evaluate import PlanEvaluator, PlanPrograms
from engine.plan.export import check_switching, programs_xml, schedule_switches, write_text_atomic
from engine.plan.model import PeriodPlan, Plan, PlanValidationError, SignalTiming, validate_period
from engine.plan.optimise import PlanSearch, optimise_period
from engine.plan.pipeline import PlanContext, export
from engine.scenario import Scenario
from engine.network import read_intersections
from engine.sim import Simulation

LIMITS = Constraints(cycle_min_s=40, cycle_max_s=120, min_green_s=7, pedestrian_min_s=None)
WINDOWS = {"am_peak": (7 * 3600, 9 * 3600), "midday": (9 * 3600, 17 * 3600)}


@pytest.fixture(scope="module")
def grid_ix(grid):
    return read_intersections(grid[0])


def _two_period_plan(grid_ix) -> Plan:
    am = PeriodPlan("am_peak", "test", 60.0, {s: SignalTiming(s, 0.0, (25.0, 25.0)) for s in grid_ix})
    md = PeriodPlan("midday", "test", 50.0, {s: SignalTiming(s, 10.0 if s == "B0" else 0.0, (15.0, 25.0))
                                             for s in grid_ix})
    return Plan("grid", {"am_peak": am, "midday": md})


def test_export_switches_programs_at_the_waut_times(grid, grid_ix, tmp_path):
    plan = _two_period_plan(grid_ix)
    switches = schedule_switches(WINDOWS, ["am_peak", "midday"])
    assert switches == [(25200, "am_peak"), (32400, "midday")]
    add = write_text_atomic(tmp_path / "plan.add.xml", programs_xml(plan, grid_ix, switches=switches))
    root = ET.parse(add).getroot()
    assert root.find("WAUT").get("startProg") == "midday"  # what runs at midnight
    assert {el.get("programID") for el in root.iter("tlLogic")} == {"am_peak", "midday"}
    sim = Simulation()
    try:
        for t_switch, old, new, c_old in ((25200, "midday", "am_peak", 50), (32400, "am_peak", "midday", 60)):
            begin, end = t_switch - 30, t_switch + c_old + 10
            sim.start(["--net-file", str(grid[0]), "--additional-files", str(add), "--begin", str(begin),
                       "--end", str(end), "--no-step-log", "true"])
            seen = {s: [] for s in grid_ix}
            while sim.time < end - 1:
                for s in grid_ix:
                    seen[s].append((sim.time, sim.api.trafficlight.getProgram(s)))
                sim.step()
            sim.close()
            for s, series in seen.items():
                assert all(p == old for t, p in series if t < t_switch), s
                assert all(p == new for t, p in series if t > t_switch + c_old), s
                first_new = min(t for t, p in series if p == new)
                assert t_switch <= first_new <= t_switch + c_old
    finally:
        sim.close()
    log = check_switching(add, grid[0], plan, grid_ix, switches, tmp_path)
    assert len(log) == 2 and all("no unsafe state" in line for line in log)


def test_overlapping_schedule_is_refused():
    from engine.errors import ConfigError

    with pytest.raises(ConfigError, match="overlap"):
        schedule_switches({"a": (3600, 7200), "b": (5400, 9000)}, ["a", "b"])


def test_plan_controller_runs_one_period_of_a_day_file(grid, grid_ix, tmp_path):
    plan = _two_period_plan(grid_ix)
    add = write_text_atomic(tmp_path / "day.add.xml",
                            programs_xml(plan, grid_ix, switches=schedule_switches(WINDOWS, list(WINDOWS))))
    sc = Scenario.load(grid[0], routes=[grid[1]], duration=60)
    loop = ControlLoop(sc, LoopOptions(adaptive=False), workdir=tmp_path / "run")
    try:
        PlanPrograms(add, period="am_peak").setup(loop)
        loop.reset()
        assert {loop.sim.api.trafficlight.getProgram(s) for s in grid_ix} == {"am_peak"}
        loop.advance(seconds=10)
        assert loop.sim.signal_state("A0") == grid_ix["A0"].phases[0].state  # 25 s green
        loop.advance(seconds=17)
        assert "y" in loop.sim.signal_state("A0")  # then the 3 s yellow
    finally:
        loop.close()


def test_export_refuses_an_invalid_plan_and_writes_nothing(grid, grid_ix, tmp_path):
    bad = Plan("grid", {"am_peak": PeriodPlan("am_peak", "test", 50.0,
                                              {s: SignalTiming(s, 0.0, (5.0, 35.0)) for s in grid_ix})})
    ctx = PlanContext(PlanConfig(constraints=LIMITS), Scenario.of_network(grid[0]), grid_ix,
                      build_corridor(grid[0], grid_ix, ["A0", "B0"]), WINDOWS,
                      schedule_switches(WINDOWS, ["am_peak"]))
    out = tmp_path / "out"
    with pytest.raises(PlanValidationError, match="below its minimum green 7 s"):
        export(ctx, bad, out, log=lambda line: None)
    assert not out.exists() or not any(out.iterdir())


def _route_flows(net_file, route_file) -> dict[tuple[str, str], float]:
    """Movement flows (veh/h) of the grid's <flow> elements along their shortest paths."""
    net = sumolib.net.readNet(str(net_file))
    flows: dict[tuple[str, str], float] = {}
    for f in ET.parse(route_file).getroot().iter("flow"):
        edges, _ = net.getShortestPath(net.getEdge(f.get("from")), net.getEdge(f.get("to")))
        for a, b in zip(edges, edges[1:]):
            key = (a.getID(), b.getID())
            flows[key] = flows.get(key, 0.0) + float(f.get("vehsPerHour"))
    return flows


def test_short_optimise_never_returns_a_worse_plan(grid, grid_ix, tmp_path):
    sc = Scenario.load(grid[0], routes=[grid[1]])
    corridor = build_corridor(grid[0], grid_ix, ["A0", "B0"])
    search = PlanSearch("am_peak", grid_ix, _route_flows(*grid), LIMITS, corridor, grid[0], None, 1.0,
                        (1.0, 1.0), Optimiser(trials=3, refine_trials=4, seed=0))
    with PlanEvaluator(sc, seeds=[1], duration=300, workdir=tmp_path, workers=2) as evaluator:
        result = optimise_period(search, evaluator)
    assert len(result.trials) == 3 and result.trials[0][1] == result.start_eval.objective
    assert result.best_eval.objective <= result.start_eval.objective
    validate_period(result.plan, grid_ix, LIMITS)
    # scored again, independently, on the same seeds: no worse than the start
    again = PlanEvaluator(sc, seeds=[1], duration=300, workdir=tmp_path / "again").run(result.plan, grid_ix)
    assert again.objective == pytest.approx(result.best_eval.objective)
    assert again.objective <= result.start_eval.objective + 1e-9
    if not result.improved:
        assert result.plan.timings == result.start.timings
    # nor worse than the programs the network runs today, when they are a legal plan
    current = search.current_plan()
    if current is not None:
        today = PlanEvaluator(sc, seeds=[1], duration=300, workdir=tmp_path / "today").run(current, grid_ix)
        assert result.best_eval.objective <= today.objective + 1e-9


def test_a_search_out_of_time_still_returns_a_checked_plan(grid, grid_ix, tmp_path):
    sc = Scenario.load(grid[0], routes=[grid[1]])
    corridor = build_corridor(grid[0], grid_ix, ["A0", "B0"])
    search = PlanSearch("am_peak", grid_ix, _route_flows(*grid), LIMITS, corridor, grid[0], None, 1.0,
                        (1.0, 1.0), Optimiser(trials=5, timeout_s=1e-6))
    result = optimise_period(search, PlanEvaluator(sc, seeds=[1], duration=120, workdir=tmp_path))
    assert result.trials == []
    current = search.current_plan()
    assert result.plan.timings in (result.start.timings, current.timings if current else None)
    validate_period(result.plan, grid_ix, LIMITS)


def test_parallel_evaluation_gives_the_kpis_of_sequential_runs(grid, grid_ix, tmp_path):
    sc = Scenario.load(grid[0], routes=[grid[1]])
    plans = [_two_period_plan(grid_ix).periods["am_peak"], None]
    one = PlanEvaluator(sc, seeds=[1, 2], duration=200, workdir=tmp_path / "one")
    sequential = [one.run(pp, grid_ix) for pp in plans]
    with PlanEvaluator(sc, seeds=[1, 2], duration=200, workdir=tmp_path / "two", workers=2) as two:
        parallel = two.run_many(plans, grid_ix)
    assert [e.kpis for e in parallel] == [e.kpis for e in sequential]
    assert two.runs == 4 and sequential[0].kpis[0] != sequential[0].kpis[1]


def test_local_moves_are_single_legal_changes(grid, grid_ix):
    corridor = build_corridor(grid[0], grid_ix, ["A0", "B0"])
    search = PlanSearch("am_peak", grid_ix, _route_flows(*grid), LIMITS, corridor, grid[0], None, 1.0,
                        (1.0, 1.0), Optimiser(trials=1))
    pp = PeriodPlan("am_peak", "test", 60.0, {s: SignalTiming(s, 0.0, (10.0, 40.0)) for s in grid_ix})
    moves = search.neighbours(pp, offset_step=8, green_step=4)
    # offsets move on the corridor after its first signal (B0) only; a first phase of 10 s cannot give 4 s (< 7)
    assert sorted(label for label, _ in moves) == sorted([f"{s} green 4 s phase 2->1" for s in grid_ix]
                                                         + ["B0 offset +8", "B0 offset -8"])
    for label, moved in moves:
        validate_period(moved, grid_ix, LIMITS)
        changed = [s for s in grid_ix if moved.timings[s] != pp.timings[s]]
        assert changed == [label.split()[0]]
    # a move keeps everything else of the timing it changes, right-turn overlaps included
    over = pp.with_timings({s: SignalTiming(s, 0.0, (10.0, 40.0), right_turn_overlaps=True) for s in grid_ix})
    assert all(t.right_turn_overlaps for _, moved in search.neighbours(over, 8, 4) for t in moved.timings.values())


def test_refinement_walks_downhill_and_halves_its_steps(grid, grid_ix):
    """The local stage on a known objective (no simulation: this tests the search, not SUMO)."""
    from engine.plan.evaluate import Evaluation
    from engine.plan.optimise import _refine

    corridor = build_corridor(grid[0], grid_ix, ["A0", "B0"])

    def search(**options) -> PlanSearch:
        return PlanSearch("am_peak", grid_ix, _route_flows(*grid), LIMITS, corridor, grid[0], None, 1.0,
                          (1.0, 1.0), Optimiser(trials=1, **options))
    start = PeriodPlan("am_peak", "test", 60.0, {s: SignalTiming(s, 0.0, (25.0, 25.0)) for s in grid_ix})
    tried: list[PeriodPlan] = []

    def distance(pp: PeriodPlan) -> float:  # optimum: B0 offset 14 s, every signal's greens (30, 20)
        t = pp.timings
        return abs(t["B0"].offset - 14) + sum(abs(x.greens[0] - 30) for x in t.values())

    def score_many(pps):
        tried.extend(pps)
        return [Evaluation((), distance(pp)) for pp in pps]

    best = _refine(search(refine_trials=400, refine_offset_s=8, refine_green_s=4), start, score_many, 2, None)
    assert distance(best) == 0  # offset steps 8, 4, 2 s and green steps of 4 and 1 s reach it
    assert {t.greens for t in best.timings.values()} == {(30.0, 20.0)}
    tried.clear()
    no_offsets = _refine(search(refine_trials=400, refine_offset_s=0, refine_green_s=4), start, score_many, 2, None)
    assert all(pp.timings["B0"].offset == 0 for pp in tried) and no_offsets.timings["B0"].offset == 0


def test_distil_a_heuristic_policy_into_a_fixed_plan(grid, grid_ix):
    sc = Scenario.load(grid[0], routes=[grid[1]], duration=300, seed=1)
    policy = make_controller("max_pressure", sc)
    usage, kpis = record_usage(policy, [sc], grid_ix, LoopOptions())
    for u in usage.values():
        assert sum(u.served) >= 2 and 0 < sum(u.green_s) <= u.span_s
        assert u.span_s == pytest.approx(300, abs=1)
    pp = distilled_period_plan("am_peak", usage, grid_ix, LIMITS, build_corridor(grid[0], grid_ix, ["A0", "B0"]))
    validate_period(pp, grid_ix, LIMITS)
    # the plan keeps the policy's green shares as far as minimums allow
    for sid, t in pp.timings.items():
        shares = np.array(t.greens) / sum(t.greens)
        assert np.abs(shares - np.array(usage[sid].shares)).max() < 0.2
    assert np.isfinite(kpis[0].mean_delay_s)


def test_a_plan_of_the_networks_own_programs_reproduces_them_exactly(grid, grid_ix, tmp_path):
    from engine.plan.measure import default_timing

    sc = Scenario.load(grid[0], routes=[grid[1]])
    pp = PeriodPlan("am_peak", "default", default_timing(grid_ix["A0"])[1],
                    {s: default_timing(ix)[0] for s, ix in grid_ix.items()})
    ev = PlanEvaluator(sc, seeds=[1], duration=300, workdir=tmp_path)
    assert ev.run(pp, grid_ix).kpis[0] == ev.run(None, grid_ix).kpis[0]


def test_report_has_diagram_and_before_after_tables(grid, grid_ix, tmp_path):
    import re

    from engine.plan.pipeline import report

    cfg = PlanConfig(constraints=LIMITS, report={"seeds": [1], "duration_s": 180})
    ctx = PlanContext(cfg, Scenario.load(grid[0], routes=[grid[1]]), grid_ix,
                      build_corridor(grid[0], grid_ix, ["A0", "B0"]), WINDOWS,
                      schedule_switches(WINDOWS, ["am_peak"]), flow_source=lambda p: _route_flows(*grid))
    plan = Plan("grid", {"am_peak": _two_period_plan(grid_ix).periods["am_peak"]})
    path = report(ctx, plan, tmp_path, [], {"network": "grid"}, log=lambda line: None)
    text = path.read_text()
    assert "data:image/png;base64," in text
    rows = re.findall(r"<tr><td class=l>A0</td><td class=l>(\w) \((\w+)\)</td>", text)
    assert {edge for _, edge in rows} == {m.from_edge for m in grid_ix["A0"].movements}
    assert re.search(r"<th class=l>A0</th><th class=l>intersection</th>.*?class=los[A-F]>[A-F]<", text)
    assert "mean delay [s/veh]" in text


def test_right_turn_overlaps_validate_export_and_run_safely_in_sumo(tmp_path):
    import dataclasses

    from engine.plan.export import timing_rows
    from engine.plan.measure import default_timing
    from engine.runner import run_controller
    from engine.safety import SafetyMonitor

    sc = Scenario.load("chongqing", period="am_peak", seed=1, duration=300)
    ixs = read_intersections(sc.net_file)
    base = PeriodPlan("am_peak", "default", default_timing(ixs["C1"])[1],
                      {s: default_timing(ix)[0] for s, ix in ixs.items()})
    over = base.with_timings({s: dataclasses.replace(t, right_turn_overlaps=True) for s, t in base.timings.items()})
    limits = Constraints(cycle_min_s=60, cycle_max_s=180, min_green_s=10, pedestrian_min_s=None)
    validate_period(over, ixs, limits)
    plan = Plan("chongqing", {"am_peak": over})
    assert Plan.from_dict(plan.to_dict()).periods["am_peak"].timings["C1"].right_turn_overlaps
    # the timing sheet: same greens and clearances, plus the right turns each phase also runs
    rows, before = timing_rows(plan, ixs), timing_rows(Plan("chongqing", {"am_peak": base}), ixs)
    keys = ("intersection", "phase", "green_s", "yellow_s", "all_red_s", "start_in_cycle_s")
    assert [[r[k] for k in keys] for r in rows] == [[r[k] for k in keys] for r in before]
    assert not any(r["overlaps"] for r in before)
    added = [r for r in rows if r["overlaps"]]
    assert added and all(r["phase"] in (2, 4) for r in added)  # with the left-turn phases, never with a through
    from engine.plan.report import _timing_table
    assert added[0]["overlaps"].split()[0].replace(">", "&gt;") in _timing_table(over, ixs, {})
    # exported phases are named by their phase, clearances included, even where an overlap stays green
    add = write_text_atomic(tmp_path / "plan.add.xml", programs_xml(plan, ixs))
    for logic in ET.parse(add).getroot().iter("tlLogic"):
        names = [p.get("name") for p in logic.iter("phase")]
        assert sum(":" not in n for n in names) == 4 and len(names) == 12
    monitor = SafetyMonitor(list(ixs.values()))
    kpis = run_controller(sc, PlanPrograms(add), LoopOptions(adaptive=False), monitor=monitor)
    assert monitor.violations == [] and kpis.arrived > 0


@pytest.mark.slow
def test_the_final_round_can_try_right_turn_overlaps(tmp_path):
    from engine.plan.config import load_plan_config
    from engine.plan.pipeline import plan_search, resolve

    cfg = load_plan_config("configs/plan_chongqing.yaml")
    ctx = resolve(cfg)
    search = plan_search(ctx, "am_peak")
    search.options = Optimiser(trials=1, refine_trials=0, finalists=1, try_right_turn_overlaps=True)
    lines = []
    sc = ctx.scenario.with_options(period="am_peak")
    with PlanEvaluator(sc, seeds=[1], duration=120, workdir=tmp_path, workers=2) as evaluator:
        result = optimise_period(search, evaluator, log=lines.append)
    assert any("each with right-turn overlaps too" in line for line in lines)
    # the start and today's programs, each also with overlaps: four plans, one seed
    assert result.simulations == 4
    assert result.best_eval.objective <= result.start_eval.objective
    validate_period(result.plan, ctx.intersections, cfg.constraints)
    flags = {t.right_turn_overlaps for t in result.plan.timings.values()}
    assert len(flags) == 1 and result.plan.notes.get("right_turn_overlaps", False) == flags.pop()
    winner = [line for line in lines if line.startswith("final round's winner")]
    assert len(winner) == 1 and ("with right-turn overlaps" in winner[0]) == result.plan.notes.get(
        "right_turn_overlaps", False)
    assert f"{result.best_eval.objective:.2f}" in winner[0]


def test_overlap_twins_winner_tries_overlaps_on_the_final_rounds_best_only(tmp_path):
    from engine.plan.config import load_plan_config
    from engine.plan.optimise import with_overlaps
    from engine.plan.pipeline import plan_search, resolve

    cfg = load_plan_config("configs/plan_chongqing.yaml")
    ctx = resolve(cfg)
    search = plan_search(ctx, "am_peak")
    search.options = Optimiser(trials=1, refine_trials=0, finalists=1, try_right_turn_overlaps=True,
                               overlap_twins="winner")
    lines = []
    sc = ctx.scenario.with_options(period="am_peak")
    with PlanEvaluator(sc, seeds=[1], duration=120, workdir=tmp_path, workers=2) as evaluator:
        result = optimise_period(search, evaluator, log=lines.append)
        # the start and today's programs, then one twin: the final round's best with overlaps
        assert result.simulations == 3
        assert not any("each with right-turn overlaps too" in line for line in lines)
        assert sum("best with right-turn overlaps" in line for line in lines) == 1
        kept_overlaps = {t.right_turn_overlaps for t in result.plan.timings.values()} == {True}
        if not kept_overlaps:  # the twin lost: it scores no better than the plan kept
            assert evaluator.run(with_overlaps(result.plan, ctx.intersections, cfg.constraints),
                                 ctx.intersections).objective \
                >= result.best_eval.objective - 1e-9
    validate_period(result.plan, ctx.intersections, cfg.constraints)


def test_overlap_twin_keeps_the_cycle_where_its_clearances_last_longer(tmp_path):
    """Leading protected lefts that go on permissive with the throughs without a clearance (G -> g): with
    right-turn overlaps the cross street's right turns run beside the leading lefts and need a derived
    clearance there (5 s the network's program does not have). The overlap twin gives those seconds back
    from the greens, so it keeps the cycle and validates (it failed "phase times sum to ..." before)."""
    import dataclasses
    import sys
    from pathlib import Path

    from engine.network import read_intersections
    from engine.plan.model import PeriodPlan, SignalTiming, program_of
    from engine.plan.optimise import with_overlaps
    from engine.signals import with_minimum_clearances

    sys.path.insert(0, str(Path(__file__).parent))
    import netcorpus as nc

    def programs(links):
        tid, rows = next(iter(links.items()))
        lead = nc.state_of(rows, lambda i, a, b, d: "G" if a[0] in "WE" and d in "lL" else "r")
        art, cross = nc.state_of(rows, nc.serve("WE")), nc.state_of(rows, nc.serve("SN"))
        red = "r" * len(art)
        return [(tid, "0", 0, [(10, lead), (26, art), (3, nc.to_yellow(art)), (2, red),
                               (20, cross), (3, nc.to_yellow(cross)), (2, red)])]

    net = nc._hand_programmed(tmp_path, "lead_no_clearance", nc._nodes(nc._cross_nodes()),
                              nc._edges(nc._cross_edges(3, 2)), programs,
                              connections=nc._connections(nc.arterial_left_lanes()))
    limits = Constraints(pedestrian_min_s=None)
    ix = with_minimum_clearances(read_intersections(net)["C"], limits.yellow_s, limits.all_red_s)[0]
    timing = SignalTiming("C", 5.0, (12.0, 40.0, 30.0))
    cycle = sum(d for _, d in program_of(ix, timing))
    pp = PeriodPlan("pm_peak", "test", cycle, {"C": timing})
    raw = sum(d for _, d in program_of(ix, dataclasses.replace(timing, right_turn_overlaps=True)))
    assert raw > cycle  # the overlap program's own clearances are longer
    twin = with_overlaps(pp, {"C": ix}, limits)
    assert twin is not None and twin.cycle == cycle and twin.timings["C"].right_turn_overlaps
    assert sum(d for _, d in program_of(ix, twin.timings["C"])) == cycle
    assert sum(twin.timings["C"].greens) == sum(timing.greens) - (raw - cycle)
    validate_period(twin, {"C": ix}, limits)
    tight = PeriodPlan("pm_peak", "test", cycle - sum(timing.greens) + 21,
                       {"C": SignalTiming("C", 0.0, (7.0, 7.0, 7.0))})
    assert with_overlaps(tight, {"C": ix}, limits) is None  # no seconds above the minimums to give back


def test_timing_sheet_lists_signals_in_corridor_order_then_by_id():
    from engine.plan.export import timing_rows
    from engine.plan.measure import default_timing

    sc = Scenario.load("chongqing", period="am_peak", seed=1, duration=300)
    ixs = read_intersections(sc.net_file)
    # timings in a scrambled order: the sheet must not follow the dict
    sids = sorted(ixs, reverse=True)
    base = PeriodPlan("am_peak", "default", default_timing(ixs["C1"])[1],
                      {s: default_timing(ixs[s])[0] for s in sids})
    order = ["C5", "C2", "C7"]
    rows = timing_rows(Plan("chongqing", {"am_peak": base}), ixs, order=order)
    seen = list(dict.fromkeys(r["intersection"] for r in rows))
    assert seen == order + sorted(set(ixs) - set(order))
    assert [r["phase"] for r in rows if r["intersection"] == "C5"] == list(range(1, ixs["C5"].n_phases + 1))


def test_a_folders_declared_signal_order_is_the_plans_corridor(tmp_path):
    """With no ``corridor.signals`` in the plan config, the corridor is the network folder's
    ``network.yaml`` ``signals`` in that order (not the file's), else every signal in file order."""
    import subprocess

    from engine.plan.pipeline import _network_signals
    from engine.sim import sumo_binary

    net = tmp_path / "art.net.xml"
    subprocess.run([sumo_binary("netgenerate"), "--grid", "--grid.x-number", "3", "--grid.y-number", "1",
                    "--grid.attach-length", "200", "--tls.guess", "true", "--default-junction-type",
                    "traffic_light", "--no-turnarounds", "-o", str(net)], check=True, capture_output=True)
    ixs = read_intersections(net)
    assert sorted(ixs) == ["A0", "B0", "C0"]
    (tmp_path / "network.yaml").write_text("net: art.net.xml\nroutes: [r.rou.xml]\nsignals: [C0, B0, A0]\n")
    assert _network_signals(str(tmp_path), ixs) == ["C0", "B0", "A0"]
    corridor = build_corridor(net, ixs, _network_signals(str(tmp_path), ixs))
    assert corridor.signals == ("C0", "B0", "A0") and corridor.positions[-1] > 150  # two 100 m blocks
    (tmp_path / "network.yaml").write_text("net: art.net.xml\nroutes: [r.rou.xml]\n")
    assert _network_signals(str(tmp_path), ixs) == list(ixs)
