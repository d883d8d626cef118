"""A corpus of small SUMO networks that the tests build themselves (issue 14).

Each entry stands for a structure real networks have and cqsignal must run
safely: protected lefts with all-red, pedestrian crossings, joined signals,
several programs per signal, flashing signals, a ramp meter, programs that begin
with a clearance, fractional clearances, ``o``/``s``/``u`` states, shared and
unused link indices, approach lanes shorter than a car, and protected-permissive
lefts. Every network is written here as plain XML (nodes, edges, connections,
``tlLogic``) and built with ``netconvert`` (or ``netgenerate`` for
:func:`random_network`), with a small route file of flows (a few hundred veh/h,
a few hundred seconds), so that a run takes seconds.

``CORPUS[name].build(folder) -> (net_file, route_file, extra_additional_files)``.
Nothing here imports the engine except :func:`engine.sim.sumo_binary` (where the
SUMO binaries are), so the corpus stays a fixed reference while the engine changes.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import sumolib

from engine.sim import sumo_binary

ROUTE_END_S = 400  # flows end here; tests simulate about this long
VTYPE = '  <vType id="car" length="5" minGap="2.5" accel="2.6" decel="4.5" sigma="0.5"/>\n'

Built = tuple[Path, Path, tuple[Path, ...]]


@dataclass(frozen=True)
class Entry:
    name: str
    description: str  # the real-world structure it stands for
    build: Callable[[Path], Built]


# -- writing plain XML and running netconvert ------------------------------------------------------
def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _nodes(nodes: Sequence[tuple]) -> str:
    """nodes: (id, x, y, type[, extra attributes])."""
    lines = ["<nodes>"]
    for n in nodes:
        nid, x, y, typ = n[:4]
        extra = f" {n[4]}" if len(n) > 4 else ""
        lines.append(f'  <node id="{nid}" x="{x}" y="{y}" type="{typ}"{extra}/>')
    return "\n".join(lines + ["</nodes>\n"])


def _edges(edges: Sequence[tuple]) -> str:
    """edges: (from, to, lanes[, speed m/s[, extra attributes]]); id is from+to."""
    lines = ["<edges>"]
    for e in edges:
        a, b, lanes = e[:3]
        speed = e[3] if len(e) > 3 else 13.89
        extra = f" {e[4]}" if len(e) > 4 else ""
        lines.append(f'  <edge id="{a}{b}" from="{a}" to="{b}" numLanes="{lanes}" speed="{speed}"{extra}/>')
    return "\n".join(lines + ["</edges>\n"])


def _connections(conns: Sequence[tuple]) -> str:
    """connections: (from edge, to edge, from lane, to lane[, extra attributes])."""
    lines = ["<connections>"]
    for c in conns:
        a, b, fl, tl = c[:4]
        extra = f" {c[4]}" if len(c) > 4 else ""
        lines.append(f'  <connection from="{a}" to="{b}" fromLane="{fl}" toLane="{tl}"{extra}/>')
    return "\n".join(lines + ["</connections>\n"])


def tll_xml(programs: Sequence[tuple[str, str, float, Sequence[tuple[float, str]]]]) -> str:
    """programs: (tls id, programID, offset, [(duration, state), ...])."""
    lines = ["<tlLogics>"]
    for tid, pid, offset, phases in programs:
        lines.append(f'  <tlLogic id="{tid}" type="static" programID="{pid}" offset="{offset:g}">')
        lines += [f'    <phase duration="{d:g}" state="{s}"/>' for d, s in phases]
        lines.append("  </tlLogic>")
    return "\n".join(lines + ["</tlLogics>\n"])


def netconvert(folder: Path, name: str, nodes: str | None = None, edges: str | None = None,
               connections: str | None = None, tll: str | None = None, options: Sequence[str] = (),
               sumo_net: Path | None = None) -> Path:
    """Write the plain files under ``folder`` and build ``folder/name.net.xml``."""
    folder.mkdir(parents=True, exist_ok=True)
    net = folder / f"{name}.net.xml"
    cmd = [sumo_binary("netconvert"), "--no-turnarounds", "true", "--offset.disable-normalization", "true",
           "--output.street-names", "false", "-o", str(net)]
    if sumo_net is not None:
        cmd += ["-s", str(sumo_net)]
    for suffix, flag, text in ((".nod.xml", "-n", nodes), (".edg.xml", "-e", edges),
                               (".con.xml", "-x", connections), (".tll.xml", "-i", tll)):
        if text is not None:
            cmd += [flag, str(_write(folder / f"{name}{suffix}", text))]
    cmd += list(options)
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0 or not net.is_file():
        raise RuntimeError(f"netconvert failed for {name}: {res.stderr.strip()[:2000]}")
    return net


def link_table(net_file: Path) -> dict[str, list[tuple[int, str, str, str]]]:
    """Per signal: (link index, from edge, to edge, direction) of every controlled connection.

    A crossing shows as (index, crossing id, crossing id, "c").
    """
    net = sumolib.net.readNet(str(net_file), withPrograms=True, withPedestrianConnections=True)
    out: dict[str, list[tuple[int, str, str, str]]] = {}
    for tls in net.getTrafficLights():
        rows = set()
        for in_lane, out_lane, index in tls.getConnections():
            fe, te = in_lane.getEdge(), out_lane.getEdge()
            if te.getFunction() == "crossing":
                rows.add((index, te.getID(), te.getID(), "c"))
                continue
            direction = "?"
            for c in fe.getOutgoing().get(te, []):
                if c.getFromLane() == in_lane and c.getToLane() == out_lane:
                    direction = c.getDirection()
            rows.add((index, fe.getID(), te.getID(), direction))
        out[tls.getID()] = sorted(rows)
    return out


def running_programs(net_file: Path, additional: Sequence[Path] = ()) -> dict[str, tuple[str, list]]:
    """What SUMO itself runs at t=0 per signal: (programID, [(duration, state), ...]).

    Asked of SUMO (libsumo, one step, in a subprocess so it never meets a
    simulation the caller has open), not derived, so it is the reference for
    "the program SUMO runs".
    """
    code = (
        "import sys, json, libsumo as s\n"
        "args = ['-n', sys.argv[1], '--no-step-log', 'true', '--end', '1']\n"
        "if sys.argv[2]: args += ['-a', sys.argv[2]]\n"
        "s.start(['sumo'] + args)\n"
        "out = {}\n"
        "for t in s.trafficlight.getIDList():\n"
        "    pid = s.trafficlight.getProgram(t)\n"
        "    (lg,) = [g for g in s.trafficlight.getAllProgramLogics(t) if g.programID == pid]\n"
        "    out[t] = [pid, [[p.duration, p.state] for p in lg.phases]]\n"
        "s.close()\n"
        "print(json.dumps(out))\n"
    )
    res = subprocess.run([sys.executable, "-c", code, str(net_file), ",".join(map(str, additional))],
                         capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(res.stderr.strip()[-2000:])
    raw = json.loads(res.stdout.strip().splitlines()[-1])
    return {t: (pid, [(float(d), s) for d, s in phases]) for t, (pid, phases) in raw.items()}


def programs_in_file(net_file: Path) -> dict[str, dict[str, tuple[float, list[tuple[float, str]]]]]:
    """Every program in the net file: {tls: {programID: (offset, [(duration, state), ...])}}."""
    net = sumolib.net.readNet(str(net_file), withPrograms=True)
    return {t.getID(): {pid: (float(p.getOffset()), [(float(ph.duration), ph.state) for ph in p.getPhases()])
                        for pid, p in t.getPrograms().items()}
            for t in net.getTrafficLights()}


def sumo_run(net_file: Path, route_file: Path, additional: Sequence[Path] = (), end: float = ROUTE_END_S + 200,
             workdir: Path | None = None) -> dict[str, float]:
    """Run the ``sumo`` binary on the network's own programs to ``end``; raise on any SUMO error.

    Returns SUMO's statistics (loaded, inserted, running, waiting, teleports,
    collisions, arrived persons where there are any).
    """
    workdir = workdir or net_file.parent
    stats = workdir / f"{net_file.name.split('.')[0]}.stats.xml"
    cmd = [sumo_binary("sumo"), "-n", str(net_file), "-r", str(route_file), "--end", f"{end:g}",
           "--no-step-log", "true", "--statistic-output", str(stats), "--time-to-teleport", "300",
           "--collision.action", "warn"]
    if additional:
        cmd += ["-a", ",".join(map(str, additional))]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0 or "Error" in res.stderr:
        raise RuntimeError(f"sumo failed on {net_file.name}: {res.stderr.strip()[:2000]}")
    import xml.etree.ElementTree as ET

    root = ET.parse(stats).getroot()
    out: dict[str, float] = {}
    for tag in ("vehicles", "teleports", "safety", "persons"):
        el = root.find(tag)
        if el is not None:
            out.update({f"{tag}.{k}": float(v) for k, v in el.attrib.items()})
    out["warnings"] = res.stderr.count("Warning")
    out["stderr"] = res.stderr  # type: ignore[assignment]
    return out


# -- routes -----------------------------------------------------------------------------------------
def flows(pairs: Sequence[tuple[str, str, float]], end: float = ROUTE_END_S, persons: str = "") -> str:
    """Vehicle flows (from edge, to edge, veh/h) routed by SUMO at insertion."""
    lines = ["<routes>", VTYPE.rstrip()]
    for k, (a, b, vph) in enumerate(pairs):
        lines.append(f'  <flow id="f{k}_{a}_{b}" type="car" begin="0" end="{end:g}" from="{a}" to="{b}" '
                     f'vehsPerHour="{vph:g}" departLane="best" departSpeed="max"/>')
    if persons:
        lines.append(persons.rstrip())
    return "\n".join(lines + ["</routes>\n"])


# 4-arm junction C with arms W, E (arterial) and S, N (cross street); fringe nodes 250 m out.
ARMS = {"W": (-250, 0), "E": (250, 0), "S": (0, -250), "N": (0, 250)}


def _cross_edges(art_lanes: int, cross_lanes: int, centre: str = "C", extra: str = "") -> list[tuple]:
    edges = []
    for arm, lanes in (("W", art_lanes), ("E", art_lanes), ("S", cross_lanes), ("N", cross_lanes)):
        edges.append((arm, centre, lanes, 13.89, extra))
        edges.append((centre, arm, lanes, 13.89, extra))
    return edges


def _cross_nodes(typ: str = "traffic_light", extra: str = "") -> list[tuple]:
    return [("C", 0, 0, typ, extra)] + [(a, x, y, "priority") for a, (x, y) in ARMS.items()]


def _cross_demand(art: float = 450, cross: float = 220, left: float = 80, right: float = 60) -> list[tuple]:
    """Through, left and right flows from every arm of the 4-arm junction."""
    opposite = {"W": "E", "E": "W", "S": "N", "N": "S"}
    left_of = {"W": "N", "E": "S", "S": "W", "N": "E"}  # driving on the right: W->C->N is a left
    right_of = {"W": "S", "E": "N", "S": "E", "N": "W"}
    out = []
    for arm in "WESN":
        through = art if arm in "WE" else cross
        out.append((f"{arm}C", f"C{opposite[arm]}", through))
        out.append((f"{arm}C", f"C{left_of[arm]}", left))
        out.append((f"{arm}C", f"C{right_of[arm]}", right))
    return out


def _route_file(folder: Path, name: str, text: str) -> Path:
    return _write(folder / f"{name}.rou.xml", text)


# -- 1. allred_lefts ---------------------------------------------------------------------------------
def build_allred_lefts(folder: Path) -> Built:
    """netconvert's own program with protected lefts (dedicated left lanes) and 2 s all-red."""
    name = "allred_lefts"
    conns = arterial_left_lanes()  # 3-lane arterial: lane 0 right + through, lane 1 through, lane 2 left only
    for arm, opp, left, right in (("S", "N", "W", "E"), ("N", "S", "E", "W")):
        # 2-lane cross street: lane 0 right + through, lane 1 through + left (permissive)
        conns += [(f"{arm}C", f"C{right}", 0, 0), (f"{arm}C", f"C{opp}", 0, 0), (f"{arm}C", f"C{opp}", 1, 1),
                  (f"{arm}C", f"C{left}", 1, 2)]
    net = netconvert(folder, name, _nodes(_cross_nodes()), _edges(_cross_edges(3, 2)), _connections(conns),
                     options=["--tls.allred.time", "2", "--tls.left-green.time", "8", "--tls.yellow.time", "3"])
    routes = _route_file(folder, name, flows(_cross_demand(art=500, cross=250, left=120)))
    return net, routes, ()


