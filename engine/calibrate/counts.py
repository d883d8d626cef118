"""Traffic counts: read a counts CSV or SUMO edgeData/edgeRelation XML, validate every row.

A count is a number of vehicles seen at one location during one interval. The
location is an edge (a loop detector across all its lanes) or a turning movement
(vehicles that leave ``edge`` onto ``to_edge``). The CSV format::

    interval_start,interval_end,edge,to_edge,count
    07:00,07:15,W-C1,,512            <- edge count (to_edge empty)
    07:00,07:15,C1-C2.app,C2-C2N,31  <- turning movement count

An optional ``occupancy`` column (percent of the interval, loop detectors) is read
and checked; the twin's detector feeds (``engine/twin/detectors.py``) write it.

Times are seconds or clock times ``HH:MM`` / ``HH:MM:SS``; the ``to_edge``
column may be left out when every row is an edge count; lines starting with
``#`` are comments. Every error names the file and the row (CSV line or XML
line) and is raised as a one-line :class:`ConfigError`.
"""

from __future__ import annotations

import csv
import io
import math
import xml.parsers.expat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from engine.errors import ConfigError

REQUIRED_COLUMNS = ("interval_start", "interval_end", "edge", "count")
COLUMNS = ("interval_start", "interval_end", "edge", "to_edge", "count", "occupancy")


@dataclass(frozen=True)
class Count:
    """One observed count: ``value`` vehicles at a location during [begin, end) seconds."""

    begin: float
    end: float
    edge: str
    to_edge: str | None  # None for an edge count
    value: float
    row: str  # where it came from, for messages: "counts.csv:12"
    occupancy: float | None = None  # % of the interval a detector was occupied (loop detectors), if given

    @property
    def location(self) -> str:
        return self.edge if self.to_edge is None else f"{self.edge}>{self.to_edge}"

    @property
    def kind(self) -> str:
        return "edge" if self.to_edge is None else "turn"

    @property
    def length(self) -> float:
        return self.end - self.begin


@dataclass(frozen=True)
class CountSet:
    """Validated counts from one file, in file order."""

    source: Path
    counts: tuple[Count, ...]

    @property
    def begin(self) -> float:
        return min(c.begin for c in self.counts)

    @property
    def end(self) -> float:
        return max(c.end for c in self.counts)

    @property
    def locations(self) -> list[str]:
        return sorted({c.location for c in self.counts})

    def window(self, begin: float | None, end: float | None) -> CountSet:
        """The counts whose interval lies inside [begin, end]; ConfigError if none do."""
        lo = self.begin if begin is None else begin
        hi = self.end if end is None else end
        if hi <= lo:
            raise ConfigError(f"--begin/--end: empty window {clock(lo)}-{clock(hi)}")
        kept = tuple(c for c in self.counts if c.begin >= lo and c.end <= hi)
        if not kept:
            raise ConfigError(f"{self.source}: no count lies inside {clock(lo)}-{clock(hi)}")
        return CountSet(self.source, kept)


# ----------------------------------------------------------------------------- times

def seconds_of(text: str) -> float | None:
    """Seconds from a time as people and SUMO write it, or None when ``text`` is none.

    ``'25200'`` or ``'25200.5'`` (any float, its sign kept for the caller to judge);
    ``'07:00'``, ``'07:00:30'``, ``'07:00:30.5'`` or SUMO's ``'1:07:00:00'`` (days:hours:...):
    whole non-negative fields, minutes and seconds below 60, hours below 24 after a day.
    ``'25:00'`` is 25 h (the next day's 1 am, as SUMO counts), ``'25:99'`` is refused.
    """
    s = text.strip()
    if ":" not in s:
        try:
            value = float(s)
        except ValueError:
            return None
        return value if math.isfinite(value) else None
    parts = s.split(":")
    if not 2 <= len(parts) <= 4 or not all(p.isascii() and p.isdigit() for p in parts[:-1]):
        return None
    last = parts[-1]
    whole, _, fraction = last.partition(".")
    if not (whole.isascii() and whole.isdigit()) or (fraction and (len(parts) == 2 or not fraction.isdigit())):
        return None
    fields = [int(p) for p in parts[:-1]] + [float(last)]
    if len(fields) == 2:
        fields.append(0.0)  # HH:MM
    *days, hours, minutes, seconds = fields
    if minutes >= 60 or seconds >= 60 or (days and hours >= 24):
        return None
    return 86400.0 * (days[0] if days else 0) + 3600.0 * hours + 60.0 * minutes + seconds


def parse_time(text: str, where: str) -> float:
    """Seconds (>= 0) from a time of :func:`seconds_of`'s forms; ConfigError naming ``where`` otherwise."""
    s = text.strip()
    if not s:
        raise ConfigError(f"{where}: time is missing")
    value = seconds_of(s)
    if value is None:
        raise ConfigError(f"{where}: time {text!r} is neither seconds nor HH:MM[:SS]")
    if value < 0:
        raise ConfigError(f"{where}: time {text!r} must be a non-negative number of seconds")
    return value


