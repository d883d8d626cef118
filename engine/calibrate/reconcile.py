"""Make counts consistent with each other before routeSampler samples routes.

Real counts disagree: an edge count and the turning movements leaving it never
add up exactly, and every route passes several noisy counts. routeSampler's
sampling never lets a count overflow, so with inconsistent counts it stops
early and the demand comes out systematically low (about 10 % on the corridor
with 5 % noise). Here each interval's counts are replaced by the nearest counts
that some non-negative route flows reproduce exactly: route flows x >= 0
minimise sum_i (A x - b)_i^2 / max(b_i, 1), i.e. least squares in units close to
GEH, and the fitted counts A x go to routeSampler. The report always compares
with the original counts.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from engine.calibrate.counts import Count

Route = tuple[str, ...]
SWEEPS = 300


def passes(counts: Sequence[Count], routes: Sequence[Route]) -> np.ndarray:
    """0/1 matrix: does route j pass the location of count i?"""
    a = np.zeros((len(counts), len(routes)))
    for j, r in enumerate(routes):
        edges, turns = set(r), set(zip(r, r[1:]))
        for i, c in enumerate(counts):
            a[i, j] = (c.edge in edges) if c.to_edge is None else ((c.edge, c.to_edge) in turns)
    return a


def nnls(a: np.ndarray, b: np.ndarray, sweeps: int = SWEEPS) -> np.ndarray:
    """Non-negative least squares min ||a x - b||, x >= 0, by cyclic coordinate descent."""
    x = np.zeros(a.shape[1])
    norms = (a * a).sum(axis=0)
    cols = np.flatnonzero(norms > 0)
    r = b.astype(float).copy()  # residual b - a x
    for _ in range(sweeps):
        change = 0.0
        for j in cols:
            step = max(-x[j], (a[:, j] @ r) / norms[j])
            if step != 0.0:
                x[j] += step
                r -= step * a[:, j]
                change = max(change, abs(step))
        if change < 1e-6:
            break
    return x


def reconcile(counts: Sequence[Count], routes: Sequence[Route]) -> dict[Count, float] | None:
    """Consistent counts (vehicles) per count, or None when intervals of different
    locations overlap without being equal (then there is no per-interval system)."""
    groups: dict[tuple[float, float], list[Count]] = {}
    for c in counts:
        groups.setdefault((c.begin, c.end), []).append(c)
    spans = sorted(groups)
    if any(nxt[0] < cur[1] for cur, nxt in zip(spans, spans[1:])):
        return None
    out: dict[Count, float] = {}
    for span in spans:
        rows = groups[span]
        a = passes(rows, routes)
        b = np.array([c.value for c in rows], float)
        w = 1.0 / np.sqrt(np.maximum(b, 1.0))
        x = nnls(a * w[:, None], b * w)
        fitted = a @ x
        out.update({c: float(v) for c, v in zip(rows, fitted)})
    return out
