"""One decision of the predictive twin: counts -> forecast -> what-if of every candidate -> a plan.

Every ``interval_s`` the twin

1. reads the counts so far and forecasts each count location's flow for the
   horizon (:func:`engine.twin.forecast.forecast`, against the history profile);
   what it cannot trust (a gap, a dead loop, a duplicated or out-of-time row)
   falls back to the profile, and the record says so;
2. turns the forecast's low, mean and high flows into vehicles (routeSampler);
3. builds the candidates (:mod:`engine.twin.candidates`) and simulates each over
   the horizon from the current state, in parallel processes: a mesoscopic
   screening of all, then the ``finalists`` in the microscopic model;
4. picks the lowest forecast delay (mean over the demand levels run), and keeps
   the current plan unless the best is at least ``min_gain`` better (no
   switching back and forth for small gains); with ``prefer_schedule`` the
   time-of-day plan is left only for such a gain over it (:func:`choose`).

The record of each decision (a dict, one JSONL line) holds the forecast, the
candidates with their predicted delays, the choice and why, and wall times.
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from engine.calibrate.counts import Count, clock
from engine.controllers.programs import tls_xml
from engine.demand import VTYPES
from engine.plan.model import PeriodPlan, program_of
from engine.runs import RunFailed, run_all
from engine.twin.candidates import candidate_plans, label
from engine.twin.config import TwinSettings
from engine.twin.forecast import FlowForecast, forecast_all
from engine.twin.whatif import (COUNT_STEP_S, RouteMix, WhatIf, WhatIfResult, entry_demand, horizon_counts,
                                run_whatif, sample_demand)

Plans = Mapping[str, PeriodPlan]


@dataclass
class Series:
    """Per count location, flows (veh/h) of the 5-min intervals from ``begin``; NaN where none counted."""

    begin: float
    flows: dict[str, np.ndarray]
    notes: list[str]  # what was wrong with the feed and what was done about it
    occupancy: dict[str, np.ndarray] = field(default_factory=dict)  # % per interval; NaN where not given


def feed_series(counts: Sequence[Count], locations: Sequence[str], begin: float, now: float,
                step_s: float = COUNT_STEP_S) -> Series:
    """The counted flows up to ``now`` as series; duplicated, misaligned, future or unknown rows are left
    out and noted (a late row that arrives before a decision is simply used)."""
    n = int(round((now - begin) / step_s))
    flows = {loc: np.full(n, np.nan) for loc in locations}
    occupancy = {loc: np.full(n, np.nan) for loc in locations}
    notes: list[str] = []
    seen: set[tuple[str, int]] = set()
    dropped = {"future": 0, "misaligned": 0, "duplicate": 0, "unknown": 0}
    for c in counts:
        i = (c.begin - begin) / step_s
        if c.edge not in flows or c.to_edge is not None:
            dropped["unknown"] += 1
            continue
        if abs(i - round(i)) > 1e-6 or abs(c.end - c.begin - step_s) > 1e-6:
            dropped["misaligned"] += 1
            continue
        i = int(round(i))
        if i >= n or c.end > now + 1e-6:
            dropped["future"] += 1
            continue
        if i < 0:
            dropped["misaligned"] += 1
            continue
        if (c.edge, i) in seen:
            dropped["duplicate"] += 1
            continue
        seen.add((c.edge, i))
        flows[c.edge][i] = c.value * 3600.0 / step_s
        if c.occupancy is not None:
            occupancy[c.edge][i] = c.occupancy
    for why, k in dropped.items():
        if k:
            notes.append(f"{k} {why} row(s) ignored")
    missing = sum(int(np.isnan(v[-1])) for v in flows.values() if len(v))
    if missing:
        notes.append(f"{missing} location(s) without the last interval: profile forecast there")
    return Series(begin, flows, notes, occupancy)


def uncensor(series: Series, demand: Mapping[str, np.ndarray], threshold: float) -> Series:
    """Entry counts taken under a standing queue, raised to the demand the trend says.

    A loop where trips enter the network counts what the network lets in: when the
    queue of an approach reaches back over it (occupancy at least ``threshold`` %),
    the count is a lower bound of the demand and the rest waits beyond the network's
    edge, unseen. For such an interval the entry's flow becomes at least its normal
    demand (``demand[location]``, veh/h per interval, the calibrated demand's departures)
    times the interval's trend: the median ratio of count to normal demand over the
    entries without a queue (1 if there are none). Right-censored counts, filled from
    the uncensored locations' ratio to the profile (the idea of censored-demand
    estimation, e.g. Talluri and van Ryzin, *The Theory and Practice of Revenue
    Management*, 2004, ch. 9, here with the simplest estimator).
    Returns a new Series with a note of how many intervals were raised.
    """
    flows = {k: v.copy() for k, v in series.flows.items()}
    n = len(next(iter(flows.values()))) if flows else 0
    entries = [loc for loc in demand if loc in flows]
    occupancy = {loc: series.occupancy.get(loc, np.full(n, np.nan)) for loc in entries}
    raised = 0
    for i in range(n):
        occ = {loc: occupancy[loc][i] for loc in entries}
        free = [flows[loc][i] / demand[loc][i] for loc in entries
                if not occ[loc] >= threshold and np.isfinite(flows[loc][i]) and i < len(demand[loc])
                and demand[loc][i] > 0]
        trend = float(np.median(free)) if free else 1.0
        for loc in entries:
            if occ[loc] >= threshold and np.isfinite(flows[loc][i]) and i < len(demand[loc]):
                estimate = trend * demand[loc][i]
                if estimate > flows[loc][i]:
                    flows[loc][i] = estimate
                    raised += 1
    notes = list(series.notes)
    if raised:
        notes.append(f"{raised} entry interval(s) counted under a queue over the loop (occupancy >= "
                     f"{threshold:g} %): raised to the trend of the normal demand")
    return Series(series.begin, flows, notes, series.occupancy)


class Twin:
    """The predictive twin of one field run: decides a plan every interval.

    ``profile[location]``: the history's flows (veh/h) per 5-min interval from the
    window's start, covering the window and one horizon after it.
    ``oracle_routes``: the field's true future demand instead of the forecast (the
    oracle twin of the benchmark). ``workdir`` holds each decision's files.
    ``route_mix``: each entry's routes and shares (:func:`engine.twin.whatif.route_mix`);
    the horizon's vehicles then enter where and as the entry loops' forecast says and
    follow those routes. Without it, routeSampler fits every count location.
    ``demand_profile[entry]``: the normal demand (veh/h per 5-min interval, like ``profile``)
    entering there (:func:`engine.twin.whatif.entry_profile`); entries forecast against it,
    and their counts taken under a queue are raised to its trend (:func:`uncensor`).
    """

    def __init__(self, settings: TwinSettings, net_file: Path, intersections, corridor, limits,
                 tod: Plans, profile: Mapping[str, np.ndarray], begin: float, workdir: Path,
                 oracle_routes: tuple[Path, ...] | None = None, seed: int = 0,
                 route_mix: RouteMix | None = None, demand_profile: Mapping[str, np.ndarray] | None = None) -> None:
        from engine.calibrate.sampler import enumerate_routes, read_net, write_candidates

        self.s = settings
        self.net_file = net_file
        self.intersections, self.corridor, self.limits = intersections, corridor, limits
        self.tod = dict(tod)
        self.profile = {k: np.asarray(v, dtype=float) for k, v in profile.items()}
        self.begin = begin
        self.workdir = workdir = Path(workdir).resolve()  # SUMO reads output paths relative to the add file
        self.oracle_routes = oracle_routes
        self.seed = seed
        self.route_mix = route_mix
        self.demand_profile = {k: np.asarray(v, dtype=float) for k, v in (demand_profile or {}).items()}
        workdir.mkdir(parents=True, exist_ok=True)
        self.routes = [tuple(r) for r in enumerate_routes(read_net(net_file))]
        self.candidates_file = workdir / "candidate_routes.rou.xml"
        write_candidates(self.routes, self.candidates_file)
        self.vtypes = workdir / "vtypes.rou.xml"  # a run from a saved state has the field's types already
        self.vtypes.write_text(f"<routes>\n{VTYPES}</routes>\n", encoding="utf-8")
        self.decisions = 0

    # -- forecast ---------------------------------------------------------------------------------------
    def series(self, counts: Sequence[Count], now: float) -> Series:
        """The feed up to ``now`` as series, entry counts under a queue raised (:func:`uncensor`)."""
        series = feed_series(counts, sorted(self.profile), self.begin, now)
        if self.demand_profile and self.s.censored_occupancy is not None:
            series = uncensor(series, self.demand_profile, self.s.censored_occupancy)
        return series

    def forecasts(self, series: Series, now: float) -> dict[str, FlowForecast]:
        steps = int(round(self.s.horizon_s / COUNT_STEP_S))
        profiles = {loc: self.demand_profile.get(loc, self.profile.get(loc)) for loc in series.flows}
        counted = {loc for loc in series.flows if loc not in self.demand_profile}  # the history's one counted day
        return forecast_all(series.flows, {k: v for k, v in profiles.items() if v is not None}, steps,
                            step_s=COUNT_STEP_S, method=self.s.forecast, level=self.s.level, counted=counted)

    # -- decision ----------------------------------------------------------------------------------------
    def decide(self, now: float, counts: Sequence[Count], state: Path | None, current: PeriodPlan,
               warm_plan: PeriodPlan | None = None, snapshot: Path | None = None,
               scheduled: str | None = None) -> tuple[PeriodPlan, dict]:
        """The plan for the next interval and the decision's record (see the module docstring).

        ``state``: SUMO's saved state at ``now`` (the microscopic runs start from it);
        ``snapshot``: the same traffic as vehicles (:func:`engine.twin.whatif.snapshot_routes`),
        where the mesoscopic screening starts. Without them, a run starts from the counts' warm-up.
        ``scheduled``: the name of the time-of-day plan the schedule runs now; like the running
        plan, it always reaches the final (microscopic) runs.
        """
        t0 = time.perf_counter()
        self.decisions += 1
        folder = self.workdir / f"d{self.decisions:03d}_{int(now)}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        end = now + self.s.horizon_s
        series = self.series(counts, now)
        fc = self.forecasts(series, now)
        record: dict = {"time_s": now, "clock": clock(now), "current": label(current), "feed": series.notes}
        record["forecast"] = {loc: _forecast_summary(f, self.s.horizon_s) for loc, f in sorted(fc.items())}
        fallbacks = {loc: f.fallback for loc, f in fc.items() if f.fallback}
        record["fallbacks"] = fallbacks

        # demand for the horizon at each level
        screened = set(self.s.screen_levels) if self.s.screening in ("meso", "micro") else set()
        levels = sorted(set(self.s.levels) | screened, key=("low", "mean", "high").index)
        if self.oracle_routes is not None:
            levels = ["mean"]
        demand: dict[str, Path] = {}
        for lv in levels:
            if self.oracle_routes is not None:
                demand[lv] = future_routes(self.oracle_routes, now, end, folder / "oracle.rou.xml")
            else:
                demand[lv] = self._demand(horizon_counts(fc, now, self.s.horizon_s, lv), now, end,
                                          folder / f"demand_{lv}.rou.xml", prefix=f"tw{lv[0]}")
        warm: Path | None = None
        if self.s.start == "counts" or (self.s.screening == "meso" and snapshot is None):
            past = [c for c in counts if now - self.s.warmup_s - 1e-6 <= c.begin and c.end <= now + 1e-6
                    and c.edge in self.profile and c.to_edge is None]
            past = _dedupe(past)
            warm = self._demand(past, now - self.s.warmup_s, now, folder / "warmup.rou.xml",
                                prefix="twu") if past else None
        t_demand = time.perf_counter() - t0

        from engine.controllers.demand_flows import route_file_flows

        flows = route_file_flows([demand["mean"]], self.net_file, now, end)
        plans = candidate_plans(current, self.tod if self.s.candidates.tod else {}, flows, self.intersections,
                                self.corridor, self.limits, self.s.candidates.retime, self.s.candidates.cycle_factors,
                                tag=clock(now)[:5])
        names = [label(p) for p in plans]
        programs = folder / "candidates.add.xml"
        _write_programs(programs, plans, warm_plan or current, self.intersections)

        def task(i: int, lv: str, meso: bool) -> WhatIf:
            name = f"{'meso' if meso else 'micro'}_{lv}_c{i}"
            if self.s.start == "state" and state is not None and not meso:
                return WhatIf(name, self.net_file, (demand[lv],), programs, f"c{i}", now, end, folder, state,
                              seed=self.seed)
            if self.s.start == "state" and snapshot is not None and meso:
                return WhatIf(name, self.net_file, (self.vtypes, snapshot, demand[lv]), programs, f"c{i}", now, end,
                              folder, meso=True, seed=self.seed)
            routes = (self.vtypes, *((warm,) if warm else ()), demand[lv])
            return WhatIf(name, self.net_file, routes, programs, f"c{i}", now, end, folder, None,
                          self.s.warmup_s, "warm", meso, self.seed)

        results: dict[str, dict[str, dict[str, float]]] = {n: {} for n in names}
        t1 = time.perf_counter()
        finalists = list(range(len(plans)))
        # the running plan and the scheduled one always run in the final model too: a switch is
        # judged on like terms, and the city's own plan for the hour is never screened out
        kept = {0} | {i for i, n in enumerate(names) if n == scheduled}
        if self.s.screening in ("meso", "micro") and len(plans) > self.s.finalists:
            meso = self.s.screening == "meso"
            screen_levels = [lv for lv in self.s.screen_levels if lv in demand]
            tasks = [task(i, lv, meso) for i in range(len(plans)) for lv in screen_levels]
            for tk, r in zip(tasks, self._run(tasks)):
                results[names[int(tk.program[1:])]].setdefault("screen", {})[tk.name.split("_")[1]] = r.delay_veh_h
            score = [np.mean([results[n]["screen"][lv] for lv in screen_levels]) for n in names]
            finalists = sorted(set(np.argsort(score)[: self.s.finalists].tolist()) | kept)
        t_screen = time.perf_counter() - t1
        final_levels = [lv for lv in self.s.levels if lv in demand]
        if self.s.screening == "race":
            final, race = self._race(lambda i, lv: task(i, lv, False), finalists, final_levels, demand, kept,
                                     programs, folder, now, end)
            for i, total in final.items():
                results[names[i]]["final"] = {"mean": round(total, 3)}
            for i, so_far in race.items():
                results[names[i]]["race"] = so_far
        else:
            tasks = [task(i, lv, False) for i in finalists for lv in final_levels]
            runs = self._run(tasks)
            at: dict[int, list[tuple[float, ...]]] = {}
            for tk, r in zip(tasks, runs):
                results[names[int(tk.program[1:])]].setdefault("final", {})[tk.name.split("_")[1]] = r.delay_veh_h
                at.setdefault(int(tk.program[1:]), []).append(r.delay_at)
            final = {i: float(np.mean([results[names[i]]["final"][lv] for lv in final_levels])) for i in finalists}
            record["checkpoint_vs_final_rank"] = _checkpoint_ranks(at, final, self.s.checkpoints)
        t_final = time.perf_counter() - t1 - t_screen
        reference = names.index(scheduled) if self.s.prefer_schedule and scheduled in names else None
        pick, reason = choose(final, names, reference, self.s.min_gain)
        chosen = plans[pick]
        record["candidates"] = [{"name": n, "cycle": p.cycle, **results[n],
                                 "score_veh_h": final.get(i)} for i, (n, p) in enumerate(zip(names, plans))]
        record.update(chosen=label(chosen), switched=chosen is not plans[0], reason=reason,
                      wall_s={"demand": round(t_demand, 2), "screen": round(t_screen, 2),
                              "final": round(t_final, 2), "total": round(time.perf_counter() - t0, 2)})
        if len(finalists) > 1 and all("screen" in results[names[i]] for i in finalists):
            record["screen_vs_final_rank"] = _spearman(
                [np.mean(list(results[names[i]]["screen"].values())) for i in finalists],
                [final[i] for i in finalists])
        return chosen, record

    def _demand(self, counts: Sequence[Count], begin: float, end: float, out: Path, prefix: str) -> Path:
        """Vehicles for [begin, end) from ``counts``: at the entries along the route mix, or routeSampler."""
        seed = self.seed + self.decisions
        if self.route_mix:
            return entry_demand(counts, self.route_mix, out, seed, prefix)
        return sample_demand(counts, self.routes, self.candidates_file, begin, end, out, seed, prefix)

    def _race(self, first: Callable[[int, str], WhatIf], alive: list[int], levels: Sequence[str],
              demand: Mapping[str, Path], kept: set[int], programs: Path, folder: Path, now: float,
              end: float) -> tuple[dict[int, float], dict[int, dict[str, float]]]:
        """Successive halving over the horizon: every candidate runs to the first of ``race_s``, the
        better half (and ``kept``) continue from their saved states to the next, and so on to ``end``.

        Returns the full-horizon delay (veh·h, mean over ``levels``) of the candidates that finished,
        and every candidate's delay so far at each checkpoint it reached (clock -> veh·h).
        Racing rests on the rank at a checkpoint agreeing with the rank over the horizon, which
        the twin measures on every decision it runs without racing (``checkpoint_vs_final_rank``).
        """
        so_far = {i: dict.fromkeys(levels, 0.0) for i in alive}
        log: dict[int, dict[str, float]] = {i: {} for i in alive}
        states: dict[tuple[int, str], Path] = {}
        rest: dict[str, Path] = {}
        t = now
        for stop in [now + c for c in self.s.checkpoints] + [end]:
            last = stop >= end - 1e-9
            tasks = []
            for i in alive:
                for lv in levels:
                    save = None if last else folder / f"race_c{i}_{lv}_{int(stop)}.xml.gz"
                    if t == now:
                        tasks.append(replace(first(i, lv), name=f"race{int(stop)}_{lv}_c{i}", end=stop,
                                             save_state=save))
                    else:
                        tasks.append(WhatIf(f"race{int(stop)}_{lv}_c{i}", self.net_file, (rest[lv],), programs,
                                            f"c{i}", t, stop, folder, states[(i, lv)], seed=self.seed,
                                            save_state=save))
            for tk, r in zip(tasks, self._run(tasks)):
                i, lv = int(tk.program[1:]), tk.name.split("_")[1]
                so_far[i][lv] += r.delay_veh_h
                if tk.save_state is not None:
                    states[(i, lv)] = tk.save_state
            for i in alive:
                log[i][clock(stop)[:5]] = round(float(np.mean(list(so_far[i].values()))), 3)
            if last:
                break
            rest = {lv: future_routes([demand[lv]], stop, end, folder / f"demand_{lv}_from{int(stop)}.rou.xml")
                    for lv in levels}
            score = {i: float(np.mean(list(so_far[i].values()))) for i in alive}
            better = sorted(alive, key=score.get)[: math.ceil(len(alive) / 2)]
            alive = sorted(set(better) | (kept & set(alive)))
            t = stop
        return {i: float(np.mean(list(so_far[i].values()))) for i in alive}, log

    def _run(self, tasks: Sequence[WhatIf]) -> list[WhatIfResult]:
        from engine.errors import SimulationError

        outcomes = run_all(run_whatif, tasks, workers=self.s.workers, preload=("engine.twin.whatif",),
                           name=lambda t: t.name, log_dir=self.workdir / "logs")
        for tk, r in zip(tasks, outcomes):
            if isinstance(r, RunFailed):
                raise SimulationError(f"what-if {tk.name} at {clock(tk.begin)} failed: {r.error}")
            assert isinstance(r, WhatIfResult)
        return [replace(r, delay_veh_h=round(r.delay_veh_h, 3)) for r in outcomes]


def choose(final: Mapping[int, float], names: Sequence[str], reference: int | None,
           min_gain: float) -> tuple[int, str]:
    """The candidate to run and why, from forecast delays ``final`` (candidate index -> veh·h;
    index 0 is the running plan).

    Switching needs the best to be at least ``min_gain`` (a share) better than the running
    plan, so plans do not flip for small gains. With a ``reference`` (the scheduled
    time-of-day plan), the twin departs from it only for a gain of ``min_gain`` over it,
    and returns to it when no plan is that much better: a predicted gain within the
    what-ifs' own noise (2-3 % between repeated runs here) is no reason to leave the plan
    the city engineered for the hour.
    """
    best = min(final, key=final.get)

    def gain(over: int) -> float:
        return (final[over] - final[best]) / final[over] if final[over] > 0 else math.inf

    if reference is not None and reference in final and gain(reference) < min_gain:
        if reference == 0:
            return 0, (f"kept the scheduled plan: {names[best]} is only {100 * gain(0):.1f} % better "
                       f"(departing needs {100 * min_gain:.0f} %)" if best != 0 else "the scheduled plan is the best")
        if best == reference:
            return reference, f"back to the scheduled plan {names[reference]}: it is the best"
        return reference, (f"back to the scheduled plan {names[reference]}: no plan is {100 * min_gain:.0f} % better "
                           f"(best {names[best]}, {100 * gain(reference):.1f} %)")
    if best == 0:
        return 0, "the current plan is the best"
    if gain(0) >= min_gain:
        return best, f"{names[best]}: {100 * gain(0):.1f} % less forecast delay than the current plan"
    return 0, f"kept: {names[best]} is only {100 * gain(0):.1f} % better (switching needs {100 * min_gain:.0f} %)"


def _dedupe(counts: Sequence[Count]) -> list[Count]:
    seen, out = set(), []
    for c in counts:
        if (c.edge, c.begin) not in seen:
            seen.add((c.edge, c.begin))
            out.append(c)
    return out


def _forecast_summary(f: FlowForecast, horizon_s: float) -> dict:
    m15, lo15, hi15 = f.over(min(900.0, horizon_s))
    mh, loh, hih = f.over(horizon_s)
    return {"method": f.method, "fallback": f.fallback, "bias_t": f.bias_t,
            "mean_15": round(m15, 1), "low_15": round(lo15, 1), "high_15": round(hi15, 1),
            "mean_h": round(mh, 1), "low_h": round(loh, 1), "high_h": round(hih, 1),
            "mean": [round(float(x), 1) for x in f.mean], "low": [round(float(x), 1) for x in f.low],
            "high": [round(float(x), 1) for x in f.high]}


def _write_programs(path: Path, plans: Sequence[PeriodPlan], warm: PeriodPlan, intersections) -> None:
    """One additional file: candidate i as program ``c<i>``, the warm-up plan as ``warm``."""
    from engine.outputs import atomic_write_text

    parts = []
    for pid, pp in [(f"c{i}", p) for i, p in enumerate(plans)] + [("warm", warm)]:
        progs = {s: program_of(intersections[s], t) for s, t in pp.timings.items()}
        text = tls_xml(progs, pid, {s: t.offset for s, t in pp.timings.items()})
        parts.append(text.split("<additional>\n", 1)[1].rsplit("</additional>", 1)[0])
    atomic_write_text(path, '<?xml version="1.0" encoding="UTF-8"?>\n<additional>\n' + "".join(parts)
                      + "</additional>\n")


def future_routes(files: Sequence[Path], begin: float, end: float, out: Path) -> Path:
    """The field's own vehicles departing in (begin, end), with their routes and types (the oracle's demand)."""
    import xml.etree.ElementTree as ET

    root_out = ET.Element("routes")
    for f in files:
        root = ET.parse(f).getroot()
        for el in root:
            if el.tag == "route":  # vehicle types come from the state or the twin's own types file
                root_out.append(el)
            elif el.tag == "vehicle" and begin < float(el.get("depart", "0")) < end:
                root_out.append(el)
    vehicles = [el for el in root_out if el.tag == "vehicle"]
    for el in vehicles:
        root_out.remove(el)
    for el in sorted(vehicles, key=lambda e: float(e.get("depart"))):
        root_out.append(el)
    out.write_text(ET.tostring(root_out, encoding="unicode"), encoding="utf-8")
    return out


def _checkpoint_ranks(at: Mapping[int, Sequence[tuple[float, ...]]], final: Mapping[int, float],
                      checkpoints: Sequence[float]) -> dict[str, float]:
    """Rank correlation (Spearman) between the candidates' delay so far at each checkpoint (s after
    the decision) and over the whole horizon: how far a race could be trusted at that point."""
    out = {}
    ids = sorted(final)
    for c in checkpoints:
        k = int(round(c / COUNT_STEP_S)) - 1
        if len(ids) < 3 or any(k >= len(d) for i in ids for d in at[i]):
            continue
        out[f"{c:g}"] = _spearman([float(np.mean([d[k] for d in at[i]])) for i in ids], [final[i] for i in ids])
    return out


def _spearman(a: Sequence[float], b: Sequence[float]) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    if np.std(ra) == 0 or np.std(rb) == 0:
        return math.nan
    return round(float(np.corrcoef(ra, rb)[0, 1]), 3)
