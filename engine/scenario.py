"""A scenario: a network, a demand and simulation options, turned into SUMO's arguments.

Three kinds of input are one concept here:

* an embedded network by name (``chongqing``), or any folder holding a
  ``network.yaml`` (a calibrated twin written by ``cqsignal calibrate`` is one);
  demand comes from a period-of-day definition or from route files. ``network.yaml`` is
  read with a schema (:class:`NetworkYaml`: every key typed, unknown keys refused) and a
  period-of-day demand is checked whole against the network when a scenario loads;
* a user's ``.sumocfg``;
* a user's ``.net.xml`` plus route files.

Every form has a time window ``[begin, begin + duration)``: ``--begin``/``--end``/
``--duration``, ``begin:``/``duration:``/``end:`` in ``network.yaml``, or the
``.sumocfg``'s ``begin`` and ``end``. Vehicles are dropped or teleported only as
SUMO's own options say (``max_depart_delay``, ``time_to_teleport``): SUMO's defaults
(never drop, teleport after 300 s) unless a ``.sumocfg`` or the caller sets them.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import math
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import Field, ValidationError, field_validator, model_validator

from engine.errors import ConfigError, NetworkError, listed
from engine.yamlfile import ConfigModel

DEFAULT_NETWORK = "chongqing"
DEFAULT_PERIOD = "am_peak"
DEFAULT_DURATION_S = 3600.0
MAX_DURATION_S = 7 * 86400.0  # a week of simulated time: longer is a typo, not a study
MAX_BEGIN_S = 366 * 86400.0
MAX_SCALE = 100.0
MAX_SEED = 2**31 - 1  # SUMO's --seed is a 32-bit signed integer
# SUMO's own defaults: a vehicle waits to enter for ever (-1), a stuck vehicle is
# teleported after 300 s. A negative max_depart_delay or a non-positive
# time_to_teleport means "never" (stored as -1, as SUMO does).
SUMO_MAX_DEPART_DELAY_S = -1.0
SUMO_TIME_TO_TELEPORT_S = 300.0
# The RL environments bound the entry backlog (see engine/env_core.py), so that a
# bad policy cannot grow an unbounded queue of vehicles waiting to enter.
ENV_MAX_DEPART_DELAY_S = 300.0
DEFAULT_MAX_DEPART_DELAY_S = ENV_MAX_DEPART_DELAY_S  # kept for older imports


def finite(value: float, name: str) -> float:
    """``value`` as a float; ConfigError naming ``name`` if it is NaN, infinite or not a number."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(out):
        raise ConfigError(f"{name} must be a finite number, got {value}")
    return out


def parse_seconds(text: str | float, name: str) -> float:
    """Seconds from a number or a time string of :func:`engine.calibrate.counts.seconds_of`'s
    forms (``25200``, ``'07:00'``, ``'07:00:00'``, SUMO's ``'D:HH:MM:SS'``); ConfigError naming
    ``name`` otherwise. The sign of a number is kept for the caller's range check."""
    from engine.calibrate.counts import seconds_of

    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return finite(text, name)
    value = seconds_of(str(text))
    if value is None:
        raise ConfigError(f"{name} must be a time (seconds or HH:MM[:SS]), got {str(text)!r}")
    return value


def sumo_never(value: float | None, *, teleport: bool) -> float | None:
    """The KPI record's form of a SUMO option: None where it means "never"."""
    if value is None:
        return None
    if (teleport and value <= 0) or (not teleport and value < 0):
        return None
    return float(value)


@dataclass(frozen=True)
class RouteWindow:
    """What the route files hold against a scenario's window (user route files only)."""

    vehicles: int  # <vehicle>/<trip> elements and <flow>s
    before_begin: int  # of which depart before the window (SUMO skips them)
    in_window: int  # of which may depart in [begin, end)
    first: float | None  # earliest and latest departure found (s)
    last: float | None
    unsorted: str | None = None  # "FILE: element N departs at T s after one at U s" (SUMO would skip it)


