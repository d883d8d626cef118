"""Simulation-based search for a period's plan, starting from the green wave.

Two stages. The sampled one covers a small space on purpose, so that tens of
trials suffice:

* the common cycle (on the constraint's step grid, from the shortest cycle
  that fits every minimum green);
* where the splits come from: Webster's ratios, or the network's current
  programs' green shares (an engineer's prior);
* a bias on the arterial's coordinated phases and one on turn-only phases
  (protected lefts, whose short bays block a through lane when they overflow);
* the progression speed the offsets are timed for, the weight of the forward
  direction against the backward one, and whether offsets serve one band
  through the whole corridor or each link's own overlap;
* optionally a per-signal offset shift.

Every sampled candidate is a green-wave plan for those settings, so it obeys
every constraint by construction (and is validated before it is simulated).
The first trial is the start (the plain green wave); the next two are the
network's current cycle and splits with each kind of offsets; the sampler
takes over from there. The local stage then polishes the best plan so far
(today's programs included) one signal at a time, as an engineer tunes a
timing plan in the field: an offset nudged, or seconds of green moved from one
phase to another. The network's current programs, exactly as they run today,
also compete in the final round when they meet the constraints. The plan
returned is the best of the final round: the search never returns a plan worse
than the start or today's programs on its evaluation seeds.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from engine.errors import ConfigError
from engine.plan.config import Constraints, Optimiser
from engine.plan.corridor import Corridor
from engine.plan.evaluate import Evaluation, PlanEvaluator, objective
from engine.plan.measure import default_timing
from engine.webster import lost_time
from engine.plan.model import (PeriodPlan, PlanValidationError, SignalTiming, phase_minimums, program_of,
                               shares_to_greens, validate_period)
from engine.plan.webster_plan import Flows, common_cycle, green_wave_period_plan, signal_ratios
from engine.signals import Intersection, with_right_turn_overlaps

Progress = Callable[[float, float], None]


@dataclass
class SearchResult:
    """The plan returned, its start, and every trial (params, objective)."""

    plan: PeriodPlan
    start: PeriodPlan
    start_eval: Evaluation
    best_eval: Evaluation
    trials: list[tuple[dict, float]] = field(default_factory=list)
    wall_s: float = 0.0
    simulations: int = 0

    @property
    def improved(self) -> bool:
        return self.best_eval.objective < self.start_eval.objective


class PlanSearch:
    """Decodes search parameters into green-wave plans for one period."""

    def __init__(self, period: str, intersections: Mapping[str, Intersection], flows: Flows,
                 limits: Constraints, corridor: Corridor, net_file: Path, speed_kmh: float | None,
                 speed_factor: float, weights: tuple[float, float], options: Optimiser) -> None:
        self.period = period
        self.intersections = intersections
        self.flows = flows
        self.limits = limits
        self.corridor = corridor
        self.net_file = net_file
        self.speed_kmh = speed_kmh
        self.speed_factor = speed_factor
        self.weights = weights
        self.options = options
        ratios = signal_ratios(intersections, flows)
        self.start_cycle = int(common_cycle(intersections, ratios, limits)[0])
        # the network's own programs: their green shares are a second split the search may use
        self.current_shares = {s: tuple(p.duration for p in ix.phases) for s, ix in intersections.items()}
        current = sorted(sum(d for _, d in ix.program) for ix in intersections.values())
        self.current_cycle = current[len(current) // 2]
        # cycles on the step grid from cycle_min_s that fit every signal's minimum greens
        need = max(lost_time(ix) + sum(phase_minimums(ix, limits)) for ix in intersections.values())
        lo, step = limits.cycle_min_s, limits.cycle_step_s
        self.cycle_low = lo + math.ceil(max(need - lo, 0) / step - 1e-9) * step
        self.cycle_high = lo + (limits.cycle_max_s - lo) // step * step
        if self.cycle_low > self.cycle_high:
            raise ConfigError(f"constraints: no cycle on the {step} s grid in [{lo}, {limits.cycle_max_s}] "
                              f"fits the minimum greens ({need:g} s needed)")

    def current_plan(self) -> PeriodPlan | None:
        """The network's own programs as a plan, if they share one cycle and meet the constraints."""
        timed = {s: default_timing(ix) for s, ix in self.intersections.items()}
        cycles = {c for _, c in timed.values()}
        if len(cycles) != 1:
            return None
        pp = PeriodPlan(period=self.period, method="current", cycle=float(cycles.pop()),
                        timings={s: t for s, (t, _) in timed.items()}, notes={"source": "the network's programs"})
        try:
            validate_period(pp, self.intersections, self.limits)
        except PlanValidationError:
            return None
        return pp

    def informed_params(self) -> list[dict]:
        """Extra first trials: the network's current cycle and splits, with each kind of offsets."""
        c = self.current_cycle
        step = self.limits.cycle_step_s
        c = self.limits.cycle_min_s + round((c - self.limits.cycle_min_s) / step) * step
        if not self.cycle_low <= c <= self.cycle_high:
            return []
        return [{**self.start_params(), "cycle": int(c), "splits": "current", "offsets": mode}
                for mode in ("band", "links")]

    def start_params(self) -> dict:
        """The parameters that decode to the plain green-wave plan."""
        params = {"cycle": self.start_cycle, "bias": 1.0, "turn_bias": 1.0, "speed": 1.0,
                  "forward_weight": self.weights[0] / (self.weights[0] + self.weights[1]), "offsets": "band",
                  "splits": "webster"}
        if self.options.offset_shift_s > 0:
            params.update({f"shift_{s}": 0 for s in self.corridor.signals[1:]})
        return params

    def suggest(self, trial) -> dict:
        lo, hi, step = self.cycle_low, self.cycle_high, self.limits.cycle_step_s
        params = {
            "cycle": trial.suggest_int("cycle", lo, hi, step=step),
            "bias": trial.suggest_float("bias", *self.options.bias_range),
            "turn_bias": trial.suggest_float("turn_bias", *self.options.turn_bias_range),
            "speed": trial.suggest_float("speed", *self.options.speed_factor_range),
            "forward_weight": trial.suggest_float("forward_weight", *self.options.forward_weight_range),
            "offsets": trial.suggest_categorical("offsets", ["band", "links"]),
            "splits": trial.suggest_categorical("splits", ["webster", "current"]),
        }
        k = int(self.options.offset_shift_s)
        if k > 0:
            params.update({f"shift_{s}": trial.suggest_int(f"shift_{s}", -k, k) for s in self.corridor.signals[1:]})
        return params

    def decode(self, params: Mapping) -> PeriodPlan:
        """The green-wave plan for these settings, validated."""
        corridor = self.corridor
        if params["speed"] != 1.0:
            corridor = corridor.with_speed(self.net_file, self.speed_kmh and self.speed_kmh * params["speed"],
                                           self.speed_factor * params["speed"])
        w = float(params["forward_weight"])
        pp = green_wave_period_plan(self.period, self.intersections, self.flows, self.limits, corridor,
                                    cycle=float(params["cycle"]), bias=float(params["bias"]),
                                    turn_bias=float(params["turn_bias"]),
                                    weights=(w, 1.0 - w), seed=self.options.seed,
                                    offsets_mode=str(params.get("offsets", "band")),
                                    shares=self.current_shares if params.get("splits") == "current" else None)
        shifts = {s: float(params.get(f"shift_{s}", 0)) for s in corridor.signals}
        if any(shifts.values()):
            c = pp.cycle
            timings = {s: SignalTiming(s, (t.offset + shifts.get(s, 0.0)) % c, t.greens)
                       for s, t in pp.timings.items()}
            pp = pp.with_timings(timings)
        validate_period(pp, self.intersections, self.limits)
        return pp

    def neighbours(self, pp: PeriodPlan, offset_step: float, green_step: float) -> list[tuple[str, PeriodPlan]]:
        """Every plan one local move away from ``pp``, labelled with the move.

        A move shifts one signal's offset by +- ``offset_step`` (not the
        corridor's first signal, the reference) or moves ``green_step`` seconds
        of green from one of its phases to another; the cycle is kept and no
        green falls below its minimum.
        """
        out: list[tuple[str, PeriodPlan]] = []
        c = pp.cycle
        for sid, t in sorted(pp.timings.items()):
            ix = self.intersections[sid]
            if offset_step > 0 and sid in self.corridor.signals[1:]:
                for d in (offset_step, -offset_step):
                    out.append((f"{sid} offset {d:+g}",
                                pp.with_timings({**pp.timings, sid: replace(t, offset=(t.offset + d) % c)})))
            mins = phase_minimums(ix, self.limits)
            for a in range(len(t.greens)):
                for b in range(len(t.greens)):
                    if a == b or t.greens[a] - green_step < mins[a] - 1e-9 or green_step <= 0:
                        continue
                    g = list(t.greens)
                    g[a] -= green_step
                    g[b] += green_step
                    out.append((f"{sid} green {green_step:g} s phase {a + 1}->{b + 1}",
                                pp.with_timings({**pp.timings, sid: replace(t, greens=tuple(g))})))
        return out


