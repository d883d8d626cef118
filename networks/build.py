"""Build an embedded network from its plain-XML sources: ``python -m networks.build [name]``.

Two netconvert passes with pinned options. The first builds the net with guessed
signal programs only to learn, for every signal link index, its approach
(E-W or N-S axis) and turn (left, through, right). From that and the network's
``programs.yaml`` the builder writes ``<stem>.tll.xml`` (stages EW through, EW left,
NS through, NS left, each followed by yellow and all-red; right turns ``s`` =
right-turn-on-red whenever not green) and the second pass builds the final net
with it. A signal's ``lefts`` makes an axis' lefts permissive (``g``: green,
yield to oncoming traffic, in that axis' through stage, and no left stage):
``lefts: permissive`` for both axes, or ``lefts: {NS: permissive}`` for one.
netconvert's generated header comment (a timestamp and absolute paths) is
stripped so the output is byte-identical wherever it is built.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from engine.errors import ConfigError, NetworkError
from engine.network import Network, load_network
from engine.signals import Movement
from networks import available, manifest

# Pinned so a rebuild never depends on netconvert defaults changing.
NETCONVERT_OPTIONS: tuple[str, ...] = (
    "--proj.utm", "true",              # plain-XML x/y are WGS84 lon/lat
    "--no-turnarounds", "true",        # no U-turns anywhere (see README)
    "--default.lanewidth", "3.25",
    "--junctions.join", "false",
    "--geometry.remove", "false",      # keep the bay-start nodes where lanes are added
    "--junctions.corner-detail", "5",
    "--junctions.limit-turn-speed", "5.5",
    "--tls.default-type", "static",
    "--output.street-names", "false",
    "--output.original-names", "false",
    "--precision", "2",
    "--precision.geo", "6",
)
STAGES: tuple[tuple[str, str], ...] = (
    ("EW", "through"), ("EW", "left"), ("NS", "through"), ("NS", "left"))


def sumo_home() -> Path:
    """SUMO installation of the ``eclipse-sumo`` package (or ``$SUMO_HOME``)."""
    try:
        import sumo

        return Path(sumo.SUMO_HOME)
    except ImportError:
        if "SUMO_HOME" in os.environ:
            return Path(os.environ["SUMO_HOME"])
        raise NetworkError("SUMO not found: install eclipse-sumo or set SUMO_HOME") from None


def sumo_env() -> dict[str, str]:
    """Environment for SUMO tools: local XML schemas and the PROJ database for --proj.utm."""
    home = sumo_home()
    env = dict(os.environ, SUMO_HOME=str(home))
    proj = home / "data" / "proj"
    if proj.is_dir():
        env.setdefault("PROJ_DATA", str(proj))
        env.setdefault("PROJ_LIB", str(proj))
    return env


def _netconvert(args: list[str], out: Path) -> None:
    cmd = [str(sumo_home() / "bin" / "netconvert"), *NETCONVERT_OPTIONS, *args, "-o", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True, env=sumo_env())
    if res.returncode != 0:
        lines = [ln for ln in (res.stderr + res.stdout).splitlines() if ln.startswith("Error")]
        why = lines[0] if lines else f"exit status {res.returncode}"
        raise NetworkError(f"netconvert failed for {out.name}: {why}")


def _strip_header(path: Path) -> None:
    """Drop netconvert's leading comment (timestamp, absolute input paths)."""
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"\n*<!-- generated on .*?-->\n*", "\n\n", text, count=1, flags=re.S)
    path.write_text(text, encoding="utf-8")


def classify_links(network: Network, tls_id: str) -> list[tuple[str, str, Movement]]:
    """Per link index of ``tls_id``: (axis 'EW'/'NS', turn 'left'/'through'/'right', movement).

    The axis comes from where the approach edge starts relative to the junction, the
    turn from netconvert's direction (U-turns count as left). Links and directions
    are the network model's (:mod:`engine.network`).
    """
    ix = network.signals[tls_id]
    out: dict[int, tuple[str, str, Movement]] = {}
    for m in ix.movements:
        if m.crossing:
            raise NetworkError(f"{tls_id}: link {m.link} is a pedestrian crossing; programs.yaml has no "
                               "pedestrian stages")
        edge = network.net.getEdge(m.from_edge)
        jx, jy = edge.getToNode().getCoord()[:2]
        fx, fy = edge.getFromNode().getCoord()[:2]
        axis = "EW" if abs(fx - jx) >= abs(fy - jy) else "NS"
        d = m.direction.lower()
        turn = {"s": "through", "r": "right", "l": "left", "t": "left"}.get(d)
        if turn is None:
            raise NetworkError(f"{tls_id}: link {m.link} has unsupported direction {d!r}")
        out[m.link] = (axis, turn, m)
    missing = [i for i in range(len(out)) if i not in out]
    if missing:
        raise NetworkError(f"{tls_id}: no connection has link index {missing[0]}")
    return [out[i] for i in range(len(out))]