@dataclass(frozen=True)
class Scenario:
    """Everything SUMO needs for one run, except the controller."""

    name: str
    net_file: Path
    route_files: tuple[Path, ...] = ()
    additional_files: tuple[Path, ...] = ()
    demand_file: Path | None = None  # period-of-day demand that generates routes
    period: str | None = None
    seed: int = 0
    scale: float = 1.0
    begin: float = 0.0
    duration: float = DEFAULT_DURATION_S
    max_depart_delay: float = SUMO_MAX_DEPART_DELAY_S  # -1: never drop a vehicle waiting to enter
    time_to_teleport: float = SUMO_TIME_TO_TELEPORT_S  # -1: never teleport
    emissions: bool = True  # SUMO's emission device (CO2); costs about a quarter of a step
    extra_args: tuple[str, ...] = field(default=())

    # -- construction ----------------------------------------------------------
    @classmethod
    def load(
        cls,
        network: str | Path = DEFAULT_NETWORK,
        period: str | None = None,
        seed: int = 0,
        scale: float = 1.0,
        duration: float | None = None,
        routes: tuple[str | Path, ...] | list[str | Path] = (),
        begin: float | None = None,
        end: float | None = None,
        max_depart_delay: float | None = None,
        time_to_teleport: float | None = None,
    ) -> Scenario:
        """Resolve ``network`` (a name or a path) into a scenario.

        ``begin``, ``end``/``duration``, ``max_depart_delay`` and ``time_to_teleport``
        left None keep the scenario's own (its ``.sumocfg`` or ``network.yaml``, else
        0 s, 3600 s and SUMO's defaults). ``begin`` alone moves the window and keeps
        its length.
        """
        base = _resolve(network)
        if routes:
            missing = [str(r) for r in routes if not Path(r).is_file()]
            if missing:
                raise ConfigError(f"--routes: file not found: {missing[0]}")
            base = dataclasses.replace(base, route_files=tuple(Path(r).resolve() for r in routes),
                                       demand_file=None)
        if base.demand_file is not None:
            from engine.demand import PERIODS, check_demand_file

            period = period or DEFAULT_PERIOD
            if period not in PERIODS:
                raise ConfigError(f"unknown period '{period}' (choose from {', '.join(PERIODS)})")
            # the whole demand file against the network (every period), before any work
            check_demand_file(base.demand_file, base.net_file)
        elif period is not None:
            raise ConfigError(
                f"period '{period}' given, but network '{base.name}' has fixed routes and no "
                "period-of-day demand"
            )
        elif not base.route_files:
            raise ConfigError(f"network '{base.name}' has no demand: give route files with --routes")
        if end is not None:
            if duration is not None:
                raise ConfigError("give an end or a duration, not both")
            start = base.begin if begin is None else finite(begin, "begin")
            end = finite(end, "end")
            if end <= start:
                raise ConfigError(f"end {end:g} s must be after begin {start:g} s")
            duration = end - start
        return base.with_options(period=period, seed=seed, scale=scale, duration=duration, begin=begin,
                                 max_depart_delay=max_depart_delay, time_to_teleport=time_to_teleport)

    @classmethod
    def of_network(cls, network: str | Path = DEFAULT_NETWORK) -> Scenario:
        """The network alone (no demand checks): enough to read its signals."""
        return _resolve(network)

    def with_options(self, **changes) -> Scenario:
        """A copy with some options changed (None leaves one as it is), validated."""
        changes = {k: v for k, v in changes.items() if v is not None}
        out = dataclasses.replace(self, **changes)
        duration = finite(out.duration, "duration")
        if duration <= 0:
            raise ConfigError(f"duration must be positive, got {duration:g}")
        if duration > MAX_DURATION_S:
            raise ConfigError(f"duration {duration:g} s is longer than the limit of "
                              f"{MAX_DURATION_S:g} s (7 days)")
        begin = finite(out.begin, "begin")
        if not 0 <= begin <= MAX_BEGIN_S:
            raise ConfigError(f"begin must be between 0 and {MAX_BEGIN_S:g} s, got {begin:g}")
        scale = finite(out.scale, "scale")
        if scale <= 0:
            raise ConfigError(f"scale must be positive, got {scale:g}")
        if scale > MAX_SCALE:
            raise ConfigError(f"scale {scale:g} is above the limit of {MAX_SCALE:g}")
        if isinstance(out.seed, bool) or int(out.seed) != out.seed:
            raise ConfigError(f"seed must be a whole number, got {out.seed!r}")
        if out.seed < 0:
            raise ConfigError(f"seed must be >= 0, got {out.seed}")
        if out.seed > MAX_SEED:
            raise ConfigError(f"seed {out.seed} is outside SUMO's range 0..{MAX_SEED}")
        mdd = finite(out.max_depart_delay, "max_depart_delay")
        ttt = finite(out.time_to_teleport, "time_to_teleport")
        return dataclasses.replace(
            out, duration=duration, begin=begin, scale=scale, seed=int(out.seed),
            max_depart_delay=-1.0 if mdd < 0 else mdd, time_to_teleport=-1.0 if ttt <= 0 else ttt)

    # -- what SUMO runs --------------------------------------------------------
    @property
    def end(self) -> float:
        return self.begin + self.duration

    def prepare_routes(self, workdir: Path) -> tuple[Path, ...]:
        """Route files for this seed (generated from the demand definition if there is one)."""
        if self.demand_file is None:
            return self.route_files
        from engine.demand import load_demand, write_routes

        demand = load_demand(self.demand_file)
        start = f"_b{self.begin:g}" if self.begin else ""
        out = workdir / f"{self.period}_s{self.seed}_x{self.scale:g}_{self.duration:g}{start}.rou.xml"
        if not out.is_file():
            write_routes(demand, self.net_file, self.period, self.seed, self.scale, self.duration, out,
                         begin=self.begin)
        return (out,)

    def sumo_args(self, workdir: Path, tripinfo: Path | None = None,
                  statistics: Path | None = None) -> list[str]:
        """Command-line options (no binary) for this scenario.

        With ``statistics``, SUMO's summary output (its count of vehicles dropped
        after ``max-depart-delay``) is written beside it, see :func:`summary_path`.
        """
        if self.demand_file is None:
            self.check_routes()
        routes = self.prepare_routes(workdir)
        args = [
            "--net-file", str(self.net_file),
            "--begin", f"{self.begin:g}", "--end", f"{self.end:g}",
            "--seed", str(self.seed),
            "--max-depart-delay", f"{self.max_depart_delay:g}",
            "--time-to-teleport", f"{self.time_to_teleport:g}",
            "--no-step-log", "true", "--no-warnings", "true",
            "--duration-log.disable", "true",
            "--device.emissions.probability", "1" if self.emissions else "0",
        ]
        if routes:
            args += ["--route-files", ",".join(str(r) for r in routes)]
        if self.additional_files:
            args += ["--additional-files", ",".join(str(a) for a in self.additional_files)]
        if self.demand_file is None and self.scale != 1.0:
            args += ["--scale", f"{self.scale:g}"]
        if tripinfo is not None:
            args += ["--tripinfo-output", str(tripinfo), "--tripinfo-output.write-unfinished", "true",
                     "--tripinfo-output.write-undeparted", "true"]
        if statistics is not None:
            # SUMO's summary at the first and the last step it runs (begin + ceil(duration) - 1
            # with 1 s steps): the last holds the count of vehicles dropped after max-depart-delay
            last_step = max(math.ceil(self.duration - 1e-9) - 1, 1)
            args += ["--statistic-output", str(statistics),
                     "--summary-output", str(summary_path(statistics)),
                     "--summary-output.period", str(last_step)]
        return args + list(self.extra_args)

    def sumo_options(self) -> dict[str, float | None]:
        """SUMO's drop and teleport options in effect, as the KPI record states them."""
        return {"max_depart_delay_s": sumo_never(self.max_depart_delay, teleport=False),
                "time_to_teleport_s": sumo_never(self.time_to_teleport, teleport=True)}

    # -- route files against the window ----------------------------------------
    def route_window(self) -> RouteWindow:
        """Departures of the user's route files against ``[begin, end)`` (cached per file state)."""
        return _route_window(self.route_files, self.begin, self.end)

    def check_routes(self, warn: bool = True) -> RouteWindow:
        """ConfigError for an empty or unsorted route file or a window no vehicle departs in; a one-line
        warning (once per process) when vehicles depart before ``begin``."""
        for path in self.route_files:
            if _is_empty(Path(path)):
                raise ConfigError(f"{path}: route file is empty")
        rw = self.route_window()
        if rw.unsorted:
            raise ConfigError(f"{rw.unsorted}: the route file is not sorted by departure time, and SUMO "
                              "ignores what comes out of order (sort it, e.g. with SUMO's "
                              "tools/route/sort_routes.py)")
        if rw.vehicles == 0:
            raise ConfigError(f"{', '.join(str(p) for p in self.route_files)}: "
                              "no vehicles, trips or flows in the route files")
        if rw.in_window == 0:
            span = (f"the route files' departures span {rw.first:g}-{rw.last:g} s"
                    if rw.first is not None else "no departure time could be read")
            raise ConfigError(f"no vehicle departs in the window {self.begin:g}-{self.end:g} s "
                              f"({span}); set the window with --begin/--end")
        if rw.before_begin:
            _warn_once(f"{rw.before_begin} of {rw.vehicles} vehicles (or flows) in the route files "
                       f"depart before begin {self.begin:g} s and are not simulated", warn)
        return rw

    def fingerprint(self) -> str:
        """Hash of the network's signals (the programs SUMO runs, additional files' included, as the
        controllers' layout reads them) and lanes: models trained here match only here."""
        from engine.network import read_intersections

        h = hashlib.sha256()
        for tid, ix in read_intersections(self.net_file, self.additional_files).items():
            h.update(tid.encode())
            for ph in ix.phases:
                h.update(ph.state.encode())
            for lane in ix.in_lanes + ix.out_lanes:
                h.update(lane.encode())
        return h.hexdigest()[:16]

    def describe(self) -> str:
        demand = f"period {self.period}" if self.period else f"{len(self.route_files)} route file(s)"
        window = f"{self.begin:g}-{self.end:g} s" if self.begin else f"{self.duration:g} s"
        return f"{self.name}: {demand}, seed {self.seed}, scale {self.scale:g}, {window}"