def _key(pp: PeriodPlan) -> tuple:
    return (pp.cycle, tuple((s, t.offset, t.greens, t.right_turn_overlaps) for s, t in sorted(pp.timings.items())))


def with_overlaps(pp: PeriodPlan, intersections: Mapping[str, Intersection], limits: Constraints
                  ) -> PeriodPlan | None:
    """``pp`` with right-turn overlaps at every signal: same cycle and offsets, same greens where the
    overlap program's clearances last as long as the plan's own. Where they last longer or shorter
    (a clearance derived between greens the network never sequences, e.g. after a leading phase,
    or one lengthened to the constraints), the greens give or take the difference in proportion,
    none below its minimum, so every signal keeps the cycle. None when the minimums leave no room.
    """
    timings = {}
    for sid, t in pp.timings.items():
        ov = replace(t, right_turn_overlaps=True)
        extra = sum(d for _, d in program_of(intersections[sid], ov)) - pp.cycle
        if abs(extra) > 1e-9:
            try:
                greens = shares_to_greens(t.greens, sum(t.greens) - extra,
                                          phase_minimums(intersections[sid], limits))
            except ConfigError:
                return None
            ov = replace(ov, greens=greens)
        timings[sid] = ov
    return pp.with_timings(timings, notes={**pp.notes, "right_turn_overlaps": True})


