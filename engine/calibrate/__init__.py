"""Calibration: demand that reproduces measured counts, checked with the GEH statistic.

``calibrate(counts_file, network, out)`` reads counts (CSV or SUMO XML, see
:mod:`engine.calibrate.counts`), samples routes with SUMO's routeSampler.py,
simulates the result and writes a scenario folder plus a GEH report.
"""

from engine.calibrate.counts import Count, CountSet, read_counts
from engine.calibrate.geh import ACCEPT_SHARE, GEH_OK, geh, hourly
from engine.calibrate.pipeline import Calibration, calibrate

__all__ = ["ACCEPT_SHARE", "GEH_OK", "Calibration", "Count", "CountSet", "calibrate", "geh", "hourly",
           "read_counts"]
