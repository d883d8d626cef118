"""Engineering KPIs from SUMO's own outputs, in one record that every report uses.

The delay of a run is the standard one of the RL signal-control literature: the
mean of SUMO's ``timeLoss + departDelay`` over every vehicle due to depart in the
window ``[begin, end)``, each counted once:

* a vehicle that entered counts with its ``timeLoss + departDelay`` (a trip still
  running at the end with what it had lost so far: ``tripinfo-output.write-unfinished``);
* a vehicle still waiting to enter at the end (the *entry backlog*) is charged its
  wait so far, ``end - depart time`` (SUMO writes it with ``depart="-1"`` and that
  ``departDelay``: ``tripinfo-output.write-undeparted``);
* a vehicle SUMO dropped after ``max-depart-delay`` (only when that option is set)
  is charged that wait; SUMO writes no tripinfo for it, so drops are counted from
  its summary output (``discarded``);
* vehicles SUMO read ahead from the route files but not due before ``end`` are
  not counted, nor are vehicles due before ``begin`` (SUMO never loads them).

Which of SUMO's options were in effect (``max_depart_delay_s``,
``time_to_teleport_s``, None meaning "never") is part of the record.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections import deque
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from engine.errors import SimulationError

_EPS = 1e-6  # SUMO writes times with two decimals


@dataclass(frozen=True)
class KPIs:
    """Network-wide KPIs of one run."""

    duration_s: float
    trips: int  # every vehicle due to depart in [begin, end), once (incl. never inserted)
    arrived: int
    never_inserted: int  # backlog + dropped
    backlog: int  # still waiting to enter at the end (charged their wait so far)
    dropped: int  # removed by SUMO after waiting max-depart-delay (charged that wait)
    mean_delay_s: float  # timeLoss + departDelay per trip (see the module docstring)
    mean_travel_time_s: float  # completed trips
    mean_stops: float  # halts per trip (SUMO waitingCount)
    mean_queue_veh: float | None  # halting vehicles per controlled signal, time average (None: none)
    max_queue_veh: float | None  # worst intersection, worst sample
    throughput_veh_h: float  # arrivals per hour
    co2_kg: float | None  # None where the run did not measure emissions
    teleports: int
    begin_s: float = 0.0  # the window's start (simulation clock)
    max_depart_delay_s: float | None = None  # None: vehicles wait to enter for ever (SUMO's default)
    time_to_teleport_s: float | None = 300.0  # None: never teleported
    persons: int = 0  # pedestrians due to depart in the window (SUMO personinfo)
    mean_ped_delay_s: float | None = None  # their timeLoss per person; None without pedestrians
    mean_ped_wait_s: float | None = None  # their waitingTime per person (e.g. at a red crossing)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


# Units for tables: (column title, format).
KPI_LABELS = {
    "mean_delay_s": ("delay [s/veh]", "{:.1f}"),
    "mean_travel_time_s": ("travel time [s]", "{:.1f}"),
    "mean_stops": ("stops [/veh]", "{:.2f}"),
    "mean_queue_veh": ("queue [veh]", "{:.1f}"),
    "max_queue_veh": ("max queue [veh]", "{:.0f}"),
    "throughput_veh_h": ("throughput [veh/h]", "{:.0f}"),
    "co2_kg": ("CO2 [kg]", "{:.1f}"),
    "never_inserted": ("never inserted", "{:d}"),
    "backlog": ("entry backlog [veh]", "{:.0f}"),
    "dropped": ("dropped [veh]", "{:.0f}"),
    "teleports": ("teleports", "{:d}"),
}
# Shown where a run had pedestrians.
PEDESTRIAN_LABELS = {
    "persons": ("pedestrians", "{:d}"),
    "mean_ped_delay_s": ("pedestrian delay [s/person]", "{:.1f}"),
    "mean_ped_wait_s": ("pedestrian waiting [s/person]", "{:.1f}"),
}


def sumo_options_note(kpis: dict) -> str:
    """One line stating the window start and SUMO's options in effect for a KPI record."""
    def value(key: str) -> float | None:  # None, or NaN from a table, is "never"
        v = kpis.get(key)
        return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)

    mdd, ttt = value("max_depart_delay_s"), value("time_to_teleport_s")
    drop = "never (vehicles wait to enter)" if mdd is None else f"{mdd:g} s (then dropped)"
    tele = "never" if ttt is None else f"{ttt:g} s"
    begin = value("begin_s") or 0.0
    start = f"window from {begin:g} s; " if begin else ""
    return f"{start}max-depart-delay: {drop}; time-to-teleport: {tele}"


