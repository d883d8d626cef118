"""Counts in, calibrated scenario folder out: read, sample routes, simulate, compare, report.

The output folder is a scenario like any other (``network.yaml`` with ``net``,
``routes``, ``duration``), so ``--network OUTDIR`` works for every command.
Simulation time 0 of the twin is the start of the counts' window.
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from engine.calibrate.counts import (Count, CountSet, check_capacity, check_network, clock, parse_time,
                                     read_counts)
from engine.calibrate.files import write_text_atomic
from engine.calibrate.geh import Comparison, Summary, compare
from engine.calibrate.measure import bin_seconds, simulate_counts
from engine.calibrate.reconcile import reconcile
from engine.calibrate.report import ReportInfo, write_report
from engine.calibrate.sampler import (enumerate_routes, read_candidates, read_net, run_route_sampler,
                                      unroutable, write_candidates, write_count_data)
from engine.errors import ConfigError, NetworkError, listed
from engine.scenario import MAX_DURATION_S, Scenario

ROUTES_FILE = "routes.rou.xml"
VTYPES_FILE = "vtypes.rou.xml"
WORK_DIR = "sampler"  # routeSampler's inputs and log, kept for inspection


@dataclass(frozen=True)
class Calibration:
    """What ``calibrate`` produced."""

    out: Path
    rows: list[Comparison]
    summary: Summary
    unroutable: list[Count]
    vehicles: int
    wall_s: float


def calibrate(counts_file: str | Path, network: str | Path = "chongqing", out: str | Path = "calibrated",
              begin: float | None = None, end: float | None = None, seed: int = 1,
              bus_share: float = 0.0, warmup: float = 900.0, candidates: str | Path | None = None,
              edge_attribute: str = "entered", turn_attribute: str = "count",
              log: Callable[[str], None] = lambda msg: None) -> Calibration:
    """Build a scenario folder whose demand reproduces ``counts_file`` and report how well.

    ``begin``/``end`` (seconds in the counts' clock) keep only the counts inside
    that window; ``bus_share`` makes that share of the sampled vehicles buses;
    ``warmup`` seconds of demand like the first interval's load the network before
    the first count (the twin's time ``warmup`` is the start of the counts).
    """
    t0 = time.perf_counter()
    base = Scenario.of_network(network)
    checked = check_counts(counts_file, base.net_file, begin, end, warmup, bus_share, edge_attribute,
                           turn_attribute)
    counts, start, window = checked.counts, checked.start, checked.window
    offset, duration = checked.offset, checked.duration  # twin time = counts' time - offset
    net = read_net(base.net_file)

    out = Path(out)
    work = out / WORK_DIR
    work.mkdir(parents=True, exist_ok=True)
    if candidates is not None:
        routes = read_candidates(Path(candidates), net)
    else:
        routes = enumerate_routes(net)
    log(f"{len(counts.counts)} counts at {len(counts.locations)} locations, "
        f"{clock(start)}-{clock(start + window)}; {len(routes)} candidate routes")
    if not routes:
        raise NetworkError(f"{base.net_file.name}: no route leads from an entry (an edge nothing drives into: "
                           f"{listed(net.sources, 8)}) to an exit ({listed(net.sinks, 8)}), "
                           "so no vehicle can be placed")
    lost = unroutable(counts.counts, routes)
    if lost:
        locs = sorted({c.location for c in lost})
        log(f"warning: {len(lost)} count(s) at {len(locs)} location(s) no route can pass: "
            f"{', '.join(locs[:5])}{' ...' if len(locs) > 5 else ''} (kept in the report)")

    # the scenario folder: network (+ its additional files), vehicle types, sampled routes
    net_copy = _copy_into(base.net_file, out)
    additional = [_copy_into(a, out) for a in base.additional_files]
    write_text_atomic(out / VTYPES_FILE, _vtypes(bus_share))
    cand_file = work / "candidates.rou.xml"
    edge_file, turn_file = work / "counts.edgedata.xml", work / "counts.turns.xml"
    write_candidates(routes, cand_file)
    targets = reconcile(counts.counts, routes)
    if targets is None:
        log("intervals of different locations overlap: counts go to routeSampler as they are")
    has_edges, has_turns = write_count_data(counts.counts, offset, edge_file, turn_file, targets, warmup)
    vehicle_type = "mix" if 0 < bus_share < 1 else ("bus" if bus_share == 1 else "car")
    sampled = work / "routes.sampled.xml"
    log("sampling routes with routeSampler.py ...")
    run_route_sampler(cand_file, edge_file if has_edges else None, turn_file if has_turns else None,
                      0.0, duration, sampled, seed,
                      f'type="{vehicle_type}" departLane="best" departSpeed="max"', work / "routeSampler.log")
    shutil.move(sampled, out / ROUTES_FILE)
    vehicles = (out / ROUTES_FILE).read_text(encoding="utf-8").count("<vehicle ")
    meta = {
        "net": net_copy,
        "routes": [VTYPES_FILE, ROUTES_FILE],
        "duration": float(duration),
        "signals": list(net.signals),
        "description": (f"Demand calibrated to {Path(counts_file).name} with routeSampler.py "
                        f"(seed {seed}); simulation time {warmup:g} s is {clock(start)} of the "
                        f"counts, the {warmup:g} s before warm the network up with the first "
                        "interval's demand."),
    }
    if additional:
        meta["additional"] = additional
    _write_yaml(out / "network.yaml", meta)

    log(f"simulating the twin ({duration:g} s, {vehicles} vehicles) ...")
    twin = Scenario.load(out, seed=seed)
    simulated = simulate_counts(twin, counts.counts, offset)
    rows = compare(counts.counts, simulated, lost)
    wall = time.perf_counter() - t0
    info = ReportInfo(network=str(network), counts_file=Path(counts_file), seed=seed, vehicles=vehicles,
                      candidates=len(routes), wall_s=wall, warmup_s=warmup,
                      reconciled=targets is not None)
    summary = write_report(out, rows, info)
    meta["calibration"] = {"counts": str(Path(counts_file)), "begin": clock(start),
                           "end": clock(start + window), "warmup_s": float(warmup),
                           "geh_ok_share": round(summary.share, 4),
                           "r2": round(summary.r2, 4), "verdict": summary.verdict()}
    _write_yaml(out / "network.yaml", meta)
    return Calibration(out=out, rows=rows, summary=summary, unroutable=lost, vehicles=vehicles, wall_s=wall)


@dataclass(frozen=True)
class CheckedCounts:
    """Counts that passed every check against a network, and the clock of the twin made from them."""

    counts: CountSet
    start: float  # s since midnight (the counts' clock): the twin's time ``warmup`` is this
    window: float  # s of counts from ``start``
    warmup: float  # s of first-interval demand before ``start``

    @property
    def offset(self) -> float:
        """Counts' time of the twin's time 0 (s): twin time = counts' time - offset."""
        return self.start - self.warmup

    @property
    def duration(self) -> float:
        """Seconds the twin runs: the warm-up plus the counted window."""
        return self.window + self.warmup


def check_counts(counts_file: str | Path, net_file: Path, begin: float | None = None, end: float | None = None,
                 warmup: float = 900.0, bus_share: float = 0.0, edge_attribute: str = "entered",
                 turn_attribute: str = "count") -> CheckedCounts:
    """Every check ``calibrate`` makes before any work: the file, its window (``begin``/``end``, s in
    the counts' clock), its edges in ``net_file``, lane capacity, whole-second bounds, warm-up
    (s) and bus share; a one-line :class:`ConfigError` naming the file and row otherwise."""
    if not 0.0 <= bus_share <= 1.0:
        raise ConfigError(f"--bus-share must be in [0, 1], got {bus_share:g}")
    if warmup < 0:
        raise ConfigError(f"--warmup must be >= 0 seconds, got {warmup:g}")
    if not math.isfinite(warmup):
        raise ConfigError(f"--warmup must be a finite number of seconds, got {warmup}")
    every = read_counts(counts_file, edge_attribute, turn_attribute)
    counts = every.window(begin, end)  # refuses a window no count lies inside
    if begin is not None or end is not None:  # where no count lies the twin would have no demand
        lo, hi = every.begin if begin is None else begin, every.end if end is None else end
        gap = uncovered(every, lo, hi)
        if gap is not None:
            raise ConfigError(f"{counts_file}: --begin/--end {clock(lo)}-{clock(hi)} is not covered by the counts "
                              f"({clock(every.begin)}-{clock(every.end)}): no count lies inside "
                              f"{clock(gap[0])}-{clock(gap[1])}{straddle(every, gap)}, where the twin would "
                              "have no demand")
    check_network(counts, set(read_net(net_file).edges))
    check_capacity(counts.counts, count_lanes(net_file, counts.counts))
    start = counts.begin if begin is None else begin
    window = (counts.end if end is None else end) - start
    checked = CheckedCounts(counts, start, window, warmup)
    if checked.duration > MAX_DURATION_S:
        raise ConfigError(f"the twin would run {checked.duration:g} s (counts' window + warmup), longer than "
                          f"the limit of {MAX_DURATION_S:g} s (7 days)")
    bin_seconds(counts.counts, checked.offset)  # whole-second bounds, before any long work
    return checked


def uncovered(counts: CountSet, begin: float, end: float) -> tuple[float, float] | None:
    """The first stretch of ``[begin, end]`` (s, the counts' clock) that none of the counts a window
    keeps (those whose interval lies inside it) covers: before the first, after the last, or a gap
    between them; None when they cover it all."""
    at = begin
    for lo, hi in sorted((c.begin, c.end) for c in counts.counts if c.begin >= begin and c.end <= end):
        if lo > at + 1e-9:
            return at, lo
        at = max(at, hi)
    return (at, end) if at < end - 1e-9 else None


def straddle(counts: CountSet, gap: tuple[float, float]) -> str:
    """What to add to a message about ``gap`` (from :func:`uncovered`) when counts there run past the
    window's bounds (a count is used only if its whole interval lies inside the window); else nothing."""
    across = [c for c in counts.counts if c.begin < gap[1] - 1e-9 and c.end > gap[0] + 1e-9]
    if not across:
        return ""
    c = min(across, key=lambda c: c.begin)
    return (f" (the count interval {clock(c.begin)}-{clock(c.end)} runs past the window's bounds: a count is "
            "used only if its whole interval lies inside)")


def twin_clock(meta: dict) -> tuple[float, float, float] | None:
    """(start, end, warm-up) in seconds of a twin's counted window, from its ``network.yaml``
    (the ``calibration`` entry ``calibrate`` writes); None when it has none. The twin's time
    ``warm-up`` is the counts' ``start``."""
    cal = meta.get("calibration")
    if not isinstance(cal, dict) or not {"begin", "end", "warmup_s"} <= set(cal):
        return None
    where = "network.yaml: calibration"
    warmup = parse_time(str(cal["warmup_s"]), f"{where}.warmup_s")
    return parse_time(str(cal["begin"]), f"{where}.begin"), parse_time(str(cal["end"]), f"{where}.end"), warmup


def count_lanes(net_file: Path, counts: list[Count] | tuple[Count, ...]) -> dict[str, int]:
    """Lanes a count's vehicles can use, by location: an edge's car lanes, a turn's from-lanes."""
    from engine.demand import VCLASS
    from engine.network import load_network

    net = load_network(net_file).net
    lanes: dict[str, int] = {}
    for c in counts:
        if c.location in lanes or not net.hasEdge(c.edge):
            continue
        edge = net.getEdge(c.edge)
        if c.to_edge is None:
            lanes[c.location] = sum(1 for lane in edge.getLanes() if lane.allows(VCLASS))
        elif net.hasEdge(c.to_edge):
            links = edge.getOutgoing().get(net.getEdge(c.to_edge), [])
            lanes[c.location] = len({con.getFromLane().getIndex() for con in links})
    return lanes


def _copy_into(src: Path, folder: Path) -> str:
    """Copy ``src`` into ``folder`` (unless it is already there); its name there."""
    dst = folder / src.name
    if not (dst.exists() and dst.resolve() == src.resolve()):
        shutil.copyfile(src, dst)
    return src.name


def _vtypes(bus_share: float) -> str:
    from engine.demand import VTYPES

    dist = ""
    if 0 < bus_share < 1:
        dist = (f'    <vTypeDistribution id="mix" vTypes="car bus" '
                f'probabilities="{1 - bus_share:g} {bus_share:g}"/>\n')
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<routes>\n{VTYPES}{dist}</routes>\n'


def _write_yaml(path: Path, meta: dict) -> None:
    head = "# A calibrated twin written by `cqsignal calibrate`: use it with --network <this folder>.\n"
    write_text_atomic(path, head + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True))