def clock(seconds: float) -> str:
    """``HH:MM`` (or ``HH:MM:SS``) of a time in seconds, for messages and reports."""
    s = int(round(seconds))
    h, m, sec = s // 3600, s // 60 % 60, s % 60
    return f"{h:02d}:{m:02d}" if sec == 0 else f"{h:02d}:{m:02d}:{sec:02d}"


def _count_value(text: str | None, where: str) -> float:
    s = (text or "").strip()
    if not s:
        raise ConfigError(f"{where}: count is missing")
    try:
        value = float(s)
    except ValueError:
        raise ConfigError(f"{where}: count {s!r} is not a number") from None
    if not math.isfinite(value):
        raise ConfigError(f"{where}: count {s!r} is not a number")
    if value < 0:
        raise ConfigError(f"{where}: count {s} is negative")
    return value


def _make(begin: str, end: str, edge: str | None, to_edge: str | None, count: str | None,
          where: str, occupancy: str | None = None,
          names: tuple[str, str] = ("interval_start", "interval_end")) -> Count:
    b, e = parse_time(begin, f"{where}: {names[0]}"), parse_time(end, f"{where}: {names[1]}")
    if e <= b:
        raise ConfigError(f"{where}: interval_end {end.strip()} is not after interval_start {begin.strip()}")
    edge = (edge or "").strip()
    if not edge:
        raise ConfigError(f"{where}: edge is missing")
    to = (to_edge or "").strip() or None
    occ = None
    if (occupancy or "").strip():
        try:
            occ = float(occupancy)
        except ValueError:
            raise ConfigError(f"{where}: occupancy {occupancy.strip()!r} is not a number") from None
        if not 0.0 <= occ <= 100.0:
            raise ConfigError(f"{where}: occupancy {occ:g} is outside 0..100 %")
    return Count(b, e, edge, to, _count_value(count, where), where, occ)


# ----------------------------------------------------------------------------- readers