# -- programs written by hand, from the link table of a first build ----------------------------------
Rule = Callable[[int, str, str, str], str]  # (index, from edge, to edge, direction) -> state char


def state_of(links: Sequence[tuple[int, str, str, str]], rule: Rule, size: int | None = None,
             unused: str = "r") -> str:
    """A state string: ``rule`` for each link index; ``unused`` where no connection has that index."""
    size = size if size is not None else max(i for i, *_ in links) + 1
    chars = [unused] * size
    for index, a, b, d in links:
        chars[index] = rule(index, a, b, d)
    return "".join(chars)


def serve(arms: str, left: str = "g", right: str = "G", other: str = "r", crossing: str = "r") -> Rule:
    """Green for every movement from ``arms`` (lefts ``left``, rights ``right``), ``other`` elsewhere."""
    def rule(index: int, a: str, b: str, d: str) -> str:
        if d == "c":
            return crossing
        if a[0] not in arms:
            return other
        return left if d in "lL" else right if d in "rR" else "G"
    return rule


def to_yellow(state: str) -> str:
    return state.replace("G", "y").replace("g", "y")


def two_phase_program(links, green: float = 30, cross_green: float = 22, yellow: float = 3,
                      all_red: float = 2) -> list[tuple[float, str]]:
    """Arterial (W, E) then cross street (S, N), lefts permissive, yellow and all-red after each."""
    a, b = state_of(links, serve("WE")), state_of(links, serve("SN"))
    red = "r" * len(a)
    return [(green, a), (yellow, to_yellow(a)), (all_red, red), (cross_green, b), (yellow, to_yellow(b)),
            (all_red, red)]