def summary_path(statistics: Path) -> Path:
    """Where :meth:`Scenario.sumo_args` puts SUMO's summary output for a statistics file."""
    return Path(statistics).with_name(Path(statistics).stem + ".summary.xml")


_WARNED: set[str] = set()


def _warn_once(message: str, show: bool = True) -> None:
    """One line on stderr, once per process and message."""
    if message in _WARNED:
        return
    _WARNED.add(message)
    if show:
        print(f"cqsignal: warning: {message}", file=sys.stderr)


_ROUTE_CACHE: dict[tuple, RouteWindow] = {}
_DEMAND_TAGS = ("vehicle", "trip", "flow", "person", "personFlow", "container", "containerFlow")
_FLOW_TAGS = ("flow", "personFlow", "containerFlow")
_DEFAULT_FLOW_END = 86400.0  # SUMO's: a flow without an end runs for 24 h


def _route_window(route_files: tuple[Path, ...], begin: float, end: float) -> RouteWindow:
    key = (tuple((str(p), *_stat(p)) for p in route_files), begin, end)
    if key not in _ROUTE_CACHE:
        n = before = inside = 0
        first = last = None
        unsorted = None
        for path in route_files:
            previous = None
            for i, (lo, hi) in enumerate(_departures(Path(path)), start=1):
                n += 1
                if lo is None:  # 'triggered' and the like: may depart any time
                    inside += 1
                    continue
                if previous is not None and lo < previous and unsorted is None:
                    unsorted = f"{path}: element {i} departs at {lo:g} s after one at {previous:g} s"
                previous = lo if previous is None else max(previous, lo)
                first = lo if first is None else min(first, lo)
                last = hi if last is None else max(last, hi)
                if lo == hi:  # a vehicle or trip
                    before += lo < begin
                    inside += begin <= lo < end
                else:  # a flow from lo to hi
                    before += hi <= begin
                    inside += lo < end and hi > begin
        _ROUTE_CACHE[key] = RouteWindow(n, before, inside, first, last, unsorted)
    return _ROUTE_CACHE[key]


