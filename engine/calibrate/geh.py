"""The GEH statistic and the calibration summary built on it.

GEH compares two hourly flows M (simulated) and C (counted), in veh/h:

    GEH = sqrt(2 (M - C)^2 / (M + C))

It is defined on hourly flows, so a count over an interval of T seconds is first
scaled to veh/h (x 3600/T; a 15-minute count x 4). Computed on the raw 15-minute
numbers GEH would come out half as large and far too lenient. The usual
acceptance criterion is GEH < 5 for at least 85 % of counts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from engine.calibrate.counts import Count

GEH_OK = 5.0          # a count fits when its GEH is below this
ACCEPT_SHARE = 0.85   # the twin is accepted when this share of counts fits


def hourly(count: float, seconds: float) -> float:
    """veh/h of ``count`` vehicles seen in ``seconds``."""
    return count * 3600.0 / seconds


def geh(simulated_h: float, observed_h: float) -> float:
    """GEH of two hourly flows (veh/h); 0 when both are 0."""
    total = simulated_h + observed_h
    if total <= 0:
        return 0.0
    return math.sqrt(2.0 * (simulated_h - observed_h) ** 2 / total)


@dataclass(frozen=True)
class Comparison:
    """One count against what the twin produced at the same place and interval."""

    count: Count
    simulated: float  # vehicles in the interval
    routable: bool = True

    @property
    def observed_h(self) -> float:
        return hourly(self.count.value, self.count.length)

    @property
    def simulated_h(self) -> float:
        return hourly(self.simulated, self.count.length)

    @property
    def geh(self) -> float:
        return geh(self.simulated_h, self.observed_h)

    @property
    def ok(self) -> bool:
        return self.geh < GEH_OK


def compare(counts: Sequence[Count], simulated: Mapping[Count, float],
            unroutable: Sequence[Count] = ()) -> list[Comparison]:
    """A comparison per count (a count the twin never measured compares with 0)."""
    bad = set(unroutable)
    return [Comparison(c, float(simulated.get(c, 0.0)), c not in bad) for c in counts]


def r_squared(observed: Sequence[float], simulated: Sequence[float]) -> float:
    """Coefficient of determination of simulated against observed, about the 1:1 line.

    1 - sum((sim - obs)^2) / sum((obs - mean obs)^2): unlike the R^2 of a fitted
    regression line it also drops when the twin is biased (too much or too little traffic).
    """
    o, s = np.asarray(observed, float), np.asarray(simulated, float)
    ss_tot = float(((o - o.mean()) ** 2).sum()) if o.size else 0.0
    if ss_tot == 0.0:
        return float("nan")
    return 1.0 - float(((s - o) ** 2).sum()) / ss_tot


def fmt_r2(r2: float) -> str:
    """R² for humans: 'n/a' when the observed counts do not vary."""
    return "n/a" if math.isnan(r2) else f"{r2:.3f}"


@dataclass(frozen=True)
class Summary:
    """The figures a calibration report leads with."""

    n: int
    n_ok: int
    r2: float
    unroutable: int

    @property
    def share(self) -> float:
        return self.n_ok / self.n if self.n else 0.0

    @property
    def passed(self) -> bool:
        return self.n > 0 and self.share >= ACCEPT_SHARE

    def verdict(self) -> str:
        """One line: pass or fail, the share, the criterion."""
        word = "PASS" if self.passed else "FAIL"
        extra = f"; {self.unroutable} count(s) unroutable" if self.unroutable else ""
        return (f"{word}: {100 * self.share:.1f} % of {self.n} counts have GEH < {GEH_OK:g} "
                f"(acceptance: at least {100 * ACCEPT_SHARE:.0f} %), R² {fmt_r2(self.r2)}{extra}")


def summarise(rows: Sequence[Comparison]) -> Summary:
    return Summary(
        n=len(rows),
        n_ok=sum(r.ok for r in rows),
        r2=r_squared([r.observed_h for r in rows], [r.simulated_h for r in rows]),
        unroutable=sum(not r.routable for r in rows),
    )