def _hand_programmed(folder: Path, name: str, nodes: str, edges: str, make_programs,
                     connections: str | None = None, options: Sequence[str] = ()) -> Path:
    """Build once, read the link indices, write the programs ``make_programs(links)``, build again."""
    first = netconvert(folder / "first", name, nodes, edges, connections, options=options)
    links = link_table(first)
    return netconvert(folder, name, nodes, edges, connections, tll=tll_xml(make_programs(links)),
                      options=options)


# -- 2. pedestrian ------------------------------------------------------------------------------------
def _person_flows(walks: Sequence[tuple[str, str]], per_hour: float = 120, end: float = ROUTE_END_S) -> str:
    """Persons walking from near the junction end of one edge to near the start of another."""
    lines = []
    for k, (a, b) in enumerate(walks):
        lines += [f'  <personFlow id="p{k}_{a}_{b}" begin="0" end="{end:g}" personsPerHour="{per_hour:g}" '
                  f'departPos="-30">', f'    <walk from="{a}" to="{b}" arrivalPos="30"/>', "  </personFlow>"]
    return "\n".join(lines)


# walks that must cross an arm: along the W arm to the E arm and N to S, both ways
CROSSING_WALKS = (("WC", "CE"), ("EC", "CW"), ("NC", "CS"), ("SC", "CN"))
PED_OPTIONS = ("--sidewalks.guess", "true", "--crossings.guess", "true")