def _stat(path: Path) -> tuple:
    try:
        st = Path(path).stat()
        return (st.st_mtime_ns, st.st_size)
    except OSError:
        return (None, None)


def _is_empty(path: Path) -> bool:
    """True for a route file of zero bytes or with no element inside its root."""
    try:
        if path.stat().st_size == 0:
            return True
        with gzip.open(path) if path.suffix == ".gz" else open(path, "rb") as f:
            depth = 0
            for event, _ in ET.iterparse(f, events=("start", "end")):
                depth += 1 if event == "start" else -1
                if event == "start" and depth == 2:
                    return False
    except (ET.ParseError, OSError, EOFError) as exc:
        raise ConfigError(f"{path}: not a readable route file ({exc})") from None
    return True


def _departures(path: Path):
    """(earliest, latest) departure of each vehicle, trip or flow in a route file."""
    from sumolib.miscutils import parseTime

    def time_of(text: str | None, default: float | None) -> float | None:
        if text is None:
            return default
        try:
            value = parseTime(text)
        except (ValueError, TypeError, IndexError):
            return None
        return value if value is not None and math.isfinite(value) else None

    try:
        with gzip.open(path) if path.suffix == ".gz" else open(path, "rb") as f:
            depth = 0
            for event, el in ET.iterparse(f, events=("start", "end")):
                if event == "start":
                    depth += 1
                    continue
                depth -= 1
                if depth == 1 and el.tag in _DEMAND_TAGS:
                    if el.tag in _FLOW_TAGS:
                        lo = time_of(el.get("begin"), 0.0)
                        hi = time_of(el.get("end"), _DEFAULT_FLOW_END)
                        yield lo, (hi if hi is not None else lo)
                    else:
                        t = time_of(el.get("depart"), None)
                        yield t, t
                if depth <= 1:
                    el.clear()
    except (ET.ParseError, OSError, EOFError) as exc:
        raise ConfigError(f"{path}: not a readable route file ({exc})") from None


