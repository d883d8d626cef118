"""Engineering KPIs from SUMO's own outputs, in one record that every report uses.

Delay per trip is SUMO's ``timeLoss + departDelay``. Trips still running or
still waiting to enter at the end are included with the delay they had so far
(``tripinfo-output.write-unfinished`` / ``write-undeparted``). Vehicles that
SUMO discarded after waiting ``max-depart-delay`` never appear in tripinfo; they
are counted from the statistics output and each is charged that wait as its
delay (a lower bound), so a controller cannot look good by keeping cars out.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from engine.errors import SimulationError


@dataclass(frozen=True)
class KPIs:
    """Network-wide KPIs of one run."""

    duration_s: float
    trips: int  # every vehicle that wanted to travel (incl. never inserted)
    arrived: int
    never_inserted: int  # discarded after max-depart-delay, or still waiting at the end
    mean_delay_s: float  # timeLoss + departDelay per trip
    mean_travel_time_s: float  # completed trips
    mean_stops: float  # halts per trip (SUMO waitingCount)
    mean_queue_veh: float  # halting vehicles per signalised intersection, time average
    max_queue_veh: float  # worst intersection, worst sample
    throughput_veh_h: float  # arrivals per hour
    co2_kg: float | None  # None where the run did not measure emissions
    teleports: int

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
    "teleports": ("teleports", "{:d}"),
}


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


def read_tripinfo(path: Path) -> dict[str, np.ndarray]:
    """Per-trip arrays: delay, travel time (NaN if unfinished), stops, CO2 (mg), arrived."""
    delay, travel, stops, co2, arrived = [], [], [], [], []
    try:
        for _, el in ET.iterparse(path):
            if el.tag == "tripinfo":
                a = el.attrib
                finished = float(a.get("arrival", "-1")) >= 0
                delay.append(float(a["timeLoss"]) + float(a["departDelay"]))
                travel.append(float(a["duration"]) if finished else math.nan)
                stops.append(float(a["waitingCount"]))
                em = el.find("emissions")
                co2.append(float(em.get("CO2_abs", 0.0)) if em is not None else 0.0)
                arrived.append(finished)
                el.clear()
    except (ET.ParseError, KeyError, FileNotFoundError) as exc:
        raise SimulationError(f"{path}: tripinfo unreadable ({exc})") from None
    return {
        "delay": np.array(delay), "travel_time": np.array(travel), "stops": np.array(stops),
        "co2_mg": np.array(co2), "arrived": np.array(arrived, dtype=bool),
    }


def read_statistics(path: Path) -> dict[str, int]:
    """Vehicle counts from SUMO's statistic-output: loaded, inserted, running, waiting, teleports."""
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, FileNotFoundError) as exc:
        raise SimulationError(f"{path}: statistics unreadable ({exc})") from None
    veh = root.find("vehicles")
    tel = root.find("teleports")
    return {
        "loaded": int(veh.get("loaded", 0)),
        "inserted": int(veh.get("inserted", 0)),
        "running": int(veh.get("running", 0)),
        "waiting": int(veh.get("waiting", 0)),
        "teleports": int(tel.get("total", 0)) if tel is not None else 0,
    }


def compute_kpis(
    tripinfo: Path,
    statistics: Path,
    duration_s: float,
    max_depart_delay: float,
    queue: QueueSampler | None = None,
    emissions: bool = True,
) -> KPIs:
    """Combine tripinfo, statistics and queue samples into :class:`KPIs`."""
    trips = read_tripinfo(tripinfo)
    stats = read_statistics(statistics)
    discarded = max(stats["loaded"] - stats["inserted"] - stats["waiting"], 0)
    n = len(trips["delay"]) + discarded
    total_delay = float(trips["delay"].sum()) + discarded * max_depart_delay
    arrived = int(trips["arrived"].sum())
    travel = trips["travel_time"][trips["arrived"]]
    return KPIs(
        duration_s=float(duration_s),
        trips=n,
        arrived=arrived,
        never_inserted=discarded + stats["waiting"],
        mean_delay_s=total_delay / n if n else 0.0,
        mean_travel_time_s=float(travel.mean()) if travel.size else 0.0,
        mean_stops=float(trips["stops"].sum()) / n if n else 0.0,
        mean_queue_veh=queue.mean if queue else 0.0,
        max_queue_veh=queue.worst if queue else 0.0,
        throughput_veh_h=arrived * 3600.0 / duration_s if duration_s > 0 else 0.0,
        co2_kg=float(trips["co2_mg"].sum()) / 1e6 if emissions else None,
        teleports=stats["teleports"],
    )


def write_json_atomic(path: Path, data: dict) -> None:
    """Write JSON so that a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
