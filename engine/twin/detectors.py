"""Loop detectors of the field and the counts feed they write: the only interface field -> twin.

A city counts traffic with induction loops. :func:`place_loops` puts a SUMO E1
detector (``inductionLoop``) on every approach lane and every exit lane of the
controlled signals, and on every lane where traffic enters the network, as a
city's detection plan would; SUMO aggregates each loop
every ``period_s`` (5 min). :func:`loop_counts` turns SUMO's E1 output into
edge counts with occupancy, and :func:`append_counts` writes them in the CSV
format ``cqsignal calibrate`` reads (``interval_start, interval_end, edge,
count, occupancy``). A city replaces the field by its own detector system by
appending the same rows to a file; :class:`CountsFeed` reads such a file as it
grows, whole lines only.

Loop positions: approach loops ``APPROACH_SETBACK_M`` (40 m) upstream of the stop
line (an advance loop: its occupancy rises when the queue reaches it); exit loops
``EXIT_SETBACK_M`` (20 m) downstream of the junction; entry loops ``EXIT_SETBACK_M``
from the start of each lane of an edge where trips enter (a source edge). On lanes
shorter than twice that, the loop sits mid-lane. An edge's count is that of its
entry loops where it has them (arrivals: a loop near the stop line of an
oversaturated approach counts only what the green serves, and the twin needs the
demand), else of its approach loops, else of its exit loops (:func:`loop_groups`).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os
import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from engine.calibrate.counts import COLUMNS, Count, clock, parse_counts_csv
from engine.errors import ConfigError
from engine.signals import Intersection

APPROACH_SETBACK_M = 40.0
EXIT_SETBACK_M = 20.0
COUNTS_PERIOD_S = 300.0
FEED_COLUMNS = ("interval_start", "interval_end", "edge", "count", "occupancy")
assert set(FEED_COLUMNS) <= set(COLUMNS)  # calibrate reads what the feed writes


@dataclass(frozen=True)
class Loop:
    """One E1 loop: ``id`` on ``lane`` at ``pos`` m from the lane's start; ``kind`` entry, approach or exit."""

    id: str
    lane: str
    pos: float
    kind: str

    @property
    def edge(self) -> str:
        return self.lane.rsplit("_", 1)[0]


def place_loops(net, signals: Mapping[str, Intersection]) -> list[Loop]:
    """Loops on every approach and exit lane of ``signals`` (a sumolib net for lane lengths).

    A lane shared by two signals (the exit of one is the approach of the next) gets
    one loop of each kind. Pedestrian and bicycle lanes get none. Entry loops go on
    every car lane of the network's source edges (edges no car edge leads into).
    """
    loops: dict[tuple[str, str], Loop] = {}
    for edge in net.getEdges(withInternal=False):
        if edge.getFunction() or any(e.allows("passenger") for e in edge.getIncoming()):
            continue
        for lane in edge.getLanes():
            if lane.allows("passenger"):
                length = lane.getLength()
                pos = EXIT_SETBACK_M if length > 2 * EXIT_SETBACK_M else length / 2
                loops[(lane.getID(), "entry")] = Loop(f"n_{lane.getID()}", lane.getID(), round(pos, 2), "entry")
    for ix in signals.values():
        for kind, lanes in (("approach", ix.in_lanes), ("exit", ix.out_lanes)):
            for lane_id in lanes:
                lane = net.getLane(lane_id)
                if not lane.allows("passenger"):
                    continue
                length = lane.getLength()
                if kind == "approach":
                    pos = length - APPROACH_SETBACK_M if length > 2 * APPROACH_SETBACK_M else length / 2
                else:
                    pos = EXIT_SETBACK_M if length > 2 * EXIT_SETBACK_M else length / 2
                key = (lane_id, kind)
                if key not in loops:
                    loops[key] = Loop(f"{kind[0]}_{lane_id}", lane_id, round(pos, 2), kind)
    return sorted(loops.values(), key=lambda loop: loop.id)


def loops_xml(loops: Iterable[Loop], output: str, period_s: float = COUNTS_PERIOD_S) -> str:
    """An additional file declaring ``loops``, each writing to ``output`` every ``period_s``."""
    root = ET.Element("additional")
    for loop in loops:
        ET.SubElement(root, "inductionLoop", id=loop.id, lane=loop.lane, pos=f"{loop.pos:g}",
                      period=f"{period_s:g}", file=output)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode") + "\n"


def loop_counts(output: Path, loops: Iterable[Loop]) -> list[Count]:
    """Edge counts from SUMO's E1 output: per interval and edge, the sum of the vehicles
    (``nVehContrib``) of the edge's counting loops (:func:`loop_groups`) and the mean of their
    occupancy (%)."""
    loops = list(loops)
    counting = {i for ids in loop_groups(loops).values() for i in ids}
    by_id = {loop.id: loop for loop in loops if loop.id in counting}
    sums: dict[tuple[float, float, str], list[float]] = defaultdict(lambda: [0.0, 0.0, 0])
    try:
        tree = ET.parse(output)
    except (OSError, ET.ParseError) as exc:
        raise ConfigError(f"{output}: not a readable E1 detector output ({exc})") from None
    for el in tree.getroot().iter("interval"):
        loop = by_id.get(el.get("id", ""))
        if loop is None:
            continue
        key = (float(el.get("begin")), float(el.get("end")), loop.edge)
        acc = sums[key]
        acc[0] += float(el.get("nVehContrib", 0))
        acc[1] += float(el.get("occupancy", 0))
        acc[2] += 1
    return [Count(b, e, edge, None, v, f"{output.name}", round(occ / n, 2))
            for (b, e, edge), (v, occ, n) in sorted(sums.items())]