def optimise_period(search: PlanSearch, evaluator: PlanEvaluator, progress: Progress | None = None,
                    log: Callable[[str], None] | None = None) -> SearchResult:
    """Search ``search``'s space on ``evaluator``'s seeds; never worse than the start or today's programs.

    1. Global: ``trials`` sampled settings (the start and the informed trials
       first), each scored on the first ``search_seeds`` evaluation seeds,
       ``evaluator.workers`` simulations at a time.
    2. Local: ``refine_trials`` single moves (one signal's offset, or green moved
       between two of its phases) from the best plan so far, the network's
       current programs included; a move that lowers the objective is kept,
       and the step sizes halve when a sweep finds none.
    3. Final: the best trials, the refined plan, the start and the current
       programs are scored on every evaluation seed (with ``try_right_turn_overlaps``,
       each also with right-turn overlaps, or with ``overlap_twins: winner`` only the
       round's best, afterwards); the best is returned, so it is never worse than the
       start or the current programs on those seeds.
    """
    import optuna

    opts = search.options
    t0 = time.perf_counter()
    runs0 = evaluator.runs
    seeds = evaluator.seeds
    n_search = min(opts.search_seeds or len(seeds), len(seeds))
    search_seeds, rest = seeds[:n_search], seeds[n_search:]
    optuna.logging.set_verbosity(logging.WARNING)
    study = optuna.create_study(direction="minimize", sampler=_sampler(search))
    study.enqueue_trial(search.start_params())
    for params in search.informed_params()[:max(opts.trials - 1, 0)]:
        study.enqueue_trial(params)

    duration = evaluator.base.duration
    batch = evaluator.workers
    final_plans = opts.finalists + 3  # finalists, refined, start, current
    twins = (final_plans if opts.overlap_twins == "finalists" else 1) * len(seeds) \
        if opts.try_right_turn_overlaps else 0
    total = ((opts.trials + opts.refine_trials + 1) * len(search_seeds) + final_plans * len(rest) + twins) * duration
    scorer = _Scorer(evaluator, search.intersections, progress, total)
    plans, score_many, score = scorer.plans, scorer.many, scorer.one

    start = search.decode(search.start_params())
    trials: list[tuple[dict, float]] = []
    while len(trials) < opts.trials and (opts.timeout_s is None or time.perf_counter() - t0 < opts.timeout_s):
        asked = [study.ask() for _ in range(min(batch, opts.trials - len(trials)))]
        params = [search.suggest(trial) for trial in asked]
        values = [ev.objective for ev in score_many([search.decode(p) for p in params], search_seeds)]
        for trial, p, value in zip(asked, params, values):
            study.tell(trial, value)
            trials.append((dict(p), value))
            if log is not None:
                log(f"trial {trial.number:3d}: objective {value:7.2f}  " + _fmt(p))

    score(start, search_seeds)  # scored already as trial 0, unless the timeout came first
    current = search.current_plan()
    ranked = sorted((score(pp, search_seeds).objective, n, key) for n, (key, pp) in enumerate(plans.items()))
    incumbent = plans[ranked[0][2]]
    if current is not None and score(current, search_seeds).objective < score(incumbent, search_seeds).objective:
        incumbent = current
    refined = _refine(search, incumbent, lambda pps: score_many(pps, search_seeds), batch, log)

    finalists, overlaps = _finalists(search, plans, [key for _, _, key in ranked], start, refined, current,
                                     all_of_them=not rest)
    each_twin = overlaps and opts.overlap_twins == "finalists"
    if (rest or each_twin) and log is not None:
        kinds = "best trials, refined, start, current" + (", each with right-turn overlaps too" if each_twin else "")
        log(f"final round: {len(finalists)} plans ({kinds}) on seeds {list(seeds)}")
    evals = score_many([plans[k] for k in finalists], seeds)
    start_eval = evals[0]
    best_pp, best_eval = start, start_eval
    for key, ev in zip(finalists[1:], evals[1:]):
        if ev.objective < best_eval.objective - 1e-9:
            best_pp, best_eval = plans[key], ev
    twin = with_overlaps(best_pp, search.intersections, search.limits) if overlaps and not each_twin else None
    if twin is not None and _key(twin) != _key(best_pp):
        ev = score(twin, seeds)
        if log is not None:
            log(f"the final round's best with right-turn overlaps: {ev.objective:.2f} "
                f"against {best_eval.objective:.2f}")
        if ev.objective < best_eval.objective - 1e-9:
            best_pp, best_eval = twin, ev
    if log is not None:
        with_rto = " with right-turn overlaps" if best_pp.notes.get("right_turn_overlaps") else ""
        log(f"final round's winner{with_rto}: {best_eval.objective:.2f} (start {start_eval.objective:.2f})")
    if current is not None and _key(best_pp) == _key(current) and log is not None:
        log("no searched plan beat the network's current programs on every seed: they are kept")
    method_notes = {**best_pp.notes, "start_objective": round(start_eval.objective, 3),
                    "objective": round(best_eval.objective, 3), "trials": len(trials),
                    "refine_trials": opts.refine_trials, "seeds": list(seeds), "search_seeds": list(search_seeds),
                    "duration_s": duration}
    plan = best_pp.with_timings(dict(best_pp.timings), method="optimise", notes=method_notes)
    return SearchResult(plan=plan, start=start, start_eval=start_eval, best_eval=best_eval, trials=trials,
                        wall_s=time.perf_counter() - t0, simulations=evaluator.runs - runs0)