@dataclass
class QueueSampler:
    """Halting vehicles per intersection, sampled during the run."""

    n_intersections: int
    total: float = 0.0
    samples: int = 0
    worst: float = 0.0

    def add(self, per_intersection: np.ndarray) -> None:
        self.total += float(per_intersection.sum())
        self.samples += 1
        if per_intersection.size:
            self.worst = max(self.worst, float(per_intersection.max()))

    @property
    def mean(self) -> float:
        if not self.samples or not self.n_intersections:
            return 0.0
        return self.total / (self.samples * self.n_intersections)


@dataclass(frozen=True)
class Trips:
    """Per-vehicle arrays of the vehicles due in the window, each once."""

    delay: np.ndarray  # s: timeLoss + departDelay, or the wait so far for the backlog
    travel_time: np.ndarray  # s, NaN unless arrived
    stops: np.ndarray
    co2_mg: np.ndarray
    arrived: np.ndarray  # bool
    waiting: np.ndarray  # bool: never entered (the entry backlog)


_TRIP_ATTRS = {
    "tripinfo": ["id", "depart", "departDelay", "arrival", "duration", "waitingCount", "timeLoss"],
    "emissions": ["CO2_abs"],
}


def read_tripinfo(path: Path, begin: float, end: float, closed_at: float | None = None) -> Trips:
    """The vehicles of a tripinfo file due to depart in ``[begin, end)``, each once.

    ``closed_at`` is the simulation time when SUMO wrote the file (the time a
    vehicle that never entered had waited until; default ``end``).
    """
    import sumolib

    closed_at = end if closed_at is None else closed_at
    seen: set[str] = set()
    delay, travel, stops, co2, arrived, waiting = [], [], [], [], [], []
    try:
        for t in sumolib.xml.parse(str(path), "tripinfo", element_attrs=_TRIP_ATTRS,
                                   heterogeneous=False):
            if t.id in seen:
                continue
            seen.add(t.id)
            depart, depart_delay = float(t.depart), float(t.departDelay)
            entered = depart >= 0
            wanted = (depart if entered else closed_at) - depart_delay
            if not (begin - _EPS <= wanted < end - _EPS):
                continue  # read ahead, not due in the window
            done = entered and float(t.arrival) >= 0
            delay.append(float(t.timeLoss) + depart_delay if entered else end - wanted)
            travel.append(float(t.duration) if done else math.nan)
            stops.append(float(t.waitingCount))
            em = t.emissions[0] if t.hasChild("emissions") else None
            co2.append(float(em.CO2_abs) if em is not None and em.CO2_abs is not None else 0.0)
            arrived.append(done)
            waiting.append(not entered)
    except (ET.ParseError, FileNotFoundError, TypeError, ValueError) as exc:
        raise SimulationError(f"{path}: tripinfo unreadable ({exc})") from None
    return Trips(np.array(delay, dtype=float), np.array(travel, dtype=float),
                 np.array(stops, dtype=float), np.array(co2, dtype=float),
                 np.array(arrived, dtype=bool), np.array(waiting, dtype=bool))


def read_persons(path: Path, begin: float, end: float) -> tuple[int, float | None, float | None]:
    """Pedestrians of a tripinfo file due in ``[begin, end)``: (persons, mean timeLoss s, mean waitingTime s).

    SUMO writes one ``personinfo`` per person (with ``write-unfinished``, also for
    those still walking at the end, whose timeLoss SUMO leaves at 0: they are
    charged their waiting time so far); the means are None where there are none.
    """
    import sumolib

    seen: set[str] = set()
    loss, wait = [], []
    try:
        for p in sumolib.xml.parse(str(path), "personinfo", heterogeneous=True):
            if p.id in seen or not (begin - _EPS <= float(p.depart) < end - _EPS):
                continue
            seen.add(p.id)
            waited = float(p.waitingTime or 0.0)
            finished = float(p.duration) >= 0
            loss.append(float(p.timeLoss or 0.0) if finished else waited)  # still walking: its wait so far
            wait.append(waited)
    except (ET.ParseError, FileNotFoundError, TypeError, ValueError) as exc:
        raise SimulationError(f"{path}: tripinfo unreadable ({exc})") from None
    if not loss:
        return 0, None, None
    return len(loss), float(np.mean(loss)), float(np.mean(wait))


