"""A scenario: a network, a demand and simulation options, turned into SUMO's arguments.

Three kinds of input are one concept here:

* an embedded network by name (``chongqing``), or any folder holding a
  ``network.yaml`` (a calibrated twin written by ``cqsignal calibrate`` is one);
  demand comes from a period-of-day definition or from route files;
* a user's ``.sumocfg``;
* a user's ``.net.xml`` plus route files.
"""

from __future__ import annotations

import dataclasses
import hashlib
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from engine.errors import ConfigError, NetworkError

DEFAULT_NETWORK = "chongqing"
DEFAULT_PERIOD = "am_peak"
DEFAULT_DURATION_S = 3600.0
# Vehicles that cannot enter within this many seconds are dropped (and charged
# this wait as delay), so that a bad policy cannot grow an unbounded backlog.
DEFAULT_MAX_DEPART_DELAY_S = 300.0


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
    max_depart_delay: float = DEFAULT_MAX_DEPART_DELAY_S
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
    ) -> "Scenario":
        """Resolve ``network`` (a name or a path) into a scenario."""
        base = _resolve(network)
        if routes:
            missing = [str(r) for r in routes if not Path(r).is_file()]
            if missing:
                raise ConfigError(f"--routes: file not found: {missing[0]}")
            base = dataclasses.replace(base, route_files=tuple(Path(r).resolve() for r in routes),
                                       demand_file=None)
        if base.demand_file is not None:
            from engine.demand import PERIODS

            period = period or DEFAULT_PERIOD
            if period not in PERIODS:
                raise ConfigError(f"unknown period '{period}' (choose from {', '.join(PERIODS)})")
        elif period is not None:
            raise ConfigError(
                f"period '{period}' given, but network '{base.name}' has fixed routes and no "
                "period-of-day demand"
            )
        elif not base.route_files:
            raise ConfigError(f"network '{base.name}' has no demand: give route files with --routes")
        return base.with_options(period=period, seed=seed, scale=scale, duration=duration)

    @classmethod
    def of_network(cls, network: str | Path = DEFAULT_NETWORK) -> "Scenario":
        """The network alone (no demand checks): enough to read its signals."""
        return _resolve(network)

    def with_options(self, **changes) -> "Scenario":
        """A copy with some options changed (None leaves one as it is), validated."""
        changes = {k: v for k, v in changes.items() if v is not None}
        out = dataclasses.replace(self, **changes)
        if out.duration <= 0:
            raise ConfigError(f"duration must be positive, got {out.duration:g}")
        if out.scale <= 0:
            raise ConfigError(f"scale must be positive, got {out.scale:g}")
        if out.seed < 0:
            raise ConfigError(f"seed must be >= 0, got {out.seed}")
        return out

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
        out = workdir / f"{self.period}_s{self.seed}_x{self.scale:g}_{self.duration:g}.rou.xml"
        if not out.is_file():
            write_routes(demand, self.net_file, self.period, self.seed, self.scale, self.duration, out)
        return (out,)

    def sumo_args(self, workdir: Path, tripinfo: Path | None = None,
                  statistics: Path | None = None) -> list[str]:
        """Command-line options (no binary) for this scenario."""
        routes = self.prepare_routes(workdir)
        args = [
            "--net-file", str(self.net_file),
            "--begin", f"{self.begin:g}", "--end", f"{self.end:g}",
            "--seed", str(self.seed),
            "--max-depart-delay", f"{self.max_depart_delay:g}",
            "--time-to-teleport", "300",
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
            args += ["--statistic-output", str(statistics)]
        return args + list(self.extra_args)

    def fingerprint(self) -> str:
        """Hash of the network's signals and lanes: models trained here match only here."""
        from engine.signals import read_intersections

        h = hashlib.sha256()
        for tid, ix in read_intersections(self.net_file).items():
            h.update(tid.encode())
            for ph in ix.phases:
                h.update(ph.state.encode())
            for lane in ix.in_lanes + ix.out_lanes:
                h.update(lane.encode())
        return h.hexdigest()[:16]

    def describe(self) -> str:
        demand = f"period {self.period}" if self.period else f"{len(self.route_files)} route file(s)"
        return (f"{self.name}: {demand}, seed {self.seed}, scale {self.scale:g}, "
                f"{self.duration:g} s")


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


def _from_folder(folder: Path, name: str) -> Scenario:
    meta_file = folder / "network.yaml"
    try:
        meta = yaml.safe_load(meta_file.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise NetworkError(f"{meta_file}: unreadable ({exc.__class__.__name__})") from None
    if not isinstance(meta, dict) or "net" not in meta:
        raise NetworkError(f"{meta_file}: missing field 'net'")

    def files(key: str) -> tuple[Path, ...]:
        value = meta.get(key) or []
        value = [value] if isinstance(value, str) else value
        out = tuple((folder / v).resolve() for v in value)
        for f in out:
            if not f.is_file():
                raise NetworkError(f"{meta_file}: {key} file not found: {f.name}")
        return out

    (net,) = files("net")
    demand = files("demand")
    duration = float(meta.get("duration", DEFAULT_DURATION_S))
    return Scenario(
        name=name, net_file=net, route_files=files("routes"), additional_files=files("additional"),
        demand_file=demand[0] if demand else None, duration=duration,
    )


def _from_sumocfg(cfg: Path) -> Scenario:
    try:
        root = ET.parse(cfg).getroot()
    except ET.ParseError as exc:
        raise NetworkError(f"{cfg}: malformed XML ({exc})") from None

    def value(tag: str) -> str | None:
        el = root.find(f".//{tag}")
        return el.get("value") if el is not None else None

    def paths(tag: str) -> tuple[Path, ...]:
        raw = value(tag)
        out = tuple((cfg.parent / p.strip()).resolve() for p in raw.split(",") if p.strip()) if raw else ()
        for p in out:
            if not p.is_file():
                raise NetworkError(f"{cfg}: {tag} not found: {p}")
        return out

    nets = paths("net-file")
    if not nets:
        raise NetworkError(f"{cfg}: no net-file")
    begin = float(value("begin") or 0)
    end = value("end")
    duration = float(end) - begin if end else DEFAULT_DURATION_S
    return Scenario(
        name=cfg.name.removesuffix(".sumocfg"), net_file=nets[0], route_files=paths("route-files"),
        additional_files=paths("additional-files"), begin=begin, duration=duration,
    )