def stage_states(links: list[tuple[str, str, object]],
                 permissive: frozenset[str] = frozenset()) -> list[tuple[str, str]]:
    """Green states of the stages that have links: (stage name, state string).

    A right turn is green with its axis' through stage and ``s`` (stop, then go
    when clear) otherwise; every other link is red outside its stage. On an axis in
    ``permissive`` ('EW', 'NS') the lefts are ``g`` in the through stage and have no
    stage of their own.
    """
    states = []
    for axis, kind in STAGES:
        if kind == "left" and axis in permissive:
            continue
        kinds = (kind, "right") if kind == "through" else (kind,)
        yielding = ("left",) if kind == "through" and axis in permissive else ()
        served = [a == axis and t in kinds for a, t, _ in links]
        minor = [a == axis and t in yielding for a, t, _ in links]
        if any(served) or any(minor):
            state = "".join("G" if g else "g" if m else ("s" if t == "right" else "r")
                            for g, m, (_, t, _) in zip(served, minor, links))
            states.append((f"{axis}-{kind}", state))
    return states


def program_phases(stages: list[tuple[str, str]], greens: list[int], yellow: int,
                   all_red: int) -> list[tuple[int, str, str]]:
    """Full cycle (duration, state, name): each green, yellow on the links that end, all-red."""
    phases = []
    for k, (name, state) in enumerate(stages):
        nxt = stages[(k + 1) % len(stages)][1]
        # a link green in both stages stays green (yielding if either stage has it yielding)
        rest = "".join(("G" if c == n == "G" else "g") if c in "Gg" and n in "Gg"
                       else ("s" if "s" in (c, n) else "r") for c, n in zip(state, nxt))
        amber = "".join("y" if c in "Gg" and n not in "Gg" else r for c, n, r in zip(state, nxt, rest))
        phases += [(greens[k], state, name),
                   (yellow, amber, f"{name}:yellow"),
                   (all_red, rest, f"{name}:all-red")]
    return phases


def write_tll(network: Network, programs_file: Path, out: Path) -> None:
    """Write the signal programs (and the link indices they refer to) as a tll file."""
    spec = yaml.safe_load(programs_file.read_text(encoding="utf-8")) or {}
    try:
        cycle, yellow, all_red = int(spec["cycle"]), int(spec["yellow"]), int(spec["all_red"])
        signals = spec["signals"]
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{programs_file}: missing or bad key {exc}") from None
    lines = ['<?xml version="1.0" encoding="UTF-8"?>',
             "<!-- Generated by networks/build.py from programs.yaml; do not edit by hand. -->",
             "<tlLogics>"]
    conns = []
    for tls_id in network.signals:  # sorted by id
        if tls_id not in signals:
            raise ConfigError(f"{programs_file}: no program for signal {tls_id}")
        links = classify_links(network, tls_id)
        stages = stage_states(links, _permissive(programs_file, tls_id, signals[tls_id].get("lefts")))
        greens = [int(g) for g in signals[tls_id]["greens"]]
        present = {n for n, _ in stages}
        if len(greens) == len(STAGES):  # one per possible stage: keep those of the stages present
            greens = [g for g, (axis, kind) in zip(greens, STAGES) if f"{axis}-{kind}" in present]
        if len(greens) != len(stages) or sum(greens) + len(stages) * (yellow + all_red) != cycle:
            raise ConfigError(f"{programs_file}: signals.{tls_id}.greens must give {len(stages)} "
                              f"greens summing to {cycle - len(stages) * (yellow + all_red)} s")
        offset = int(signals[tls_id].get("offset", 0))
        lines.append(f'    <tlLogic id="{tls_id}" type="static" programID="0" offset="{offset}">')
        for dur, state, name in program_phases(stages, greens, yellow, all_red):
            lines.append(f'        <phase duration="{dur}" state="{state}" name="{name}"/>')
        lines.append("    </tlLogic>")
        for index, (_, _, m) in enumerate(links):
            conns.append(
                f'    <connection from="{m.from_edge}" to="{m.to_edge}" '
                f'fromLane="{_lane_index(m.from_lane)}" toLane="{_lane_index(m.to_lane)}" '
                f'tl="{tls_id}" linkIndex="{index}"/>')
    out.write_text("\n".join([*lines, *conns, "</tlLogics>", ""]), encoding="utf-8")


