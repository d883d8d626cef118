"""Confidence intervals over seeds: Student-t, exact for the small n a benchmark has.

SciPy is not a dependency, so the t quantile is found by bisection on the
closed-form Student-t distribution for integer degrees of freedom
(Abramowitz & Stegun 26.7.3-4).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def _t_two_sided_mass(t: float, df: int) -> float:
    """P(|T| < t) for Student-t with ``df`` degrees of freedom."""
    theta = math.atan(t / math.sqrt(df))
    s, c2 = math.sin(theta), math.cos(theta) ** 2
    if df % 2 == 0:
        term, total = 1.0, 1.0
        for k in range(1, df // 2):
            term *= c2 * (2 * k - 1) / (2 * k)
            total += term
        return s * total
    if df == 1:
        return 2.0 * theta / math.pi
    term, total = math.cos(theta), math.cos(theta)
    for k in range(1, (df - 1) // 2):
        term *= c2 * (2 * k) / (2 * k + 1)
        total += term
    return 2.0 / math.pi * (theta + s * total)


def t_quantile(df: int, level: float = 0.95) -> float:
    """Two-sided critical value t such that P(|T| < t) = ``level``."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    lo, hi = 0.0, 1.0
    while _t_two_sided_mass(hi, df) < level:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if _t_two_sided_mass(mid, df) < level:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12:
            break
    return 0.5 * (lo + hi)


@dataclass(frozen=True)
class Estimate:
    """A mean with the half-width of its confidence interval (NaN when n < 2)."""

    mean: float
    half_width: float
    n: int

    @property
    def low(self) -> float:
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        return self.mean + self.half_width

    @property
    def excludes_zero(self) -> bool:
        return self.n >= 2 and (self.low > 0 or self.high < 0)


def mean_ci(values: Sequence[float], level: float = 0.95) -> Estimate:
    """Mean and t-interval of independent replications (one value per seed)."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    n = int(x.size)
    if n == 0:
        return Estimate(math.nan, math.nan, 0)
    if n == 1:
        return Estimate(float(x[0]), math.nan, 1)
    sd = float(x.std(ddof=1))
    return Estimate(float(x.mean()), t_quantile(n - 1, level) * sd / math.sqrt(n), n)


def paired_difference(values: dict[int, float], baseline: dict[int, float],
                      level: float = 0.95) -> tuple[Estimate, float]:
    """Mean of (value - baseline) over the seeds both have, its t-interval, and the change in %.

    Pairing by seed removes the demand noise both runs share (common random
    numbers), so the interval is much tighter than comparing two means.
    """
    seeds = sorted(s for s in values if s in baseline
                   and not math.isnan(values[s]) and not math.isnan(baseline[s]))
    diff = mean_ci([values[s] - baseline[s] for s in seeds], level)
    base = float(np.mean([baseline[s] for s in seeds])) if seeds else math.nan
    pct = 100.0 * diff.mean / base if seeds and base != 0 else math.nan
    return diff, pct