def _resolve(network: str | Path) -> Scenario:
    import networks

    text = str(network)
    path = Path(text)
    if text in networks.available():
        return _from_folder(networks.resolve(text), name=text)
    if not path.exists():
        raise ConfigError(
            f"unknown network '{text}': not an embedded network ({', '.join(networks.available())}) "
            "and no such file or folder"
        )
    if path.is_dir():
        if not (path / "network.yaml").is_file():
            raise NetworkError(f"{path}: folder has no network.yaml")
        return _from_folder(path.resolve(), name=path.name)
    if path.name.endswith(".sumocfg"):
        return _from_sumocfg(path.resolve())
    if path.name.endswith(".net.xml") or path.name.endswith(".net.xml.gz"):
        return Scenario(name=path.name.split(".")[0], net_file=path.resolve())
    raise ConfigError(f"{path}: expected a network name, a folder with network.yaml, a .sumocfg or a .net.xml")


def _window(begin: float | None, end: float | None, duration: float | None, where: str) -> tuple[float, float]:
    """(begin, duration) from a file's begin and end or duration; ConfigError naming ``where``."""
    b = 0.0 if begin is None else begin
    if end is not None and duration is not None:
        raise ConfigError(f"{where}: give end or duration, not both")
    if end is not None:
        if end <= b:
            raise ConfigError(f"{where}: end {end:g} s is not after begin {b:g} s")
        return b, end - b
    return b, DEFAULT_DURATION_S if duration is None else duration


# ----------------------------------------------------------------------------- network.yaml

NETWORK_YAML = "network.yaml"


def _time_value(value: object) -> float:
    """Seconds from a number or a time text (``25200``, ``'07:00'``); ValueError saying why."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"must be a time (seconds or HH:MM[:SS]), got {value!r}")
    try:
        return parse_seconds(value, "time")
    except ConfigError:
        raise ValueError(f"must be a time (seconds or HH:MM[:SS]), got {value!r}") from None


def _file_names(value: object, key: str) -> tuple[str, ...]:
    """One file name or a non-empty list of distinct ones; ValueError saying why."""
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list):
        raise ValueError(f"expected a file name or a list of file names, got {value!r}")
    if not names:
        raise ValueError(f"empty list (list the {key} files, or leave the key out)")
    for i, name in enumerate(names):
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"[{i}]: expected a file name, got {name!r}")
        if name in names[:i]:
            raise ValueError(f"{name} is listed twice")
    return tuple(names)


class CalibrationEntry(ConfigModel):
    """``calibration:`` of a twin's network.yaml, as ``cqsignal calibrate`` writes it."""

    counts: str | None = None
    begin: str | float | None = None  # time of day of the counts' window (HH:MM or seconds)
    end: str | float | None = None
    warmup_s: float | None = Field(None, ge=0)
    geh_ok_share: float | None = None
    r2: float | None = None
    verdict: str | None = None

    @field_validator("begin", "end", mode="before")
    @classmethod
    def _clock(cls, value: object) -> object:
        if value is not None:
            from engine.calibrate.counts import parse_time

            try:
                parse_time(str(value), "time")
            except ConfigError:
                raise ValueError(f"must be a time of day (HH:MM[:SS] or seconds), got {value!r}") from None
        return value