def loop_groups(loops) -> dict[str, list[str]]:
    """Loop ids per counted edge: its entry loops where it has them, else its approach loops, else
    its exit loops (see the module docstring)."""
    by_edge: dict[str, dict[str, list[str]]] = {}
    for lp in loops:
        by_edge.setdefault(lp.edge, {}).setdefault(lp.kind, []).append(lp.id)
    return {e: kinds.get("entry") or kinds.get("approach") or kinds["exit"] for e, kinds in sorted(by_edge.items())}


def count_locations(net, signals: Mapping[str, Intersection]) -> list[str]:
    """The edges the field's loops count (sorted): the keys of :func:`loop_groups` of
    :func:`place_loops` on ``signals``; the locations of the feed's rows and of ``feed_faults``."""
    return list(loop_groups(place_loops(net, signals)))


def read_loops(api, groups: dict[str, list[str]], begin: float, end: float) -> list[Count]:
    """The interval just ended, per edge, from a running SUMO (``api``: libsumo or traci): vehicles
    summed over the edge's loops (:func:`loop_groups`), occupancy (%) their mean; the same
    aggregation :func:`loop_counts` makes from SUMO's E1 output file."""
    out = []
    for edge, ids in groups.items():
        n = sum(api.inductionloop.getLastIntervalVehicleNumber(i) for i in ids)
        occ = sum(api.inductionloop.getLastIntervalOccupancy(i) for i in ids) / len(ids)
        out.append(Count(begin, end, edge, None, float(n), "field", round(occ, 2)))
    return out


def append_counts(path: Path, counts: Iterable[Count]) -> None:
    """Append ``counts`` to a feed CSV (header first if the file is new), whole lines, flushed."""
    new = not path.exists() or path.stat().st_size == 0
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    if new:
        writer.writerow(FEED_COLUMNS)
    for c in counts:
        writer.writerow([clock(c.begin), clock(c.end), c.edge, f"{c.value:g}",
                         "" if c.occupancy is None else f"{c.occupancy:g}"])
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(buf.getvalue())
        fh.flush()
        os.fsync(fh.fileno())


class CountsFeed:
    """Reads a counts CSV as it grows: each :meth:`read` returns the rows completed since the last.

    A last line without its newline is still being written and is left for the next read.
    Rows are parsed by calibrate's own reader (:func:`engine.calibrate.counts.read_counts`
    rules: one-line :class:`ConfigError` naming the file and line).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._offset = 0  # bytes consumed
        self._lines = 0  # lines consumed (the header's among them)
        self._header: str | None = None

    def read(self) -> list[Count]:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self._offset)
                chunk = fh.read()
        except FileNotFoundError:
            return []
        end = chunk.rfind(b"\n")
        if end < 0:
            return []
        lines = chunk[: end + 1].decode("utf-8-sig" if self._offset == 0 else "utf-8").splitlines()
        self._offset += end + 1
        before = self._lines
        self._lines += len(lines)
        if self._header is None:
            data = [ln for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
            if not data:
                self._offset, self._lines = 0, 0  # no header yet: read it all again next time
                return []
            self._header = data[0]
            text = "\n".join(lines)
        else:  # the header, then comment lines, so that messages name the file's own line numbers
            text = "\n".join([self._header] + ["#"] * (before - 1) + lines)
        if sum(1 for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")) <= 1:
            return []
        return parse_counts_csv(self.path, text)


FAULT_KINDS = ("gap", "late", "duplicate", "dead", "clock_jump")


class FaultyFeed:
    """Breaks a feed the ways real detector feeds break, for testing the twin against them.

    ``faults``: objects with ``kind`` (one of :data:`FAULT_KINDS`), ``edges`` (tuple of
    edges, empty for all), ``start`` and ``duration_s`` (the intervals that begin in that
    window are affected) and ``shift_s`` (clock_jump). ``gap``: rows not written;
    ``late``: written one interval later; ``duplicate``: written twice; ``dead``: count
    and occupancy 0; ``clock_jump``: interval times shifted by ``shift_s``.
    """

    def __init__(self, faults: Iterable) -> None:
        self.faults = tuple(faults)
        self._held: list[Count] = []

    def __call__(self, counts: Iterable[Count]) -> list[Count]:
        out, held = list(self._held), []
        for c in counts:
            rows = [c]
            for f in self.faults:
                if not (f.start <= c.begin < f.start + f.duration_s) or (f.edges and c.edge not in f.edges):
                    continue
                if f.kind == "gap":
                    rows = []
                elif f.kind == "late":
                    held += rows
                    rows = []
                elif f.kind == "duplicate":
                    rows = rows + rows
                elif f.kind == "dead":
                    rows = [dataclasses.replace(r, value=0.0, occupancy=0.0) for r in rows]
                elif f.kind == "clock_jump":
                    rows = [dataclasses.replace(r, begin=r.begin + f.shift_s, end=r.end + f.shift_s) for r in rows]
            out += rows
        self._held = held
        return out
