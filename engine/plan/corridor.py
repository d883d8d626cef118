"""The coordinated corridor: signals in order, link travel times and the arterial's through links.

Read from the network: the link from one signal to the next is the shortest
edge path between them (both directions), its travel time is its length over
the progression speed (a given speed, or each edge's limit times a factor),
and a signal's arterial through links are the movements that continue along
that path. The green bands and the time-space diagram are drawn from this.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from engine.errors import ConfigError, NetworkError
from engine.network import load_network
from engine.signals import GREEN, Intersection

Intervals = list[tuple[float, float]]


@dataclass(frozen=True)
class Corridor:
    """Signals along a route; index 0 is the forward direction's first signal."""

    signals: tuple[str, ...]
    positions: tuple[float, ...]  # m along the forward direction, first stop line at 0
    forward_times: tuple[float, ...]  # s from signal i to i + 1 (n - 1 values)
    backward_times: tuple[float, ...]  # s from signal i + 1 to i
    forward_links: tuple[tuple[int, ...], ...]  # per signal: links of the forward through movement
    backward_links: tuple[tuple[int, ...], ...]
    forward_edges: tuple[tuple[str, ...], ...]  # edge path from signal i to i + 1
    backward_edges: tuple[tuple[str, ...], ...]  # edge path from signal i + 1 to i

    @property
    def n(self) -> int:
        return len(self.signals)

    def arrival_forward(self) -> list[float]:
        """Travel time from the first signal to each signal (forward)."""
        out = [0.0]
        for t in self.forward_times:
            out.append(out[-1] + t)
        return out

    def arrival_backward(self) -> list[float]:
        """Travel time from the last signal to each signal (backward)."""
        out = [0.0] * self.n
        for i in range(self.n - 2, -1, -1):
            out[i] = out[i + 1] + self.backward_times[i]
        return out

    def with_speed(self, net_file: Path, speed_kmh: float | None, speed_factor: float) -> Corridor:
        """The same corridor with travel times for another progression speed."""
        net = _net(str(net_file))
        fw = tuple(_travel_time(net, p, speed_kmh, speed_factor) for p in self.forward_edges)
        bw = tuple(_travel_time(net, p, speed_kmh, speed_factor) for p in self.backward_edges)
        return Corridor(self.signals, self.positions, fw, bw, self.forward_links, self.backward_links,
                        self.forward_edges, self.backward_edges)


VCLASS = "passenger"  # the corridor is driven by cars (never along sidewalks and crossings)


def _net(net_file: str | Path):
    """The road graph of the network model (read once per process)."""
    return load_network(net_file).net


def _travel_time(net, edges: Sequence[str], speed_kmh: float | None, factor: float) -> float:
    total = 0.0
    for e in edges:
        edge = net.getEdge(e)
        v = speed_kmh / 3.6 if speed_kmh else edge.getSpeed() * factor
        total += edge.getLength() / v
    return total


def _path(net, a: Intersection, b: Intersection) -> tuple[str, ...]:
    """Shortest edge path leaving signal ``a`` and entering signal ``b``."""
    outs = sorted({m.to_edge for m in a.movements if not m.crossing})
    ins = sorted({m.from_edge for m in b.movements if not m.crossing})
    best: tuple[float, tuple[str, ...]] | None = None
    for o in outs:
        for i in ins:
            edges, _ = net.getShortestPath(net.getEdge(o), net.getEdge(i), vClass=VCLASS)
            if not edges:
                continue
            ids = tuple(e.getID() for e in edges)
            length = sum(e.getLength() for e in edges)
            if best is None or length < best[0]:
                best = (length, ids)
    if best is None:
        raise NetworkError(f"no road from signal {a.id} to signal {b.id}: they cannot form a corridor")
    return best[1]


def _through_links(ix: Intersection, in_edge: str | None, out_edge: str | None) -> tuple[int, ...]:
    links = [m.link for m in ix.movements if not m.crossing
             and (in_edge is None or m.from_edge == in_edge) and (out_edge is None or m.to_edge == out_edge)
             and (in_edge is not None and out_edge is not None or m.direction == "s")]
    if not links:
        raise NetworkError(f"signal {ix.id}: no through movement along the corridor "
                           f"(from {in_edge or '?'} to {out_edge or '?'})")
    return tuple(sorted(set(links)))


def corridor_order(ids: Iterable[str], signals: Sequence[str]) -> list[str]:
    """``ids`` with the corridor's ``signals`` first, in corridor order, then the others by id."""
    rank = {sid: k for k, sid in enumerate(signals)}
    return sorted(ids, key=lambda s: (rank.get(s, len(rank)), s))


def build_corridor(net_file: Path, intersections: Mapping[str, Intersection], signals: Sequence[str],
                   speed_kmh: float | None = None, speed_factor: float = 1.0) -> Corridor:
    """The corridor through ``signals`` (in order) of ``net_file``."""
    unknown = [s for s in signals if s not in intersections]
    if unknown:
        raise ConfigError(f"corridor.signals: {unknown[0]!r} is not a signal of {Path(net_file).name}")
    if len(signals) < 1 or len(set(signals)) != len(signals):
        raise ConfigError("corridor.signals: need distinct signals")
    net = _net(str(net_file))
    ixs = [intersections[s] for s in signals]
    fwd = tuple(_path(net, ixs[i], ixs[i + 1]) for i in range(len(ixs) - 1))
    bwd = tuple(_path(net, ixs[i + 1], ixs[i]) for i in range(len(ixs) - 1))
    positions = [0.0]
    for p in fwd:
        positions.append(positions[-1] + sum(net.getEdge(e).getLength() for e in p))
    n = len(ixs)
    f_links = tuple(_through_links(ixs[i], fwd[i - 1][-1] if i > 0 else None, fwd[i][0] if i < n - 1 else None)
                    for i in range(n))
    b_links = tuple(_through_links(ixs[i], bwd[i][-1] if i < n - 1 else None, bwd[i - 1][0] if i > 0 else None)
                    for i in range(n))
    fw = tuple(_travel_time(net, p, speed_kmh, speed_factor) for p in fwd)
    bw = tuple(_travel_time(net, p, speed_kmh, speed_factor) for p in bwd)
    return Corridor(tuple(signals), tuple(positions), fw, bw, f_links, b_links, fwd, bwd)


def link_green(program: Sequence[tuple[str, float]], links: Sequence[int]) -> Intervals:
    """Intervals of the cycle (program time, from phase 0's start) when every one of ``links`` is green."""
    out: Intervals = []
    t = 0.0
    for state, dur in program:
        if all(state[L] in GREEN for L in links):
            if out and abs(out[-1][1] - t) < 1e-9:
                out[-1] = (out[-1][0], t + dur)
            else:
                out.append((t, t + dur))
        t += dur
    return out


def coordinated_phases(ix: Intersection, links: Sequence[int]) -> tuple[int, ...]:
    """Green phases of ``ix`` that show every one of ``links`` green."""
    return tuple(k for k, ph in enumerate(ix.phases) if all(ph.state[L] in GREEN for L in links))