class _Scorer:
    """Scores plans on seeds, each (plan, seed) simulated once, ``evaluator.workers`` at a time.

    ``plans`` holds every plan scored, by key, in the order first seen; ``progress``
    sees the simulated seconds done out of ``total``.
    """

    def __init__(self, evaluator: PlanEvaluator, intersections, progress: Progress | None, total: float) -> None:
        self.evaluator, self.intersections = evaluator, intersections
        self.progress, self.total = progress, total
        self.plans: dict[tuple, PeriodPlan] = {}
        self.kpis: dict[tuple, dict[int, object]] = {}
        self.done = 0.0

    def many(self, pps: list[PeriodPlan], on: tuple[int, ...]) -> list[Evaluation]:
        todo: dict[tuple[int, ...], list[PeriodPlan]] = {}
        for pp in pps:
            key = _key(pp)
            self.plans.setdefault(key, pp)
            missing = tuple(s for s in on if s not in self.kpis.setdefault(key, {}))
            if missing and all(_key(q) != key for q in todo.get(missing, [])):
                todo.setdefault(missing, []).append(pp)
        for missing, group in todo.items():
            self._run(group, missing)
        out = []
        for pp in pps:
            runs = tuple(self.kpis[_key(pp)][s] for s in on)
            out.append(Evaluation(runs, objective(runs, self.evaluator.stops_weight)))
        return out

    def one(self, pp: PeriodPlan, on: tuple[int, ...]) -> Evaluation:
        return self.many([pp], on)[0]

    def _run(self, group: list[PeriodPlan], seeds: tuple[int, ...]) -> None:
        base = self.done

        def tick(sim_done: float, _total: float) -> None:
            if self.progress is not None:
                self.progress(base + sim_done, self.total)
        for pp, ev in zip(group, self.evaluator.run_many(group, self.intersections, progress=tick, seeds=seeds)):
            self.kpis[_key(pp)].update(zip(seeds, ev.kpis))
        self.done = base + len(group) * len(seeds) * self.evaluator.base.duration