def build_pedestrian(folder: Path) -> Built:
    """netconvert's pedestrian program: crossings green with the parallel street, cleared before its yellow."""
    name = "pedestrian"
    net = netconvert(folder, name, _nodes(_cross_nodes()), _edges(_cross_edges(2, 1)),
                     options=[*PED_OPTIONS, "--tls.allred.time", "2"])
    routes = _route_file(folder, name, flows(_cross_demand(art=400, cross=200, left=60, right=80),
                                             persons=_person_flows(CROSSING_WALKS)))
    return net, routes, ()


# -- 3. exclusive_ped ---------------------------------------------------------------------------------
def build_exclusive_ped(folder: Path) -> Built:
    """A hand-written program whose third stage is an exclusive pedestrian (Barnes dance) phase."""
    name = "exclusive_ped"

    def programs(links):
        tid, rows = next(iter(links.items()))
        a = state_of(rows, serve("WE"))
        b = state_of(rows, serve("SN"))
        walk = state_of(rows, serve("", crossing="G"))
        red = "r" * len(a)
        return [(tid, "0", 0, [(28, a), (3, to_yellow(a)), (2, red), (20, b), (3, to_yellow(b)), (2, red),
                               (12, walk), (5, red)])]

    net = _hand_programmed(folder, name, _nodes(_cross_nodes()), _edges(_cross_edges(2, 1)), programs,
                           options=PED_OPTIONS)
    walks = CROSSING_WALKS + (("WC", "CN"), ("SC", "CW"))
    routes = _route_file(folder, name, flows(_cross_demand(art=350, cross=180, left=50, right=70),
                                             persons=_person_flows(walks, per_hour=150)))
    return net, routes, ()


# -- 4. joined ----------------------------------------------------------------------------------------
def build_joined(folder: Path) -> Built:
    """Two junctions 40 m apart on an arterial, joined by netconvert into one signal (--tls.join)."""
    name = "joined"
    nodes = [("J1", 0, 0, "traffic_light"), ("J2", 40, 0, "traffic_light"), ("W", -250, 0, "priority"),
             ("E", 290, 0, "priority"), ("N1", 0, 200, "priority"), ("S1", 0, -200, "priority"),
             ("N2", 40, 200, "priority"), ("S2", 40, -200, "priority")]
    edges = []
    for a, b, lanes in (("W", "J1", 2), ("J1", "J2", 2), ("J2", "E", 2), ("N1", "J1", 1), ("J1", "S1", 1),
                        ("S1", "J1", 1), ("J1", "N1", 1), ("N2", "J2", 1), ("J2", "S2", 1), ("S2", "J2", 1),
                        ("J2", "N2", 1)):
        edges.append((a, b, lanes))
        if {a, b} == {"W", "J1"} or {a, b} == {"J1", "J2"} or {a, b} == {"J2", "E"}:
            edges.append((b, a, lanes))
    edges = list(dict.fromkeys(edges))
    net = netconvert(folder, name, _nodes(nodes), _edges(edges),
                     options=["--tls.join", "true", "--tls.join-dist", "60", "--tls.allred.time", "2"])
    demand = [("WJ1", "J2E", 500), ("EJ2", "J1W", 450), ("N1J1", "J1S1", 150), ("S1J1", "J1N1", 120),
              ("N2J2", "J2S2", 140), ("S2J2", "J2N2", 130), ("WJ1", "J2N2", 60), ("EJ2", "J1S1", 60),
              ("N1J1", "J2E", 50), ("S2J2", "J1W", 50)]
    return net, _route_file(folder, name, flows(demand)), ()


# -- 5. two_programs ----------------------------------------------------------------------------------
def build_two_programs(folder: Path) -> Built:
    """One signal, two programs in the net: ``0`` flashing (all ``o``) and ``day`` (SUMO runs ``day``)."""
    name = "two_programs"

    def programs(links):
        tid, rows = next(iter(links.items()))
        day = two_phase_program(rows, green=30, cross_green=20)
        flash = [(60, "o" * len(day[0][1]))]
        return [(tid, "0", 0, flash), (tid, "day", 0, day)]

    net = _hand_programmed(folder, name, _nodes(_cross_nodes()), _edges(_cross_edges(2, 1)), programs)
    return net, _route_file(folder, name, flows(_cross_demand(art=400, cross=180))), ()