def read_statistics(path: Path) -> dict[str, float]:
    """SUMO's statistic-output: vehicles loaded, inserted, running, waiting; teleports; ``end``
    (the simulation time when it was written)."""
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, FileNotFoundError) as exc:
        raise SimulationError(f"{path}: statistics unreadable ({exc})") from None
    veh = root.find("vehicles")
    tel = root.find("teleports")
    perf = root.find("performance")
    return {
        "loaded": int(veh.get("loaded", 0)),
        "inserted": int(veh.get("inserted", 0)),
        "running": int(veh.get("running", 0)),
        "waiting": int(veh.get("waiting", 0)),
        "teleports": int(tel.get("total", 0)) if tel is not None else 0,
        "end": float(perf.get("end")) if perf is not None and perf.get("end") else math.nan,
    }


def read_dropped(summary: Path) -> tuple[int, float]:
    """Vehicles SUMO dropped after ``max-depart-delay`` (``discarded`` of the summary's last
    step) and the time of that step."""
    import sumolib

    try:
        steps = deque(sumolib.xml.parse(str(summary), "step"), maxlen=1)  # only the last is needed
    except (ET.ParseError, FileNotFoundError) as exc:
        raise SimulationError(f"{summary}: summary unreadable ({exc})") from None
    if not steps:
        return 0, -math.inf
    last = steps[0]
    if last.hasAttribute("discarded"):
        return int(float(last.discarded)), float(last.time)
    return max(int(float(last.ended)) - int(float(last.arrived)), 0), float(last.time)  # SUMO < 1.20


def compute_kpis(tripinfo: Path, statistics: Path, scenario, queue: QueueSampler | None = None) -> KPIs:
    """Combine tripinfo, statistics, summary and queue samples of a run of ``scenario`` into KPIs.

    ``scenario`` gives the window (``begin``, ``end``, ``duration``), the options in
    effect (``max_depart_delay``, ``time_to_teleport``) and ``emissions``.
    """
    from engine.scenario import summary_path, sumo_never

    stats = read_statistics(statistics)
    begin, end, duration = float(scenario.begin), float(scenario.end), float(scenario.duration)
    closed_at = stats["end"] if math.isfinite(stats["end"]) else end
    trips = read_tripinfo(tripinfo, begin, end, closed_at)
    max_depart_delay = sumo_never(scenario.max_depart_delay, teleport=False)
    summary = summary_path(statistics)
    if summary.is_file():
        dropped, at = read_dropped(summary)
        if max_depart_delay is not None and at < closed_at - 1.0 - _EPS:
            raise SimulationError(f"{summary}: ends at t={at:g} s, before the run's last step "
                                  f"(t={closed_at - 1:g} s): dropped vehicles unknown")
    elif max_depart_delay is None:
        dropped = 0  # nothing can be dropped
    else:
        raise SimulationError(f"{summary}: missing (needed to count dropped vehicles)")
    n = len(trips.delay) + dropped
    total_delay = float(trips.delay.sum()) + dropped * (max_depart_delay or 0.0)
    arrived = int(trips.arrived.sum())
    backlog = int(trips.waiting.sum())
    travel = trips.travel_time[trips.arrived]
    persons, ped_delay, ped_wait = read_persons(tripinfo, begin, end)
    return KPIs(
        duration_s=duration,
        trips=n,
        arrived=arrived,
        never_inserted=backlog + dropped,
        backlog=backlog,
        dropped=dropped,
        mean_delay_s=total_delay / n if n else 0.0,
        mean_travel_time_s=float(travel.mean()) if travel.size else 0.0,
        mean_stops=float(trips.stops.sum()) / n if n else 0.0,
        mean_queue_veh=queue.mean if queue and queue.n_intersections else None,
        max_queue_veh=queue.worst if queue and queue.n_intersections else None,
        throughput_veh_h=arrived * 3600.0 / duration if duration > 0 else 0.0,
        co2_kg=float(trips.co2_mg.sum()) / 1e6 if scenario.emissions else None,
        teleports=int(stats["teleports"]),
        begin_s=begin,
        max_depart_delay_s=max_depart_delay,
        time_to_teleport_s=sumo_never(scenario.time_to_teleport, teleport=True),
        persons=persons,
        mean_ped_delay_s=ped_delay,
        mean_ped_wait_s=ped_wait,
    )


def write_json_atomic(path: Path, data: dict) -> None:
    """Write JSON so that a reader never sees half a file (:func:`engine.outputs.atomic_write_json`)."""
    from engine.outputs import atomic_write_json

    atomic_write_json(path, data)
