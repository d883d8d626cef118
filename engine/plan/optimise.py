"""Simulation-based search for a period's plan, starting from the green wave.

The search space is small on purpose, so that tens of trials suffice:

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

Every candidate is a green-wave plan for those settings, so it obeys every
constraint by construction (and is validated before it is simulated). The
first trial is the start (the plain green wave); the next two are the
network's current cycle and splits with each kind of offsets; the sampler
takes over from there. The network's current programs, exactly as they run
today, also compete in the final round when they meet the constraints. The
plan returned is the best trial, or the start or the current programs unless a
trial beat them on the same seeds: the search never returns a plan worse than
either.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import ConfigError
from engine.plan.config import Constraints, Optimiser
from engine.plan.corridor import Corridor
from engine.plan.evaluate import Evaluation, Evaluator, objective
from engine.plan.measure import default_timing
from engine.plan.model import (PeriodPlan, PlanValidationError, SignalTiming, clearance_time, phase_minimums,
                               validate_period)
from engine.plan.webster_plan import Flows, common_cycle, green_wave_period_plan, signal_ratios
from engine.signals import Intersection

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
        need = max(clearance_time(ix) + sum(phase_minimums(ix, limits)) for ix in intersections.values())
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


def _key(pp: PeriodPlan) -> tuple:
    return (pp.cycle, tuple((s, t.offset, t.greens) for s, t in sorted(pp.timings.items())))


def optimise_period(search: PlanSearch, evaluator: Evaluator, progress: Progress | None = None,
                    log: Callable[[str], None] | None = None) -> SearchResult:
    """Search ``search``'s space on ``evaluator``'s seeds; never worse than the start or today's programs.

    Trials are scored on the first ``search_seeds`` evaluation seeds. When that
    leaves seeds over, the best ``finalists`` trials and the start are scored
    on every evaluation seed and the best of them on all seeds is returned;
    otherwise the best trial is. Either way the start, and the network's
    current programs when they meet the constraints, compete on the same
    seeds, so the plan returned is never worse than either.
    """
    import optuna

    opts = search.options
    t0 = time.perf_counter()
    runs0 = evaluator.runs
    seeds = evaluator.seeds
    n_search = min(opts.search_seeds or len(seeds), len(seeds))
    search_seeds, rest = seeds[:n_search], seeds[n_search:]
    optuna.logging.set_verbosity(logging.WARNING)
    if opts.sampler == "tpe":
        sampler = optuna.samplers.TPESampler(seed=opts.seed, n_startup_trials=max(3, min(8, opts.trials // 3)),
                                             multivariate=True)
    elif opts.sampler == "random":
        sampler = optuna.samplers.RandomSampler(seed=opts.seed)
    else:
        try:
            import cmaes  # noqa: F401
        except ModuleNotFoundError:
            raise ConfigError("optimiser.sampler: cmaes needs the 'cmaes' package (pip install cmaes)") from None
        sampler = optuna.samplers.CmaEsSampler(seed=opts.seed, x0=search.start_params())
    study = optuna.create_study(direction="minimize", sampler=sampler)
    study.enqueue_trial(search.start_params())
    for params in search.informed_params()[:max(opts.trials - 1, 0)]:
        study.enqueue_trial(params)

    plans: dict[tuple, PeriodPlan] = {}
    kpis: dict[tuple, dict[int, object]] = {}
    duration = evaluator.base.duration
    total = (opts.trials * len(search_seeds) + (opts.finalists + 1) * len(rest)) * duration
    done = [0.0]

    def score(pp: PeriodPlan, on: tuple[int, ...]) -> Evaluation:
        key = _key(pp)
        plans.setdefault(key, pp)
        have = kpis.setdefault(key, {})
        missing = tuple(s for s in on if s not in have)
        if missing:
            base = done[0]

            def tick(sim_done: float, _total: float) -> None:
                if progress is not None:
                    progress(base + sim_done, total)
            ev = evaluator.run(pp, search.intersections, progress=tick, seeds=missing)
            have.update(zip(missing, ev.kpis))
            done[0] = base + len(missing) * duration
        runs = tuple(have[s] for s in on)
        return Evaluation(runs, objective(runs, evaluator.stops_weight))

    start = search.decode(search.start_params())
    score(start, search_seeds)
    trials: list[tuple[dict, float]] = []

    def trial_objective(trial) -> float:
        params = search.suggest(trial)
        pp = start if trial.number == 0 else search.decode(params)
        value = score(pp, search_seeds).objective
        trials.append((dict(params), value))
        if log is not None:
            log(f"trial {trial.number:3d}: objective {value:7.2f}  " + _fmt(params))
        return value

    study.optimize(trial_objective, n_trials=opts.trials, timeout=opts.timeout_s)
    ranked = sorted((score(pp, search_seeds).objective, n, key) for n, (key, pp) in enumerate(plans.items()))
    start_key = _key(start)
    if rest:
        finalists = [key for _, _, key in ranked if key != start_key][:opts.finalists]
        if log is not None and finalists:
            log(f"finalists: {len(finalists)} best trials and the start on seeds {list(rest)} as well")
    else:
        finalists = [key for _, _, key in ranked if key != start_key]
    start_eval = score(start, seeds)
    best_pp, best_eval = start, start_eval
    current = search.current_plan()
    if current is not None and _key(current) not in plans:
        plans[_key(current)] = current
        finalists.append(_key(current))
    for key in finalists:
        ev = score(plans[key], seeds)
        if ev.objective < best_eval.objective - 1e-9:
            best_pp, best_eval = plans[key], ev
    if current is not None and _key(best_pp) == _key(current) and log is not None:
        log("no trial beat the network's current programs on every seed: they are kept")
    method_notes = {**best_pp.notes, "start_objective": round(start_eval.objective, 3),
                    "objective": round(best_eval.objective, 3), "trials": len(trials),
                    "seeds": list(seeds), "search_seeds": list(search_seeds), "duration_s": duration}
    plan = best_pp.with_timings(dict(best_pp.timings), method="optimise", notes=method_notes)
    return SearchResult(plan=plan, start=start, start_eval=start_eval, best_eval=best_eval, trials=trials,
                        wall_s=time.perf_counter() - t0, simulations=evaluator.runs - runs0)


def _fmt(params: Mapping) -> str:
    return " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()
                    if not k.startswith("shift_"))