# -- 6. flash_beside ----------------------------------------------------------------------------------
def _two_junctions(cross_lanes: int = 1) -> tuple[str, str]:
    nodes = [("J1", 0, 0, "traffic_light"), ("J2", 300, 0, "traffic_light"), ("W", -250, 0, "priority"),
             ("E", 550, 0, "priority"), ("N1", 0, 200, "priority"), ("S1", 0, -200, "priority"),
             ("N2", 300, 200, "priority"), ("S2", 300, -200, "priority")]
    edges = []
    for a, b, lanes in (("W", "J1", 2), ("J1", "J2", 2), ("J2", "E", 2), ("N1", "J1", cross_lanes),
                        ("S1", "J1", cross_lanes), ("N2", "J2", cross_lanes), ("S2", "J2", cross_lanes)):
        edges += [(a, b, lanes), (b, a, lanes)]
    return _nodes(nodes), _edges(edges)


TWO_JUNCTION_DEMAND = [("WJ1", "J2E", 450), ("EJ2", "J1W", 400), ("N1J1", "J1S1", 150), ("S1J1", "J1N1", 120),
                       ("N2J2", "J2S2", 120), ("S2J2", "J2N2", 100), ("WJ1", "J1N1", 60), ("EJ2", "J2S2", 60),
                       ("N2J2", "J1W", 50), ("S1J1", "J2E", 50)]


def build_flash_beside(folder: Path) -> Built:
    """J1 runs a normal program; J2's only program flashes (all ``o``), as a signal out of service does."""
    name = "flash_beside"
    nodes, edges = _two_junctions()

    def programs(links):
        n2 = max(i for i, *_ in links["J2"]) + 1
        return [("J2", "0", 0, [(60, "o" * n2)])]

    net = _hand_programmed(folder, name, nodes, edges, programs, options=["--tls.allred.time", "2"])
    return net, _route_file(folder, name, flows(TWO_JUNCTION_DEMAND)), ()


# -- 7. ramp_meter ------------------------------------------------------------------------------------
def build_ramp_meter(folder: Path) -> Built:
    """A freeway on-ramp metered by a one-link signal (G 6 s, y 3 s, r 15 s) before the merge."""
    name = "ramp_meter"
    nodes = [("A", -700, 0, "priority"), ("M", 0, 0, "priority"), ("B", 350, 0, "priority"),
             ("Z", 900, 0, "priority"), ("R0", -450, -120, "priority"), ("RM", -120, -30, "traffic_light")]
    edges = [("A", "M", 2, 27.78), ("M", "B", 3, 27.78), ("B", "Z", 2, 27.78), ("R0", "RM", 1, 16.67),
             ("RM", "M", 1, 16.67)]
    conns = [("AM", "MB", 0, 1), ("AM", "MB", 1, 2), ("RMM", "MB", 0, 0)]
    tll = tll_xml([("RM", "0", 0, [(6, "G"), (3, "y"), (15, "r")])])
    net = netconvert(folder, name, _nodes(nodes), _edges(edges), _connections(conns), tll=tll)
    demand = [("AM", "BZ", 1500), ("R0RM", "BZ", 350)]
    return net, _route_file(folder, name, flows(demand)), ()


# -- 8. offset_yellow_first ---------------------------------------------------------------------------
def build_offset_yellow_first(folder: Path) -> Built:
    """A program whose first step is the cross street's yellow, then all-red, with offset 17 s."""
    name = "offset_yellow_first"

    def programs(links):
        tid, rows = next(iter(links.items()))
        steps = two_phase_program(rows, green=30, cross_green=22)
        return [(tid, "0", 17, steps[4:] + steps[:4])]  # begins: cross yellow, all-red, arterial green

    net = _hand_programmed(folder, name, _nodes(_cross_nodes()), _edges(_cross_edges(2, 1)), programs)
    return net, _route_file(folder, name, flows(_cross_demand(art=420, cross=200))), ()


# -- 9. fractional ------------------------------------------------------------------------------------
def build_fractional(folder: Path) -> Built:
    """netconvert's program with its yellow made 2.5 s and its all-red 1.5 s.

    netconvert takes only whole seconds for ``--tls.yellow.time`` and
    ``--tls.allred.time``, so its program is built first and re-timed.
    """
    name = "fractional"
    nodes, edges = _nodes(_cross_nodes()), _edges(_cross_edges(2, 2))
    options = ["--tls.yellow.time", "3", "--tls.allred.time", "2"]
    first = netconvert(folder / "first", name, nodes, edges, options=options)

    def retime(d: float, state: str) -> float:
        if any(c in "yY" for c in state):
            return 2.5
        return 1.5 if not any(c in "GgsuoO" for c in state) else d

    tll = tll_xml([(t, pid, offset, [(retime(d, st), st) for d, st in steps])
                   for t, progs in programs_in_file(first).items() for pid, (offset, steps) in progs.items()])
    net = netconvert(folder, name, nodes, edges, tll=tll, options=options)
    return net, _route_file(folder, name, flows(_cross_demand(art=420, cross=250))), ()