def _permissive(programs_file: Path, tls_id: str, lefts: object) -> frozenset[str]:
    """The axes whose lefts are permissive, from a signal's ``lefts`` (None: both protected)."""
    if lefts is None:
        return frozenset()
    if lefts in ("permissive", "protected"):
        lefts = {"EW": lefts, "NS": lefts}
    if not isinstance(lefts, dict) or not set(lefts) <= {"EW", "NS"} or \
            not set(lefts.values()) <= {"permissive", "protected"}:
        raise ConfigError(f"{programs_file}: signals.{tls_id}.lefts must be permissive, protected or "
                          f"a mapping of EW/NS to those, got {lefts!r}")
    return frozenset(axis for axis, kind in lefts.items() if kind == "permissive")


def _lane_index(lane_id: str) -> int:
    return int(lane_id.rsplit("_", 1)[1])


def foe_matrices(net_file: Path) -> dict[str, list[list[bool]]]:
    """Per signal, ``foes[i][j]`` over its link indices: the junction's right-of-way matrix.

    From the network model (:attr:`engine.signals.Intersection.foes`: links whose
    paths cross or merge, from the junctions' request tables).
    """
    result = {}
    for tls_id, ix in load_network(net_file).signals.items():
        n = ix.n_links
        foes = [[False] * n for _ in range(n)]
        for a, b in ix.foes:
            if a < n and b < n:
                foes[a][b] = foes[b][a] = True
        result[tls_id] = foes
    return result


def program_problems(net_file: Path) -> list[str]:
    """Safety problems of every static program in ``net_file`` (empty when safe).

    Checks that no two foe links are both ``G`` in a phase, and that whenever a
    link loses ``G``/``g`` it shows ``y`` and then a phase without any green or
    yellow (all-red, right-on-red ``s`` allowed) comes before the next green.
    """
    network = load_network(net_file)
    foes = foe_matrices(net_file)
    problems = []
    for tls_id in network.signals:
        for prog in network.net.getTLS(tls_id).getPrograms().values():
            states = [p.state for p in prog.getPhases()]
            problems += _state_problems(tls_id, states, foes[tls_id])
    return problems


def _state_problems(tls_id: str, states: list[str], foes: list[list[bool]]) -> list[str]:
    problems = []
    for k, s in enumerate(states):
        green = [i for i, c in enumerate(s) if c == "G"]
        for a in green:
            for b in green:
                if a < b and b < len(foes) and foes[a][b]:
                    problems.append(f"{tls_id} phase {k}: links {a} and {b} are foes, both G")
        nxt = states[(k + 1) % len(states)]
        lost = [i for i, (c, n) in enumerate(zip(s, nxt)) if c in "Gg" and n not in "Gg"]
        if any(nxt[i] != "y" for i in lost):
            problems.append(f"{tls_id} phase {k}: green ends without yellow")
        if "y" in s and any(c in "Gg" and s[i] not in "Gg" for i, c in enumerate(nxt)):
            problems.append(f"{tls_id} phase {k}: yellow goes straight to a new green")
    return problems


def build(name: str = "chongqing", out_dir: Path | None = None) -> Path:
    """Rebuild network ``name``: tll file and net into ``out_dir`` (default: its own folder)."""
    info = manifest(name)
    net_path = Path(info["net"])
    src = net_path.parent
    stem = net_path.name.removesuffix(".net.xml")
    out_dir = Path(out_dir) if out_dir is not None else src
    out_dir.mkdir(parents=True, exist_ok=True)
    inputs = ["-n", str(src / f"{stem}.nod.xml"), "-e", str(src / f"{stem}.edg.xml")]
    if (src / f"{stem}.con.xml").exists():
        inputs += ["-x", str(src / f"{stem}.con.xml")]
    tll = out_dir / f"{stem}.tll.xml"
    final = out_dir / net_path.name
    with tempfile.TemporaryDirectory() as tmp:
        first = Path(tmp) / "first.net.xml"
        _netconvert(inputs, first)
        write_tll(load_network(first), src / "programs.yaml", tll)
    _netconvert([*inputs, "--tllogic-files", str(tll)], final)
    _strip_header(final)
    problems = program_problems(final)
    if problems:
        raise NetworkError(f"{final}: unsafe signal program: {problems[0]}")
    return final


def main(argv: list[str] | None = None) -> int:
    """Command line: rebuild one or all embedded networks."""
    parser = argparse.ArgumentParser(prog="python -m networks.build",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"networks to build (default: {available()})")
    parser.add_argument("--out", type=Path, help="write here instead of the network's folder")
    args = parser.parse_args(argv)
    try:
        for name in args.names or available():
            print(build(name, args.out))
    except (ConfigError, NetworkError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
