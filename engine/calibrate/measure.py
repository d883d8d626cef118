"""Run a scenario in SUMO and count what its own outputs saw at the counted locations.

Edge counts come from SUMO's ``edgeData`` (vehicles that entered the edge plus
those that departed on it, per bin). SUMO has no aggregated turning-count
output, so turning movements come from its ``vehroute-output`` with exit times:
a vehicle counts for (edge, to_edge) in the bin in which it left ``edge``
towards ``to_edge``. Bins are the greatest common divisor of all interval
bounds, so any mix of interval lengths is summed exactly.
"""

from __future__ import annotations

import dataclasses
import math
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from functools import reduce
from pathlib import Path

from engine.calibrate.counts import Count
from engine.calibrate.files import write_text_atomic
from engine.errors import ConfigError, SimulationError
from engine.procs import child_kwargs
from engine.scenario import Scenario
from engine.sim import sumo_binary

SUMO_TIMEOUT_S = 3600


def bin_seconds(counts: Sequence[Count], offset: float) -> int:
    """Greatest common divisor of all interval bounds (seconds after ``offset``)."""
    bounds = []
    for c in counts:
        for t in (c.begin - offset, c.end - offset):
            if abs(t - round(t)) > 1e-6:
                raise ConfigError(f"{c.row}: interval bounds must be whole seconds to be simulated")
            bounds.append(int(round(t)))
    return reduce(math.gcd, bounds, 0) or 1


def simulate_counts(scenario: Scenario, counts: Sequence[Count], offset: float,
                    workdir: Path | None = None) -> dict[Count, float]:
    """Simulated count of every ``count``'s location and interval (times minus ``offset``)."""
    tmp = None
    if workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="cqsignal-measure-")
        workdir = Path(tmp.name)
    try:
        return _simulate(scenario, counts, offset, Path(workdir))
    finally:
        if tmp is not None:
            tmp.cleanup()


def _simulate(scenario: Scenario, counts: Sequence[Count], offset: float, workdir: Path) -> dict[Count, float]:
    workdir.mkdir(parents=True, exist_ok=True)
    step = bin_seconds(counts, offset)
    edges = sorted({c.edge for c in counts if c.to_edge is None})
    turns = {(c.edge, c.to_edge) for c in counts if c.to_edge is not None}
    edge_out, routes_out = workdir / "edgedata.out.xml", workdir / "vehroutes.out.xml"
    add = workdir / "measure.add.xml"
    meandata = (f'    <edgeData id="cqsignal_counts" file="{edge_out}" period="{step}" begin="0" '
                f'excludeEmpty="true" edges="{" ".join(edges)}"/>\n') if edges else ""
    write_text_atomic(add, f"<additional>\n{meandata}</additional>\n")
    measured = dataclasses.replace(scenario, additional_files=scenario.additional_files + (add,))
    args = _without_emissions(measured.sumo_args(workdir))
    if turns:
        args += ["--vehroute-output", str(routes_out), "--vehroute-output.exit-times", "true",
                 "--vehroute-output.write-unfinished", "true"]
    log = workdir / "sumo-errors.log"
    try:
        proc = subprocess.run([sumo_binary("sumo"), *args, "--error-log", str(log)],
                              capture_output=True, text=True, timeout=SUMO_TIMEOUT_S,
                              **child_kwargs())  # dies with calibrate, kill -9 included
    except subprocess.TimeoutExpired:
        raise SimulationError(f"SUMO took longer than {SUMO_TIMEOUT_S} s measuring the twin") from None
    if proc.returncode != 0:
        errors = [ln.removeprefix("Error:").strip() for ln in proc.stderr.splitlines() if ln.startswith("Error:")]
        raise SimulationError(f"SUMO failed measuring the twin: {errors[-1] if errors else f'exit {proc.returncode}'}")

    bins: dict[tuple[str, int], float] = {}
    if edges:
        _read_edgedata(edge_out, step, bins)
    if turns:
        _read_vehroutes(routes_out, step, turns, bins)
    out = {}
    for c in counts:
        first, last = int(round(c.begin - offset)) // step, int(round(c.end - offset)) // step
        out[c] = float(sum(bins.get((c.location, k), 0.0) for k in range(first, last)))
    return out


def _without_emissions(args: list[str]) -> list[str]:
    """Counting needs no emission device (about a sixth of SUMO's time on the corridor)."""
    out = list(args)
    if "--device.emissions.probability" in out:
        out[out.index("--device.emissions.probability") + 1] = "0"
    return out


def _read_edgedata(path: Path, step: int, bins: dict[tuple[str, int], float]) -> None:
    for _, el in ET.iterparse(path, events=("end",)):
        if el.tag == "interval":
            k = int(round(float(el.get("begin")))) // step
            for e in el.iter("edge"):
                n = float(e.get("entered", 0)) + float(e.get("departed", 0))
                bins[(e.get("id"), k)] = bins.get((e.get("id"), k), 0.0) + n
            el.clear()


def _read_vehroutes(path: Path, step: int, turns: set[tuple[str, str]],
                    bins: dict[tuple[str, int], float]) -> None:
    for _, el in ET.iterparse(path, events=("end",)):
        if el.tag != "vehicle":
            continue
        route = el.find("route")
        if route is not None and route.get("exitTimes"):
            edges = route.get("edges", "").split()
            exits = route.get("exitTimes").split()
            for i in range(min(len(edges) - 1, len(exits))):
                pair = (edges[i], edges[i + 1])
                t = float(exits[i])
                if pair in turns and t >= 0:  # left edges[i] onto edges[i + 1] at t
                    key = (f"{pair[0]}>{pair[1]}", int(t) // step)
                    bins[key] = bins.get(key, 0.0) + 1.0
        el.clear()