# -- 10. osu_states -----------------------------------------------------------------------------------
def build_osu_states(folder: Path) -> Built:
    """``u`` (red-yellow) before each green, ``s`` right turn on red after a stop, ``o`` a right turn that yields."""
    name = "osu_states"

    def programs(links):
        tid, rows = next(iter(links.items()))

        def stage(green_arms: str, before: bool = False, yellow: bool = False, red: bool = False) -> str:
            def rule(index, a, b, d):
                if a[0] in green_arms:
                    if red:
                        return "r"
                    if before:
                        return "u"  # red-yellow: get ready
                    if yellow:
                        return "y"
                    return "g" if d in "lL" else "G"
                if d in "rR" and not (red or before):
                    # beside the arterial's green the cross street's rights go after yielding (o);
                    # beside the cross street's green the arterial's rights go on red after a stop (s)
                    return "o" if green_arms == "WE" else "s"
                return "r"
            return state_of(rows, rule)

        steps = [(2, stage("WE", before=True)), (28, stage("WE")), (3, stage("WE", yellow=True)),
                 (2, stage("WE", red=True)), (2, stage("SN", before=True)), (20, stage("SN")),
                 (3, stage("SN", yellow=True)), (2, stage("SN", red=True))]
        return [(tid, "0", 0, steps)]

    net = _hand_programmed(folder, name, _nodes(_cross_nodes()), _edges(_cross_edges(2, 1)), programs)
    return net, _route_file(folder, name, flows(_cross_demand(art=400, cross=180, right=90))), ()


# -- 11. shared_links ---------------------------------------------------------------------------------
def build_shared_links(folder: Path) -> Built:
    """Connections sharing link indices (a lane's right and through on one signal head) and unused indices.

    Index 6 has no connection and stays red; index 7 lost its connection (as
    after an edit in netedit) but still shows the arterial's green, yellow and red.
    """
    name = "shared_links"
    idx = {  # (from, to, from lane, to lane): link index
        ("WC", "CS", 0, 0): 0, ("WC", "CE", 0, 0): 0, ("WC", "CE", 1, 1): 1, ("WC", "CN", 1, 0): 2,
        ("EC", "CN", 0, 0): 3, ("EC", "CW", 0, 0): 3, ("EC", "CW", 1, 1): 4, ("EC", "CS", 1, 0): 5,
        ("SC", "CE", 0, 0): 8, ("SC", "CN", 0, 0): 8, ("SC", "CW", 0, 1): 9,
        ("NC", "CW", 0, 0): 10, ("NC", "CS", 0, 0): 10, ("NC", "CE", 0, 1): 11,
    }
    conns = _connections([(a, b, fl, tl) for a, b, fl, tl in idx])
    #           0123456789AB
    a_green = "GGgGGgrGrrrr"
    b_green = "rrrrrrrrGgGg"
    steps = [(30, a_green), (3, to_yellow(a_green)), (2, "r" * 12), (22, b_green), (3, to_yellow(b_green)),
             (2, "r" * 12)]
    tll = tll_xml([("C", "0", 0, steps)]).replace("</tlLogics>", "".join(
        f'  <connection from="{a}" to="{b}" fromLane="{fl}" toLane="{tl}" tl="C" linkIndex="{i}"/>\n'
        for (a, b, fl, tl), i in idx.items()) + "</tlLogics>")
    net = netconvert(folder, name, _nodes(_cross_nodes()), _edges(_cross_edges(2, 1)), conns, tll=tll)
    return net, _route_file(folder, name, flows(_cross_demand(art=420, cross=180))), ()


