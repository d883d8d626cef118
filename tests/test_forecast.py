"""Flow forecasts (engine.twin.forecast) on series with a known answer."""

from __future__ import annotations

import numpy as np
import pytest

from engine.errors import ConfigError
from engine.twin.forecast import HORIZONS_S, accuracy, forecast


def peak_profile(n: int = 48, base: float = 600.0, peak: float = 1200.0) -> np.ndarray:
    """A period's profile per 5 min: rising to a peak at the middle, then falling (veh/h)."""
    t = np.linspace(0, 1, n)
    return base + (peak - base) * np.exp(-((t - 0.5) / 0.18) ** 2)


def test_a_surge_above_the_profile_is_forecast_on_the_profiles_shape():
    """Demand 25 % above the profile from the start: the ratio model forecasts 1.25 x the profile
    ahead (the coming peak included), which neither the profile nor the last value does."""
    rng = np.random.default_rng(3)
    prof = peak_profile()
    actual = 1.25 * prof * (1 + 0.03 * rng.standard_normal(len(prof)))
    seen = 12  # one hour counted
    ets = forecast(actual[:seen], prof, steps=12, method="ets")
    truth = 1.25 * prof[seen:seen + 12]
    assert ets.fallback is None and ets.method == "ets"
    np.testing.assert_allclose(ets.mean, truth, rtol=0.06)
    assert np.all(ets.low <= truth) and np.all(truth <= ets.high)
    last = forecast(actual[:seen], prof, steps=12, method="last")
    plain = forecast(actual[:seen], prof, steps=12, method="profile")
    for other in (last, plain):
        assert np.abs(other.mean - truth).mean() > 2 * np.abs(ets.mean - truth).mean()


def test_accuracy_per_horizon_ranks_the_methods_on_a_surge():
    rng = np.random.default_rng(4)
    prof = peak_profile()
    actual = 1.25 * prof * (1 + 0.03 * rng.standard_normal(len(prof)))
    scores = {}
    for method in ("ets", "last", "profile"):
        fs = [forecast(actual[:k], prof, steps=12, method=method, location="d1") for k in range(7, 37)]
        scores[method] = accuracy(fs, {"d1": actual})
    for h in HORIZONS_S:
        assert scores["ets"][h]["n"] == 30
        assert scores["ets"][h]["mape"] < scores["profile"][h]["mape"]
        assert scores["ets"][h]["mape"] < scores["last"][h]["mape"]
    assert scores["profile"][900.0]["mape"] == pytest.approx(20.0, abs=2.0)  # 1 - 1/1.25


def test_untrustworthy_counts_fall_back_to_the_profile_and_say_why():
    prof = peak_profile()
    dead = np.concatenate([prof[:9], [0.0, 0.0, 0.0]])
    f = forecast(dead, prof, steps=6)
    assert f.method == "profile" and "dead detector" in f.fallback
    np.testing.assert_allclose(f.mean, prof[12:18])
    gap = np.concatenate([prof[:11], [np.nan]])
    assert "missing" in forecast(gap, prof, steps=6).fallback
    early = forecast(prof[:2], prof, steps=6)
    assert early.method == "profile" and "fewer than" in early.fallback
    inner_gap = prof[:12].copy()
    inner_gap[5] = np.nan  # a gap inside the history is filled, not fatal
    assert forecast(inner_gap, prof, steps=6).method == "ets"


def test_edge_cases_fall_back_with_a_reason():
    prof = peak_profile()
    empty = forecast([], prof, steps=4, method="last")
    assert empty.method == "profile" and "no interval counted" in empty.fallback
    np.testing.assert_allclose(empty.mean, prof[:4])
    flat = forecast([300.0] * 8, [0.0] * 12, steps=4)  # a profile without traffic: hold the counted level
    assert flat.method == "last" and "expects no traffic" in flat.fallback
    np.testing.assert_allclose(flat.mean, 300.0)
    assert forecast([300.0] * 8, prof, steps=0).mean.shape == (0,)


@pytest.mark.parametrize("kwargs, match", [
    ({"steps": -2}, "whole number >= 0"),
    ({"steps": 2.5}, "whole number >= 0"),
    ({"method": "arima"}, "choose from"),
    ({"level": 100.0}, "level"),
    ({"steps": 60}, "the profile covers"),
])
def test_bad_requests_are_one_line_errors(kwargs, match):
    prof = peak_profile()
    args = {"steps": 6, **kwargs}
    with pytest.raises(ConfigError, match=match):
        forecast(prof[:10], prof, **args)