class NetworkYaml(ConfigModel):
    """The schema of a network folder's ``network.yaml``: every key typed, unknown keys refused.

    File names are relative to the folder (or absolute). ``begin``, ``end`` and ``duration``
    are in seconds (``end``/``begin`` also ``HH:MM[:SS]``); ``begin`` and ``duration`` default
    to 0 and 3600 s.
    """

    net: str  # the SUMO network (.net.xml), exactly one
    demand: str | None = None  # period-of-day demand (demand.yaml)
    routes: tuple[str, ...] = ()  # route files (instead of demand)
    additional: tuple[str, ...] = ()  # additional files (programs, detectors, WAUTs)
    begin: float | None = None
    end: float | None = None
    duration: float | None = None
    signals: tuple[str, ...] | None = None  # the traffic lights to control, in corridor order
    description: str | None = None
    calibration: CalibrationEntry | None = None  # written by `cqsignal calibrate`

    @field_validator("net", "demand", mode="before")
    @classmethod
    def _one_file(cls, value: object, info) -> object:
        what = "the network's .net.xml" if info.field_name == "net" else "the period-of-day demand file"
        if isinstance(value, str) and value.strip():
            return value
        if isinstance(value, list):
            raise ValueError(f"expected one file name ({what}), got "
                             + (f"a list {value!r}" if value else "an empty list"))
        if value is None and info.field_name == "demand":
            return value
        raise ValueError(f"expected a file name ({what}), got {value!r}")

    @field_validator("routes", "additional", mode="before")
    @classmethod
    def _files(cls, value: object, info) -> object:
        return value if value is None else _file_names(value, info.field_name)

    @field_validator("begin", "end", "duration", mode="before")
    @classmethod
    def _seconds(cls, value: object) -> object:
        return value if value is None else _time_value(value)

    @field_validator("signals", mode="before")
    @classmethod
    def _signals(cls, value: object) -> object:
        if value is None:
            return value
        if not isinstance(value, list) or not value:
            raise ValueError(f"expected a non-empty list of traffic-light ids, got {value!r}")
        ids = []
        for i, sid in enumerate(value):
            if isinstance(sid, bool) or not isinstance(sid, (str, int)) or not str(sid).strip():
                raise ValueError(f"[{i}]: expected a traffic-light id, got {sid!r}")
            if str(sid) in ids:
                raise ValueError(f"{sid!r} is listed twice")
            ids.append(str(sid))
        return tuple(ids)

    @field_validator("duration")
    @classmethod
    def _duration(cls, value: float | None) -> float | None:
        if value is not None and value <= 0:
            raise ValueError(f"must be positive, got {value:g}")
        if value is not None and value > MAX_DURATION_S:
            raise ValueError(f"{value:g} s is longer than the limit of {MAX_DURATION_S:g} s (7 days)")
        return value

    @field_validator("begin")
    @classmethod
    def _begin(cls, value: float | None) -> float | None:
        if value is not None and not 0 <= value <= MAX_BEGIN_S:
            raise ValueError(f"must be between 0 and {MAX_BEGIN_S:g} s, got {value:g}")
        return value

    @model_validator(mode="after")
    def _together(self) -> NetworkYaml:
        if self.end is not None and self.duration is not None:
            raise ValueError("end, duration: give end or duration, not both")
        if self.end is not None:
            begin = self.begin or 0.0
            if self.end <= begin:
                raise ValueError(f"end: {self.end:g} s is not after begin {begin:g} s")
            if self.end - begin > MAX_DURATION_S:
                raise ValueError(f"end: the window {begin:g}-{self.end:g} s is longer than the limit of "
                                 f"{MAX_DURATION_S:g} s (7 days)")
        if self.demand is not None and self.routes:
            raise ValueError("demand, routes: give demand (period-of-day demand) or routes (route files), "
                             "not both")
        return self


def _validation_message(exc: ValidationError) -> str:
    """The first problem of a network.yaml, as ``field: what is wrong``."""
    err = exc.errors()[0]
    loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]).lstrip(".")
    if err["type"] == "extra_forbidden":
        model = CalibrationEntry if err["loc"][0] == "calibration" else NetworkYaml
        return f"{loc}: unknown key (known keys: {', '.join(model.model_fields)})"
    if err["type"] == "missing":
        return f"{loc}: missing"
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "value_error":  # our own messages: 'field: ...' for checks across fields
        return f"{loc}: {msg}" if loc else msg
    return f"{loc}: {msg} (got {err.get('input')!r})" if loc else msg