# -- 12. short_approach -------------------------------------------------------------------------------
def build_short_approach(folder: Path) -> Built:
    """Arterial approaches whose last edge (a lane gained right before the junction) is about 1 m long.

    W2 -> W1 (300 m, 2 lanes) -> W0 (44 m, 2 lanes) -> C (3 lanes, ~1 m after the
    junction shape): netconvert splits an edge where the lane count changes, and
    the stop-line lane is shorter than a car.
    """
    name = "short_approach"
    # the junction of 3-lane arterial and 1-lane cross street reaches about 11.6 m from its centre
    x0 = SHORT_APPROACH_NODE_X
    nodes = [("C", 0, 0, "traffic_light"), ("W2", -x0 - 348, 0, "priority"), ("W1", -x0 - 48, 0, "priority"),
             ("W0", -x0, 0, "priority"), ("E2", x0 + 348, 0, "priority"), ("E1", x0 + 48, 0, "priority"),
             ("E0", x0, 0, "priority"), ("N", 0, 250, "priority"), ("S", 0, -250, "priority")]
    edges = [("W2", "W1", 2), ("W1", "W0", 2), ("W0", "C", 3), ("C", "W0", 2), ("W0", "W1", 2), ("W1", "W2", 2),
             ("E2", "E1", 2), ("E1", "E0", 2), ("E0", "C", 3), ("C", "E0", 2), ("E0", "E1", 2), ("E1", "E2", 2),
             ("N", "C", 1), ("C", "N", 1), ("S", "C", 1), ("C", "S", 1)]
    net = netconvert(folder, name, _nodes(nodes), _edges(edges),
                     options=["--tls.allred.time", "2", "--tls.left-green.time", "6"])
    demand = [("W2W1", "E0E1", 550), ("E2E1", "W0W1", 500), ("W2W1", "CN", 90), ("E2E1", "CS", 90),
              ("W2W1", "CS", 60), ("E2E1", "CN", 60), ("NC", "CS", 150), ("SC", "CN", 130), ("NC", "E0E1", 50),
              ("SC", "W0W1", 50)]
    return net, _route_file(folder, name, flows(demand)), ()


SHORT_APPROACH_NODE_X = 12.2


# -- 13. protected_permissive -------------------------------------------------------------------------
def arterial_left_lanes() -> list[tuple]:
    """Connections of the cross's 3-lane arterial arms (W, E): lane 0 right + through, lane 1 through,
    lane 2 left only (a left-turn bay); the cross street keeps netconvert's own."""
    conns = []
    for arm, opp, left, right in (("W", "E", "N", "S"), ("E", "W", "S", "N")):
        conns += [(f"{arm}C", f"C{right}", 0, 0), (f"{arm}C", f"C{opp}", 0, 0), (f"{arm}C", f"C{opp}", 1, 1),
                  (f"{arm}C", f"C{left}", 2, 1)]
    return conns


def build_protected_permissive(folder: Path) -> Built:
    """Leading protected lefts (G) that end in yellow and continue permissive (g) with the throughs."""
    name = "protected_permissive"
    conns = arterial_left_lanes()

    def programs(links):
        tid, rows = next(iter(links.items()))

        def lefts(c):
            return lambda i, a, b, d: c if a[0] in "WE" and d in "lL" else "r"

        lead = state_of(rows, lefts("G"))
        lead_y = state_of(rows, lefts("y"))
        art = state_of(rows, serve("WE"))  # lefts g: permissive
        cross = state_of(rows, serve("SN"))
        red = "r" * len(art)
        return [(tid, "0", 0, [(10, lead), (3, lead_y), (26, art), (3, to_yellow(art)), (2, red),
                               (20, cross), (3, to_yellow(cross)), (2, red)])]

    net = _hand_programmed(folder, name, _nodes(_cross_nodes()), _edges(_cross_edges(3, 2)), programs,
                           connections=_connections(conns))
    return net, _route_file(folder, name, flows(_cross_demand(art=450, cross=200, left=130))), ()


ENTRIES: list[Entry] = [
    Entry("allred_lefts", "4-arm junction, 3-lane arterial approaches with a dedicated left lane "
          "(netconvert makes protected lefts), 2-lane cross street, netconvert's program with 3 s yellow, "
          "2 s all-red and 8 s left greens", build_allred_lefts),
    Entry("pedestrian", "4-arm junction with sidewalks and zebra crossings guessed by netconvert and its "
          "pedestrian program (crossings green with the parallel street, red 5 s before its yellow), "
          "2 s all-red, person flows walking across", build_pedestrian),
    Entry("exclusive_ped", "4-arm junction with crossings and a hand-written program whose third stage "
          "is an exclusive pedestrian phase (every crossing green, every vehicle red)", build_exclusive_ped),
    Entry("joined", "two junctions 40 m apart on an arterial run by one signal (netconvert --tls.join)",
          build_joined),
    Entry("two_programs", "one signal with two programs in the net: '0' flashing (all o) and 'day' "
          "(what SUMO runs: the last loaded)", build_two_programs),
    Entry("flash_beside", "two signals 300 m apart: J1 normal, J2 only flashing (out of service)",
          build_flash_beside),
    Entry("ramp_meter", "freeway merge with a one-link on-ramp signal: G 6 s, y 3 s, r 15 s", build_ramp_meter),
    Entry("offset_yellow_first", "program beginning with a yellow step and an all-red step, offset 17 s",
          build_offset_yellow_first),
    Entry("fractional", "netconvert's program re-timed to 2.5 s yellow and 1.5 s all-red", build_fractional),
    Entry("osu_states", "program with u (red-yellow before each green), s (right turn on red after a stop) "
          "and o (a right turn that may go after yielding, a flashing arrow)", build_osu_states),
    Entry("shared_links", "connections sharing link indices and unused link indices (one never used, "
          "one whose connection was removed but keeps its states)", build_shared_links),
    Entry("short_approach", "arterial approaches whose stop-line lane is about 1 m long (a lane gained "
          "right before the junction), fed by a 44 m edge", build_short_approach),
    Entry("protected_permissive", "leading protected lefts (G) ending in yellow and continuing "
          "permissive (g) with the throughs: G -> y -> g", build_protected_permissive),
]
CORPUS: dict[str, Entry] = {e.name: e for e in ENTRIES}


