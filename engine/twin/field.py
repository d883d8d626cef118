"""The field: the corridor with demand the twin is not told, and its incidents.

A field run stands in for the real city. Its demand is the period's own
(:mod:`engine.demand`: entry volumes, turning shares, 15-min profile) times a
multiplier over time that the scenario file gives as points, linear between
them (a surge, smooth growth, or 1 for a normal day). An incident is a vehicle
that stops on one lane for a while, so traffic must merge past it, as after a
crash. The twin sees none of this: only the loop counts the field writes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydantic import Field, field_validator, model_validator

from engine.calibrate.counts import clock, parse_time
from engine.errors import ConfigError
from engine.outputs import atomic_write_text
from engine.twin.detectors import COUNTS_PERIOD_S
from engine.yamlfile import ConfigModel

INCIDENT_ID = "incident"
DAY_S = 86400.0


def time_of_day(value: object, where: str) -> float:
    """Seconds since midnight from a clock time ``HH:MM[:SS]`` (00:00 to 24:00) or a number of seconds
    (0 to 86400); ValueError naming ``where`` for anything else (25:00, 07:75, NaN, inf, -5, true)."""
    if isinstance(value, bool):
        raise ValueError(f"{where}: a time of day (HH:MM) or seconds, got {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        try:
            seconds = parse_time(str(value), where)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
    if not math.isfinite(seconds) or not 0 <= seconds <= DAY_S:
        raise ValueError(f"{where}: {value!r} is not a time of day (00:00 to 24:00, or 0 to 86400 s)")
    return seconds


def _points(v: object, name: str) -> tuple[tuple[float, float], ...]:
    """[[time, multiplier], ...] validated: times of day in increasing order, multipliers in [0, 10]."""
    if not isinstance(v, (list, tuple)) or not v:
        raise ValueError(f"{name}: a list of [time, multiplier] points")
    points = []
    for i, p in enumerate(v):
        if not isinstance(p, (list, tuple)) or len(p) != 2:
            raise ValueError(f"{name}[{i}]: [time, multiplier], got {p!r}")
        t = time_of_day(p[0], f"{name}[{i}] time")
        m = p[1]
        if isinstance(m, bool) or not isinstance(m, (int, float)) or not math.isfinite(m) or not 0 <= m <= 10:
            raise ValueError(f"{name}[{i}]: multiplier must be a finite number in [0, 10], got {m!r}")
        points.append((t, float(m)))
    times = [t for t, _ in points]
    if times != sorted(times) or len(set(times)) != len(times):
        raise ValueError(f"{name}: points must be in increasing time order")
    return tuple(points)


class Incident(ConfigModel):
    """A vehicle stopped on ``lane`` (index, 0 = rightmost) of ``edge`` at ``pos_m`` for ``duration_s``."""

    edge: str
    lane: int = Field(ge=0)
    start: float
    duration_s: float = Field(gt=0, le=86400)
    pos_m: float = Field(default=100.0, ge=0)

    @field_validator("start", mode="before")
    @classmethod
    def _start(cls, v: object) -> float:
        return time_of_day(v, "start")


class FieldSpec(ConfigModel):
    """What the field runs: a period's demand over a window, times a multiplier, maybe an incident.

    ``demand``: points (time of day, multiplier of the period's profile); before the
    first point and after the last the multiplier is held. ``window``: "HH:MM-HH:MM".
    """

    period: str
    window: tuple[float, float]
    day: tuple[tuple[float, float], ...] = ((0.0, 1.0),)  # the normal day's multiplier (the history's)
    demand: tuple[tuple[float, float], ...] = ((0.0, 1.0),)  # this day's, on top of ``day``
    entries: dict[str, tuple[tuple[float, float], ...]] = {}  # per entry edge, on top of ``demand``
    incident: Incident | None = None

    @field_validator("window", mode="before")
    @classmethod
    def _window(cls, v: object) -> tuple[float, float]:
        if isinstance(v, str) and v.count("-") == 1:
            a, b = v.split("-")
            return time_of_day(a.strip(), "window start"), time_of_day(b.strip(), "window end")
        raise ValueError(f"window: 'HH:MM-HH:MM', got {v!r}")

    @field_validator("entries", mode="before")
    @classmethod
    def _entries(cls, v: object, info) -> dict[str, tuple[tuple[float, float], ...]]:
        if not isinstance(v, dict):
            raise ValueError("entries: a mapping of entry edge -> [[time, multiplier], ...]")
        return {str(edge): _points(points, f"entries.{edge}") for edge, points in v.items()}

    @field_validator("day", "demand", mode="before")
    @classmethod
    def _demand(cls, v: object, info) -> tuple[tuple[float, float], ...]:
        return _points(v, info.field_name)

    @model_validator(mode="after")
    def _check(self) -> FieldSpec:
        begin, end = self.window
        if end <= begin:
            raise ValueError(f"window: end {clock(end)} must be after start {clock(begin)}")
        if end - begin < COUNTS_PERIOD_S:
            raise ValueError(f"window: {clock(begin)}-{clock(end)} is shorter than one {COUNTS_PERIOD_S:g} s count "
                             "interval of the loops")
        if self.incident is not None and not begin <= self.incident.start < end:
            raise ValueError("incident.start: must fall inside the window")
        return self

    @property
    def begin(self) -> float:
        return self.window[0]

    @property
    def duration(self) -> float:
        return self.window[1] - self.window[0]

    def multiplier(self, t: np.ndarray | Sequence[float], entry: str | None = None) -> np.ndarray:
        """Demand multiplier (``day`` x ``demand`` x the entry's) at times of day ``t`` (s), shape of ``t``."""
        t = np.asarray(t, dtype=float)
        m = _interp(self.day, t) * _interp(self.demand, t)
        return m * _interp(self.entries[entry], t) if entry in self.entries else m

    @property
    def peak(self) -> float:
        """An upper bound of :meth:`multiplier` (piecewise linear: its largest point product)."""
        entry = max((max(m for _, m in pts) for pts in self.entries.values()), default=1.0)
        return max(d for _, d in self.day) * max(m for _, m in self.demand) * max(entry, 1.0)

    def normal(self, extra_s: float = 0.0) -> FieldSpec:
        """The same window and period on a normal day: ``day`` alone, no incident (the history);
        the window runs ``extra_s`` longer (one horizon, so decisions near its end look ahead
        into traffic, not an emptying network)."""
        return self.model_copy(update={"demand": ((self.begin, 1.0),), "entries": {}, "incident": None,
                                       "window": (self.window[0], self.window[1] + extra_s)})


def _interp(points: tuple[tuple[float, float], ...], t: np.ndarray) -> np.ndarray:
    return np.interp(t, [p[0] for p in points], [p[1] for p in points])


def write_field_routes(spec: FieldSpec, demand_file: Path, net_file: Path, seed: int, out: Path) -> tuple[Path, ...]:
    """Route files of a field run: the demand (``out``) and, with an incident, its stopped vehicle.

    The demand is :func:`engine.demand.write_routes` for ``spec.period`` from the
    window's start with ``spec.multiplier`` as its factor. Returns the files SUMO loads.
    """
    from engine.demand import load_demand, write_routes

    demand = load_demand(demand_file)
    peak = max(1e-9, spec.peak)
    write_routes(demand, net_file, spec.period, seed, 1.0, spec.duration, out, begin=spec.begin,
                 factor=lambda t, entry: spec.multiplier(spec.begin + t, entry), factor_max=peak)
    files = [out]
    if spec.incident is not None:
        files.append(write_incident(spec.incident, net_file, out.with_name(out.stem + ".incident.rou.xml")))
    return tuple(files)


def incident_problem(incident: Incident, net, net_name: str) -> str | None:
    """What is wrong with ``incident`` on the network ``net`` (a sumolib net), as ``field: reason``;
    None if its edge and lane exist and ``pos_m`` lies on the lane."""
    if not net.hasEdge(incident.edge):
        return f"incident.edge: no edge {incident.edge!r} in {net_name}"
    edge = net.getEdge(incident.edge)
    if incident.lane >= edge.getLaneNumber():
        n = edge.getLaneNumber()
        return f"incident.lane: {incident.lane} is not a lane of edge {incident.edge} (lanes 0..{n - 1})"
    length = edge.getLane(incident.lane).getLength()
    if incident.pos_m > length - 1.0:
        return (f"incident.pos_m: {incident.pos_m:g} m is beyond lane {incident.edge}_{incident.lane} "
                f"({length:.0f} m long; at most {max(0.0, length - 1.0):.0f} m)")
    return None


def entries_problem(spec: FieldSpec, entries: Sequence[str]) -> str | None:
    """What is wrong with ``spec.entries`` given the period's entry edges ``entries`` (None: nothing):
    a multiplier for an edge where no demand enters would be silently ignored."""
    known = set(entries)
    for edge in spec.entries:
        if edge not in known:
            return f"entries: unknown edge {edge!r} (entries are: {', '.join(sorted(known))})"
    return None


def write_incident(incident: Incident, net_file: Path, out: Path) -> Path:
    """A route file with one vehicle that enters ``incident.edge`` and stops on its lane.

    ConfigError (one line) if the edge or lane does not exist or the position is off the lane.
    """
    import sumolib

    problem = incident_problem(incident, sumolib.net.readNet(str(net_file)), net_file.name)
    if problem is not None:
        raise ConfigError(problem)
    lane = f"{incident.edge}_{incident.lane}"
    text = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<routes>\n'
        '    <vType id="incident" vClass="passenger" length="5" minGap="2.5"/>\n'
        f'    <vehicle id="{INCIDENT_ID}" type="incident" depart="{incident.start:g}" '
        f'departLane="{incident.lane}" departPos="{max(0.0, incident.pos_m - 10.0):g}" departSpeed="0">\n'
        f'        <route edges="{incident.edge}"/>\n'
        f'        <stop lane="{lane}" endPos="{incident.pos_m:g}" duration="{incident.duration_s:g}"/>\n'
        "    </vehicle>\n</routes>\n"
    )
    return atomic_write_text(out, text)