def read_counts(path: str | Path, edge_attribute: str = "entered",
                turn_attribute: str = "count") -> CountSet:
    """Read and validate a counts CSV or SUMO edgeData/edgeRelation XML file.

    The format is chosen by content: a file whose first character is ``<`` is XML
    (``edge_attribute``/``turn_attribute`` name the count attribute of ``<edge>``
    and ``<edgeRelation>``, as in routeSampler), anything else must be the CSV
    format of this module. Rows are checked on their own (times, counts) and
    together (no two overlapping intervals at one location).
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read counts file ({exc.strerror})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a counts file: not UTF-8 text (CSV or SUMO XML expected)") from None
    if "\x00" in text:
        raise ConfigError(f"{path}: not a counts file: binary content (CSV or SUMO XML expected)")
    if text.lstrip().startswith("<"):
        counts = _read_xml(path, raw, edge_attribute, turn_attribute)
    else:
        counts = parse_counts_csv(path, text)
    if not counts:
        raise ConfigError(f"{path}: no counts in file")
    check_overlaps(counts)
    return CountSet(path, tuple(counts))


def parse_counts_csv(path: Path, text: str) -> list[Count]:
    """Counts from the text of a counts CSV (``path`` names it in messages), each row validated;
    :class:`ConfigError` naming the file and line. Overlaps are not checked here (:func:`read_counts`)."""
    lines = [(i, ln) for i, ln in enumerate(text.splitlines(), start=1)
             if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise ConfigError(f"{path}: no counts in file")
    header_line, header = lines[0]
    try:
        names = [h.strip().lower() for h in next(csv.reader([header]))]
    except csv.Error as exc:
        raise ConfigError(f"{path}:{header_line}: not a counts CSV ({exc})") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        raise ConfigError(
            f"{path}:{header_line}: not a counts CSV: header needs columns {', '.join(COLUMNS)} "
            f"(to_edge optional); missing {', '.join(missing)}"
        )
    unknown = [n for n in names if n not in COLUMNS]
    if unknown:
        raise ConfigError(f"{path}:{header_line}: unknown column {unknown[0]!r} (columns: {', '.join(COLUMNS)})")
    out = []
    for line_no, line in lines[1:]:
        where = f"{path}:{line_no}"
        try:
            cells = next(csv.reader(io.StringIO(line)))
        except csv.Error as exc:
            raise ConfigError(f"{where}: not valid CSV ({exc})") from None
        if len(cells) != len(names):
            raise ConfigError(f"{where}: {len(cells)} fields, the header has {len(names)}")
        row = dict(zip(names, cells))
        out.append(_make(row["interval_start"], row["interval_end"], row["edge"], row.get("to_edge"),
                         row["count"], where, row.get("occupancy")))
    return out


def _read_xml(path: Path, raw: bytes, edge_attribute: str, turn_attribute: str) -> list[Count]:
    """SUMO data files: ``<interval begin end>`` holding ``<edge>`` and ``<edgeRelation>``."""
    out: list[Count] = []
    interval: list[tuple[str, str] | None] = [None]
    parser = xml.parsers.expat.ParserCreate()

    def start(tag: str, attrs: dict[str, str]) -> None:
        where = f"{path}:{parser.CurrentLineNumber}"
        if tag == "interval":
            if "begin" not in attrs or "end" not in attrs:
                raise ConfigError(f"{where}: <interval> needs begin and end")
            interval[0] = (attrs["begin"], attrs["end"])
        elif tag in ("edge", "edgeRelation"):
            if interval[0] is None:
                raise ConfigError(f"{where}: <{tag}> outside an <interval>")
            begin, end = interval[0]
            if tag == "edge":
                attr, edge, to = edge_attribute, attrs.get("id"), None
                if not edge:
                    raise ConfigError(f"{where}: <edge> without id")
            else:
                attr, edge, to = turn_attribute, attrs.get("from"), attrs.get("to")
                if not edge or not to:
                    raise ConfigError(f"{where}: <edgeRelation> needs from and to")
            if attr not in attrs:
                raise ConfigError(f"{where}: <{tag}> has no {attr!r} attribute (the count)")
            out.append(_make(begin, end, edge, to, attrs[attr], where, names=("<interval> begin", "<interval> end")))

    def end(tag: str) -> None:
        if tag == "interval":
            interval[0] = None

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    try:
        parser.Parse(raw, True)
    except xml.parsers.expat.ExpatError as exc:
        why = xml.parsers.expat.ErrorString(exc.code)
        raise ConfigError(f"{path}:{exc.lineno}: not valid XML ({why})") from None
    return out


def check_overlaps(counts: Iterable[Count]) -> None:
    """ConfigError naming both rows if two intervals of one location overlap (or repeat)."""
    by_location: dict[str, list[Count]] = {}
    for c in counts:
        by_location.setdefault(c.location, []).append(c)
    for location, rows in by_location.items():
        rows.sort(key=lambda c: (c.begin, c.end))
        for prev, cur in zip(rows, rows[1:]):
            if cur.begin < prev.end:
                what = "repeats" if (cur.begin, cur.end) == (prev.begin, prev.end) else "overlaps"
                raise ConfigError(
                    f"{cur.row}: interval {clock(cur.begin)}-{clock(cur.end)} at {location} {what} "
                    f"{clock(prev.begin)}-{clock(prev.end)} of {prev.row}"
                )


def check_network(counts: CountSet, edges: set[str]) -> None:
    """ConfigError naming the row of the first count whose edge is not in the network."""
    for c in counts.counts:
        for e in (c.edge, c.to_edge):
            if e is not None and e not in edges:
                raise ConfigError(f"{c.row}: edge {e!r} does not exist in the network")


# A lane discharges at most ~1,800-2,000 veh/h (HCM base saturation flow 1,900 pc/h/ln);
# 2,400 leaves room for short intervals and detector noise and flags only the impossible
# (a count in veh/h where veh/15 min was meant, two files added up, a detector counting twice).
MAX_VEH_PER_LANE_HOUR = 2400.0


def check_capacity(counts: Iterable[Count], lanes: dict[str, int],
                   limit: float = MAX_VEH_PER_LANE_HOUR) -> None:
    """ConfigError naming the row of the first count above ``limit`` veh/h per lane.

    ``lanes`` gives the lanes a count's vehicles can use, by :attr:`Count.location`:
    an edge's car lanes, or for a turning movement the lanes of ``edge`` with a
    connection to ``to_edge``. Locations not in ``lanes`` are not checked.
    """
    for c in counts:
        n = lanes.get(c.location)
        if not n:
            continue
        most = limit * n * c.length / 3600.0
        if c.value > most:
            rate = c.value * 3600.0 / c.length / n
            what = "edge" if c.to_edge is None else "turn"
            raise ConfigError(
                f"{c.row}: count {c.value:g} at {what} {c.location} in {clock(c.begin)}-{clock(c.end)} "
                f"is {rate:,.0f} veh/h per lane over {n} lane(s), above a lane's capacity of "
                f"{limit:,.0f} veh/h (at most {most:,.0f} in this interval)"
            )


def write_csv(counts: Iterable[Count], path: Path, comments: Iterable[str] = ()) -> None:
    """Write counts in this module's CSV format (clock times), atomically."""
    from engine.calibrate.files import write_text_atomic

    buf = io.StringIO()
    for line in comments:
        buf.write(f"# {line}\n" if line else "#\n")
    counts = list(counts)
    occupancy = any(c.occupancy is not None for c in counts)  # the column only when there is one
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS if occupancy else COLUMNS[:-1])
    for c in counts:
        value = int(c.value) if float(c.value).is_integer() else c.value
        row = [clock(c.begin), clock(c.end), c.edge, c.to_edge or "", value]
        w.writerow(row + ["" if c.occupancy is None else f"{c.occupancy:g}"] if occupancy else row)
    write_text_atomic(path, buf.getvalue())