# -- random networks for the property test ------------------------------------------------------------
def random_network(seed: int, folder: Path, end: float = ROUTE_END_S) -> Built:
    """A random small signalised network (netgenerate grid or spider) with random signal options.

    Yellow 2-4 s and all-red 0-3 s (fractional values included: netgenerate
    takes whole seconds, so those programs are re-timed), left-green 0 or 6 s,
    1-3 lanes, tls.layout opposites or incoming; flows between random fringe
    edges. Returns (net, routes, ()) and writes ``options.txt`` saying what was drawn.
    """
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    kind = rng.choice(["grid", "spider"])
    lanes = rng.randint(1, 3)
    yellow = rng.choice([2, 2.5, 3, 3.5, 4])
    all_red = rng.choice([0, 1, 1.5, 2, 2.5, 3])
    left_green = rng.choice([0, 6])
    layout = rng.choice(["opposites", "incoming"])
    turn_lanes = rng.choice([0, 1]) if lanes > 1 else 0
    cmd = [sumo_binary("netgenerate"), "--seed", str(seed), "--no-turnarounds", "true",
           "--default.lanenumber", str(lanes), "--tls.guess", "true", "--tls.layout", layout,
           "--tls.yellow.time", str(int(yellow)), "--tls.allred.time", str(int(all_red) or (1 if all_red else 0)),
           "--tls.left-green.time", str(left_green), "--turn-lanes", str(turn_lanes),
           "--default.speed", "13.89"]
    if kind == "grid":
        n = rng.randint(2, 3)
        cmd += ["--grid", "--grid.number", str(n), "--grid.length", str(rng.choice([150, 200, 250])),
                "--grid.attach-length", "150", "--default-junction-type", "traffic_light"]
    else:
        cmd += ["--spider", "--spider.arm-number", str(rng.randint(3, 5)), "--spider.circle-number", "2",
                "--spider.space-radius", str(rng.choice([150, 200])), "--spider.attach-length", "150",
                "--default-junction-type", "traffic_light"]
    raw = folder / "generated.net.xml"
    res = subprocess.run(cmd + ["-o", str(raw)], capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"netgenerate failed (seed {seed}): {res.stderr.strip()[:2000]}")
    net = folder / "random.net.xml"
    if float(yellow) != int(yellow) or all_red != int(all_red):
        def retime(d: float, state: str) -> float:
            if any(c in "yY" for c in state):
                return yellow
            return all_red if all_red and not any(c in "GgsuoO" for c in state) else d

        tll = tll_xml([(t, pid, offset, [(retime(d, st), st) for d, st in steps])
                       for t, progs in programs_in_file(raw).items() for pid, (offset, steps) in progs.items()])
        netconvert(folder, "random", tll=tll, sumo_net=raw)
    else:
        raw.replace(net)
    pairs = _random_flows(net, rng, end)
    routes = _route_file(folder, "random", flows(pairs, end=end))
    (folder / "options.txt").write_text(
        f"seed={seed} kind={kind} lanes={lanes} yellow={yellow} all_red={all_red} left_green={left_green} "
        f"layout={layout} turn_lanes={turn_lanes}\n")
    return net, routes, ()


def _random_flows(net_file: Path, rng: random.Random, end: float, n: int = 8) -> list[tuple[str, str, float]]:
    """``n`` flows between fringe edges that SUMO can route (80-200 veh/h each)."""
    net = sumolib.net.readNet(str(net_file))
    edges = [e for e in net.getEdges() if e.getFunction() == ""]
    sources = [e for e in edges if len(e.getFromNode().getIncoming()) <= 1 and len(e.getFromNode().getOutgoing()) == 1]
    sinks = [e for e in edges if len(e.getToNode().getOutgoing()) <= 1 and len(e.getToNode().getIncoming()) == 1]
    if not sources or not sinks:
        sources = sinks = edges
    sources.sort(key=lambda e: e.getID())
    sinks.sort(key=lambda e: e.getID())
    out: list[tuple[str, str, float]] = []
    for _ in range(200):
        if len(out) >= n:
            break
        a, b = rng.choice(sources), rng.choice(sinks)
        if a.getToNode() == b.getFromNode() and a.getFromNode() == b.getToNode():
            continue  # a U-turn
        path, _cost = net.getShortestPath(a, b)
        if path and len(path) >= 3:
            out.append((a.getID(), b.getID(), float(rng.randrange(80, 201, 10))))
    if not out:
        raise RuntimeError(f"{net_file}: no routable fringe pairs")
    return out
