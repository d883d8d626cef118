"""Simulation-based search for a period's plan, starting from the green wave.

The search space is small on purpose, so that tens of trials suffice: the
common cycle, a bias on the arterial's coordinated phases (how Webster's
splits lean towards the corridor), a bias on turn-only phases (protected
lefts, whose short bays block a through lane when they overflow), the
progression speed the offsets are
timed for, the weight of the forward band against the backward one, and
optionally a per-signal offset shift. Every candidate is a green-wave plan
for those settings, so it obeys every constraint by construction (and is
validated before it is simulated). The start (the plain green wave) is the
first trial; the plan returned is the best trial, or the start itself unless
a trial beat it on the same seeds: the search never returns a worse plan.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import ConfigError
from engine.plan.config import Constraints, Optimiser
from engine.plan.corridor import Corridor
from engine.plan.evaluate import Evaluation, Evaluator
from engine.plan.model import PeriodPlan, SignalTiming, validate_period
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

    def start_params(self) -> dict:
        """The parameters that decode to the plain green-wave plan."""
        params = {"cycle": self.start_cycle, "bias": 1.0, "turn_bias": 1.0, "speed": 1.0,
                  "forward_weight": self.weights[0] / (self.weights[0] + self.weights[1])}
        if self.options.offset_shift_s > 0:
            params.update({f"shift_{s}": 0 for s in self.corridor.signals[1:]})
        return params

    def suggest(self, trial) -> dict:
        lo, step = self.limits.cycle_min_s, self.limits.cycle_step_s
        hi = lo + (self.limits.cycle_max_s - lo) // step * step
        params = {
            "cycle": trial.suggest_int("cycle", lo, hi, step=step),
            "bias": trial.suggest_float("bias", *self.options.bias_range),
            "turn_bias": trial.suggest_float("turn_bias", *self.options.turn_bias_range),
            "speed": trial.suggest_float("speed", *self.options.speed_factor_range),
            "forward_weight": trial.suggest_float("forward_weight", 0.2, 0.8),
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
                                    weights=(w, 1.0 - w), seed=self.options.seed)
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
    """Search ``search``'s space on ``evaluator``'s seeds; never returns a plan worse than the start."""
    import optuna

    opts = search.options
    t0 = time.perf_counter()
    runs0 = evaluator.runs
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

    start = search.decode(search.start_params())
    cache: dict[tuple, tuple[PeriodPlan, Evaluation]] = {}
    done = [0]
    per_trial = len(evaluator.seeds) * evaluator.base.duration

    def tick(sim_done: float, _total: float) -> None:
        if progress is not None:
            progress(done[0] * per_trial + sim_done, opts.trials * per_trial)

    def run(pp: PeriodPlan) -> Evaluation:
        key = _key(pp)
        if key not in cache:
            cache[key] = (pp, evaluator.run(pp, search.intersections, progress=tick))
        return cache[key][1]

    start_eval = run(start)
    trials: list[tuple[dict, float]] = []

    def objective(trial) -> float:
        params = search.suggest(trial)
        if trial.number == 0:
            value = start_eval.objective
        else:
            value = run(search.decode(params)).objective
        trials.append((dict(params), value))
        done[0] = trial.number + 1
        if log is not None:
            log(f"trial {trial.number:3d}: objective {value:7.2f}  " + _fmt(params))
        return value

    study.optimize(objective, n_trials=opts.trials, timeout=opts.timeout_s)
    best_pp, best_eval = start, start_eval
    for pp, ev in cache.values():
        if ev.objective < best_eval.objective - 1e-9:
            best_pp, best_eval = pp, ev
    method_notes = {**best_pp.notes, "start_objective": round(start_eval.objective, 3),
                    "objective": round(best_eval.objective, 3), "trials": len(trials),
                    "seeds": list(evaluator.seeds), "duration_s": evaluator.base.duration}
    plan = best_pp.with_timings(dict(best_pp.timings), method="optimise", notes=method_notes)
    return SearchResult(plan=plan, start=start, start_eval=start_eval, best_eval=best_eval, trials=trials,
                        wall_s=time.perf_counter() - t0, simulations=evaluator.runs - runs0)


def _fmt(params: Mapping) -> str:
    return " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()
                    if not k.startswith("shift_"))
