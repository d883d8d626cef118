"""Two-way green bands along a corridor, and the offsets that make them widest.

Time is taken modulo the common cycle ``C``. A signal's coordinated green is the
part of its cycle in which every arterial through link of one direction is
green; shifted by its offset it is a set of arcs of the circle. A vehicle that
passes the first signal at time ``t`` and drives at the progression speed
passes signal ``i`` at ``t + T_i``, so the forward band is the intersection over
signals of (green_i + offset_i - T_i): its widest arc is the band width. The
backward band is the same, measured from the last signal. Offsets are found by
coordinate ascent over whole seconds from several starts (simultaneous,
forward-ideal, backward-ideal and random), exact for the given greens.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from engine.plan.corridor import Corridor, Intervals, link_green
from engine.plan.model import SignalTiming, program_of
from engine.signals import Intersection


# ----------------------------------------------------------------------------- arcs of a circle

def shift(arcs: Intervals, by: float, cycle: float) -> Intervals:
    """``arcs`` moved by ``by`` seconds, as sorted intervals within [0, cycle)."""
    out: Intervals = []
    for a, b in arcs:
        length = b - a
        if length >= cycle - 1e-9:
            return [(0.0, cycle)]
        s = (a + by) % cycle
        if s + length <= cycle + 1e-9:
            out.append((s, min(s + length, cycle)))
        else:
            out.append((s, cycle))
            out.append((0.0, s + length - cycle))
    return _merge(sorted(out))


def _merge(arcs: Intervals) -> Intervals:
    out: Intervals = []
    for a, b in arcs:
        if b - a <= 1e-9:
            continue
        if out and a <= out[-1][1] + 1e-9:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def intersect(x: Intervals, y: Intervals) -> Intervals:
    """Intersection of two sorted interval lists."""
    out: Intervals = []
    i = j = 0
    while i < len(x) and j < len(y):
        a, b = max(x[i][0], y[j][0]), min(x[i][1], y[j][1])
        if b > a + 1e-9:
            out.append((a, b))
        if x[i][1] < y[j][1]:
            i += 1
        else:
            j += 1
    return out


def widest(arcs: Intervals, cycle: float) -> tuple[float, float]:
    """(width, start) of the widest arc, joining pieces that meet across ``cycle`` -> 0."""
    if not arcs:
        return 0.0, 0.0
    if len(arcs) == 1 and arcs[0][1] - arcs[0][0] >= cycle - 1e-9:
        return cycle, 0.0
    pieces = list(arcs)
    if len(pieces) > 1 and pieces[0][0] <= 1e-9 and pieces[-1][1] >= cycle - 1e-9:
        last = pieces.pop()
        first = pieces.pop(0)
        pieces.append((last[0], first[1] + cycle))
    width, start = max(((b - a, a) for a, b in pieces), key=lambda p: (p[0], -p[1]))
    return width, start % cycle


# ----------------------------------------------------------------------------- bands

@dataclass(frozen=True)
class Bands:
    """Green bands of one period: width in seconds and where they start."""

    forward: float
    backward: float
    forward_start: float  # s in the cycle when the band's front passes the first signal
    backward_start: float  # s in the cycle when the band's front passes the last signal

    @property
    def total(self) -> float:
        return self.forward + self.backward


def corridor_greens(corridor: Corridor, intersections: Mapping[str, Intersection],
                    greens: Mapping[str, Sequence[float]]) -> tuple[list[Intervals], list[Intervals]]:
    """Coordinated green arcs of every corridor signal in its own program time (forward, backward)."""
    fw, bw = [], []
    for i, sid in enumerate(corridor.signals):
        program = program_of(intersections[sid], SignalTiming(sid, 0.0, tuple(greens[sid])))
        fw.append(link_green(program, corridor.forward_links[i]))
        bw.append(link_green(program, corridor.backward_links[i]))
    return fw, bw


def band_widths(corridor: Corridor, green_fw: Sequence[Intervals], green_bw: Sequence[Intervals],
                offsets: Sequence[float], cycle: float) -> Bands:
    """Forward and backward band of the corridor for these offsets."""
    tf, tb = corridor.arrival_forward(), corridor.arrival_backward()
    sf = _band_set(green_fw, offsets, tf, cycle)
    sb = _band_set(green_bw, offsets, tb, cycle)
    (wf, f0), (wb, b0) = widest(sf, cycle), widest(sb, cycle)
    return Bands(wf, wb, f0, b0)


def _band_set(greens: Sequence[Intervals], offsets: Sequence[float], travel: Sequence[float],
              cycle: float, skip: int = -1) -> Intervals:
    out: Intervals = [(0.0, cycle)]
    for i, g in enumerate(greens):
        if i == skip:
            continue
        out = intersect(out, shift(g, offsets[i] - travel[i], cycle))
        if not out:
            break
    return out


def best_offsets(corridor: Corridor, green_fw: Sequence[Intervals], green_bw: Sequence[Intervals],
                 cycle: float, weights: tuple[float, float] = (1.0, 1.0), seed: int = 0,
                 restarts: int = 6) -> tuple[list[float], Bands]:
    """Whole-second offsets (first signal at 0) maximising the weighted two-way band."""
    n = corridor.n
    c = int(round(cycle))
    tf, tb = corridor.arrival_forward(), corridor.arrival_backward()
    wf, wb = weights

    def value(offsets: Sequence[float]) -> float:
        bands = band_widths(corridor, green_fw, green_bw, offsets, cycle)
        return wf * bands.forward + wb * bands.backward

    def start_of(g: Intervals) -> float:
        return g[0][0] if g else 0.0

    starts = [[0.0] * n,
              [round(tf[i] - start_of(green_fw[i]) + start_of(green_fw[0])) % c for i in range(n)],
              [round(tb[i] - tb[0] - start_of(green_bw[i]) + start_of(green_bw[0])) % c for i in range(n)]]
    rng = random.Random(seed)
    starts += [[0.0] + [float(rng.randrange(c)) for _ in range(n - 1)] for _ in range(restarts)]
    best: tuple[float, list[float]] | None = None
    for start in starts:
        offsets = [float(o) for o in start]
        offsets[0] = 0.0
        current = value(offsets)
        improved = True
        while improved and n > 1:
            improved = False
            for i in range(1, n):
                rest_f = _band_set(green_fw, offsets, tf, cycle, skip=i)
                rest_b = _band_set(green_bw, offsets, tb, cycle, skip=i)
                best_o, best_v = offsets[i], current
                for o in range(c):
                    vf = widest(intersect(rest_f, shift(green_fw[i], o - tf[i], cycle)), cycle)[0]
                    vb = widest(intersect(rest_b, shift(green_bw[i], o - tb[i], cycle)), cycle)[0]
                    v = wf * vf + wb * vb
                    if v > best_v + 1e-9:
                        best_o, best_v = float(o), v
                if best_o != offsets[i]:
                    offsets[i], current, improved = best_o, best_v, True
        if best is None or current > best[0] + 1e-9:
            best = (current, list(offsets))
    assert best is not None
    return best[1], band_widths(corridor, green_fw, green_bw, best[1], cycle)


def link_offsets(corridor: Corridor, green_fw: Sequence[Intervals], green_bw: Sequence[Intervals],
                 cycle: float, weights: tuple[float, float] = (1.0, 1.0)) -> tuple[list[float], Bands]:
    """Whole-second offsets maximising each link's own two-way overlap (partial progression).

    Where no band runs through the whole corridor, platoons can still pass
    pairs of neighbours. The green overlap of a link depends only on the
    difference of its two offsets, so each link's difference is chosen
    independently (exactly); within a plateau of equal overlap its middle.
    """
    c = int(round(cycle))
    wf, wb = weights
    offsets = [0.0]
    for i in range(corridor.n - 1):
        tf, tb = corridor.forward_times[i], corridor.backward_times[i]
        values = []
        for d in range(c):
            f = intersect(shift(green_fw[i], tf, cycle), shift(green_fw[i + 1], d, cycle))
            b = intersect(shift(green_bw[i + 1], d + tb, cycle), shift(green_bw[i], 0.0, cycle))
            values.append(wf * sum(y - x for x, y in f) + wb * sum(y - x for x, y in b))
        top = max(values)
        best = [d for d in range(c) if values[d] >= top - 1e-9]
        runs: list[list[int]] = []  # plateaus of the best value, joined across c -> 0
        for d in best:
            if runs and d == runs[-1][-1] + 1:
                runs[-1].append(d)
            else:
                runs.append([d])
        if len(runs) > 1 and runs[0][0] == 0 and runs[-1][-1] == c - 1:
            runs[0] = runs.pop() + runs[0]
        plateau = max(runs, key=len)
        offsets.append(float((offsets[-1] + plateau[len(plateau) // 2]) % c))
    return offsets, band_widths(corridor, green_fw, green_bw, offsets, cycle)


def green_wave_offsets(corridor: Corridor, intersections: Mapping[str, Intersection],
                       greens: Mapping[str, Sequence[float]], cycle: float,
                       weights: tuple[float, float] = (1.0, 1.0), seed: int = 0,
                       mode: str = "band") -> tuple[dict[str, float], Bands]:
    """Offsets of the corridor's signals and the bands they give.

    ``mode`` "band": the widest two-way band through the whole corridor;
    "links": each link's own two-way overlap (see :func:`link_offsets`).
    """
    fw, bw = corridor_greens(corridor, intersections, greens)
    if mode == "links":
        offsets, bands = link_offsets(corridor, fw, bw, cycle, weights)
    else:
        offsets, bands = best_offsets(corridor, fw, bw, cycle, weights, seed)
    return dict(zip(corridor.signals, offsets)), bands