def read_network_yaml(path: str | Path) -> NetworkYaml:
    """A folder's ``network.yaml``, validated; NetworkError naming the file and the field on any problem
    (unreadable, not YAML, not a mapping, an unknown key, a value of the wrong type or range)."""
    from engine.yamlfile import read_yaml

    path = Path(path)
    try:  # one line naming the file: unreadable, not UTF-8, or the line and column of a YAML syntax error
        raw = read_yaml(path, "network description")
    except ConfigError as exc:
        raise NetworkError(str(exc)) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise NetworkError(f"{path}: expected a mapping of keys ({', '.join(NetworkYaml.model_fields)}), "
                           f"got {type(raw).__name__}")
    bad = [k for k in raw if not isinstance(k, str)]
    if bad:
        raise NetworkError(f"{path}: {bad[0]!r}: unknown key (known keys: {', '.join(NetworkYaml.model_fields)})")
    try:
        return NetworkYaml.model_validate(raw)
    except ValidationError as exc:
        raise NetworkError(f"{path}: {_validation_message(exc)}") from None


def _check_signals(meta_file: Path, signals: tuple[str, ...], net: Path, additional: tuple[Path, ...]) -> None:
    """NetworkError naming ``meta_file``'s ``signals`` when one is not a traffic light of ``net``."""
    from engine.network import load_network

    known = load_network(net, additional).signals
    unknown = [s for s in signals if s not in known]
    if unknown:
        shown = listed(list(known))
        raise NetworkError(f"{meta_file}: signals: {unknown[0]!r} is not a traffic light of {net.name} "
                           f"(its traffic lights: {shown})")


def _from_folder(folder: Path, name: str) -> Scenario:
    meta_file = folder / NETWORK_YAML
    meta = read_network_yaml(meta_file)

    def files(key: str) -> tuple[Path, ...]:
        value = getattr(meta, key)
        value = () if value is None else (value,) if isinstance(value, str) else value
        out = tuple((folder / v).resolve() for v in value)
        for v, f in zip(value, out):
            if not f.is_file():
                raise NetworkError(f"{meta_file}: {key}: file not found: {v}" + ("" if Path(v).is_absolute()
                                                                             else f" (in {folder})"))
        return out

    (net,) = files("net")
    demand = files("demand")
    additional = files("additional")
    if meta.signals is not None:
        _check_signals(meta_file, meta.signals, net, additional)
    begin, duration = _window(meta.begin, meta.end, meta.duration, str(meta_file))
    return Scenario(
        name=name, net_file=net, route_files=files("routes"), additional_files=additional,
        demand_file=demand[0] if demand else None, begin=begin, duration=duration,
    )


def _from_sumocfg(cfg: Path) -> Scenario:
    try:
        root = ET.parse(cfg).getroot()
    except ET.ParseError as exc:
        raise NetworkError(f"{cfg}: malformed XML ({exc})") from None

    def value(tag: str) -> str | None:
        el = root.find(f".//{tag}")
        if el is None:
            return None
        return el.get("value", el.get("v"))

    def paths(tag: str) -> tuple[Path, ...]:
        raw = value(tag)
        out = tuple((cfg.parent / p.strip()).resolve() for p in raw.split(",") if p.strip()) if raw else ()
        for p in out:
            if not p.is_file():
                raise NetworkError(f"{cfg}: {tag} not found: {p}")
        return out

    def seconds(tag: str) -> float | None:
        raw = value(tag)
        if raw is None or not raw.strip():
            return None
        try:
            return parse_seconds(raw, tag)
        except ConfigError as exc:
            raise ConfigError(f"{cfg}: {exc}") from None

    nets = paths("net-file")
    if not nets:
        raise NetworkError(f"{cfg}: no net-file")
    end = seconds("end")
    begin, duration = _window(seconds("begin"), end if end is None or end >= 0 else None, None, str(cfg))
    options = {}
    for tag, key in (("max-depart-delay", "max_depart_delay"), ("time-to-teleport", "time_to_teleport")):
        v = seconds(tag)
        if v is not None:
            options[key] = v
    return Scenario(
        name=cfg.name.removesuffix(".sumocfg"), net_file=nets[0], route_files=paths("route-files"),
        additional_files=paths("additional-files"), begin=begin, duration=duration, **options,
    )