def _finalists(search: PlanSearch, plans: dict[tuple, PeriodPlan], ranked: list[tuple], start: PeriodPlan,
               refined: PeriodPlan, current: PeriodPlan | None, all_of_them: bool) -> tuple[list[tuple], bool]:
    """Keys of the final round's plans, the start's first, and whether right-turn overlap twins are in.

    The best ``finalists`` trials (every trial if ``all_of_them``: no seeds are left to
    re-score them on), the refined plan and the current programs, each once; with
    ``try_right_turn_overlaps`` (and a signal where overlaps change something) and
    ``overlap_twins: finalists`` also each one's twin with right-turn overlaps. Plans
    not yet in ``plans`` are added.
    """
    opts = search.options
    start_key = _key(start)
    trial_keys = [key for key in ranked if key != start_key]
    finalists = list(trial_keys) if all_of_them else trial_keys[:opts.finalists]
    finalists.append(_key(refined))
    if current is not None:
        plans.setdefault(_key(current), current)
        finalists.append(_key(current))
    finalists = [start_key] + [k for i, k in enumerate(finalists) if k != start_key and k not in finalists[:i]]
    overlaps = opts.try_right_turn_overlaps and any(with_right_turn_overlaps(ix).phases != ix.phases
                                                    for ix in search.intersections.values())
    if overlaps and opts.overlap_twins == "finalists":  # twins of the start, best trials, refined, today's
        keys = [start_key, *trial_keys[:opts.finalists], _key(refined)]
        keys += [_key(current)] if current is not None else []
        twins = [with_overlaps(plans[k], search.intersections, search.limits) for k in dict.fromkeys(keys)]
        for twin in [t for t in twins if t is not None]:
            plans.setdefault(_key(twin), twin)
            finalists.append(_key(twin))
    return finalists, bool(overlaps)


def _sampler(search: PlanSearch):
    import optuna

    opts = search.options
    if opts.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=opts.seed, n_startup_trials=max(3, min(8, opts.trials // 3)),
                                          multivariate=True)
    if opts.sampler == "random":
        return optuna.samplers.RandomSampler(seed=opts.seed)
    try:
        import cmaes  # noqa: F401
    except ModuleNotFoundError:
        raise ConfigError("optimiser.sampler: cmaes needs the 'cmaes' package (pip install cmaes)") from None
    return optuna.samplers.CmaEsSampler(seed=opts.seed, x0=search.start_params())


def _refine(search: PlanSearch, plan: PeriodPlan, score_many: Callable[[list[PeriodPlan]], list[Evaluation]],
            batch: int, log: Callable[[str], None] | None) -> PeriodPlan:
    """Pattern search: try single moves from ``plan`` ``batch`` at a time; keep the best that improves.

    After an improving move the same move is tried again first (queues
    respond to a direction); when every move at the current step sizes has
    failed, the steps halve (to 2 s offsets, 1 s greens) and the sweep restarts.
    """
    opts = search.options
    best_obj = score_many([plan])[0].objective
    offset_step, green_step = float(opts.refine_offset_s), float(opts.refine_green_s)
    rng = random.Random(opts.seed)
    used = 0
    last_move: str | None = None

    def sweep() -> list[tuple[str, PeriodPlan]]:
        moves = search.neighbours(plan, offset_step, green_step)
        rng.shuffle(moves)
        moves.sort(key=lambda m: m[0] != last_move)  # stable: the repeated move first, the rest shuffled
        return moves

    moves = sweep()
    while used < opts.refine_trials:
        if not moves:
            if offset_step <= 2 and green_step <= 1:
                break
            # a step of 0 (that kind of move switched off) stays 0
            offset_step = max(2.0, offset_step // 2) if offset_step else 0.0
            green_step = max(1.0, green_step // 2) if green_step else 0.0
            moves = sweep()
            continue
        n = min(batch, opts.refine_trials - used)
        take, moves = moves[:n], moves[n:]
        used += len(take)
        evals = score_many([pp for _, pp in take])
        k = min(range(len(take)), key=lambda i: evals[i].objective)
        if evals[k].objective < best_obj - 1e-9:
            last_move, plan, best_obj = take[k][0], take[k][1], evals[k].objective
            if log is not None:
                log(f"refine {used:3d}: objective {best_obj:7.2f}  {last_move}")
            moves = sweep()
    return plan


def _fmt(params: Mapping) -> str:
    return " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()
                    if not k.startswith("shift_"))
