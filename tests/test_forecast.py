"""Flow forecasts (engine.twin.forecast) on series with a known answer."""

from __future__ import annotations

import numpy as np
import pytest

from engine.errors import ConfigError
from engine.twin.forecast import (BIAS_T, HORIZONS_S, accuracy, forecast, forecast_all, profile_bias_t,
                                   rolling_forecasts, smoothed_profile)


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
    np.testing.assert_allclose(f.mean, prof[12:18])  # the profile as given (an expected flow)
    counted = forecast(dead, prof, steps=6, counted_profile=True)  # a profile counted on one day: smoothed
    np.testing.assert_allclose(counted.mean, smoothed_profile(prof)[12:18])
    gap = np.concatenate([prof[:11], [np.nan]])
    assert "missing" in forecast(gap, prof, steps=6).fallback
    early = forecast(prof[:2], prof, steps=6)
    assert early.method == "profile" and "fewer than" in early.fallback
    inner_gap = prof[:12].copy()
    inner_gap[5] = np.nan  # a gap inside the history is filled, not fatal
    assert forecast(inner_gap, prof, steps=6).fallback is None


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


def test_a_day_like_the_profile_keeps_the_profile():
    """Counts that scatter around the profile without a bias: the ratio model stays out, so the
    forecast is the (smoothed) profile's (it would only chase the noise), and the record says why."""
    rng = np.random.default_rng(5)
    prof = peak_profile()
    for seen in range(8, 30, 3):
        actual = prof * (1 + 0.08 * rng.standard_normal(len(prof)))
        f = forecast(actual[:seen], prof, steps=6, counted_profile=True)
        assert f.method == "profile" and f.fallback is None
        assert abs(f.bias_t) < BIAS_T
        np.testing.assert_allclose(f.mean, smoothed_profile(prof)[seen:seen + 6])
        exact = forecast(actual[:seen], prof, steps=6)  # an expected profile is kept as it is
        np.testing.assert_allclose(exact.mean, prof[seen:seen + 6])
        plain = forecast(actual[:seen], prof, steps=6, method="profile")  # the baseline: the profile as given
        np.testing.assert_allclose(plain.mean, prof[seen:seen + 6])


def test_the_smoothed_profile_is_a_centred_mean_with_held_ends():
    prof = np.array([300.0, 600.0, 900.0, 600.0, 300.0])
    np.testing.assert_allclose(smoothed_profile(prof), [400.0, 600.0, 700.0, 600.0, 400.0])
    np.testing.assert_allclose(smoothed_profile(prof, width=1), prof)
    assert smoothed_profile(np.array([])).shape == (0,)


def test_smoothing_a_one_day_profile_brings_it_closer_to_the_days_expected_flow():
    """A profile counted on one day is the expected flow plus Poisson noise; smoothing it over
    15 min removes most of the noise and little of the shape (5-min counts of about 50-100)."""
    rng = np.random.default_rng(7)
    expected = peak_profile()
    errors = {"raw": [], "smoothed": []}
    for _ in range(50):
        counted = rng.poisson(expected / 12.0) * 12.0  # veh per 5 min -> veh/h
        errors["raw"].append(np.abs(counted - expected).mean())
        errors["smoothed"].append(np.abs(smoothed_profile(counted) - expected).mean())
    assert np.mean(errors["smoothed"]) < 0.7 * np.mean(errors["raw"])


def test_the_bias_statistic_of_a_known_shift():
    """Relative errors alternating +-0.1 around +0.2 on the last six intervals: the differences
    give a noise of sd(diff)/sqrt(2), and t = 0.2 / (noise / sqrt(6))."""
    prof = np.full(12, 1000.0)
    e = np.array([0.1, -0.1] * 3 + [0.3, 0.1] * 3)
    t = profile_bias_t(prof * (1 + e), prof)
    noise = np.std(np.diff(e), ddof=1) / np.sqrt(2)
    assert t == pytest.approx(0.2 / (noise / np.sqrt(6)))
    assert profile_bias_t(prof[:2], prof[:2]) == 0.0  # too short to say


def test_a_surge_every_loop_shares_is_seen_in_the_pooled_counts():
    """10 % more at 40 loops, each with 8 % noise: no single loop proves it, the pooled counts do,
    and then every loop's forecast follows its ratio (about 1.1 x the profile ahead)."""
    rng = np.random.default_rng(6)
    prof = peak_profile()
    seen = 14
    observed = {f"d{i}": 1.1 * prof[:seen] * (1 + 0.08 * rng.standard_normal(seen)) for i in range(40)}
    alone = [forecast(y, prof, steps=6) for y in observed.values()]
    assert sum(f.method == "ets" for f in alone) < 20  # most single loops stay with the profile
    pooled = forecast_all(observed, {k: prof for k in observed}, steps=6)
    assert all(f.method == "ets" for f in pooled.values())
    ratio = np.mean([f.mean / prof[seen:seen + 6] for f in pooled.values()])
    assert ratio == pytest.approx(1.1, abs=0.04)


def test_a_shift_at_one_loop_is_followed_there_only():
    """Demand moves to one loop (+60 %) while the other 39 see the profile: that loop's own test
    lets the ratio model in, the pooled counts do not move the others."""
    rng = np.random.default_rng(7)
    prof = peak_profile()
    seen = 14
    observed = {f"d{i}": prof[:seen] * (1 + 0.03 * rng.standard_normal(seen)) for i in range(40)}
    observed["d0"] = observed["d0"] * np.where(np.arange(seen) >= 6, 1.6, 1.0)
    out = forecast_all(observed, {k: prof for k in observed}, steps=6)
    assert out["d0"].method == "ets" and out["d0"].mean[0] > 1.4 * prof[seen]
    assert all(f.method == "profile" for k, f in out.items() if k != "d0")


def test_the_pooled_statistic_needs_the_same_intervals_everywhere():
    from engine.twin.forecast import pooled_bias_t

    prof = np.full(12, 1000.0)
    with pytest.raises(ConfigError, match="same intervals"):
        pooled_bias_t({"a": (prof, prof), "b": (prof[4:], prof[4:])})
    with pytest.raises(ConfigError, match="same intervals"):
        forecast_all({"a": prof, "b": prof[4:]}, {"a": prof.repeat(2), "b": prof.repeat(2)}, steps=3)
    assert pooled_bias_t({}) == 0.0 and pooled_bias_t({"a": (np.array([]), np.array([]))}) == 0.0
    # counts exactly 1.3 x the profile, without noise: a certain bias
    assert profile_bias_t(1.3 * prof, prof) == np.inf
    assert profile_bias_t(prof, prof) == 0.0


@pytest.mark.parametrize("kwargs, match", [
    ({"step_s": 0}, "step_s"),
    ({"level": "80"}, "level"),
    ({"pooled_t": float("nan")}, "pooled_t"),
    ({"observed": None}, "numbers|one series"),
    ({"observed": ["a"]}, "numbers"),
    ({"observed": np.ones((2, 3))}, "one series"),
])
def test_wrong_types_are_one_line_errors(kwargs, match):
    prof = peak_profile()
    args = {"observed": prof[:10], "profile": prof, "steps": 6, **kwargs}
    with pytest.raises(ConfigError, match=match):
        forecast(**args)


def test_rolling_forecasts_are_what_a_live_feed_would_have_given():
    """Issued after interval k, a rolling forecast equals forecast_all on the first k intervals; near
    the profile's end it looks only as far as the profile goes."""
    rng = np.random.default_rng(8)
    prof = peak_profile(n=20)
    actual = {f"d{i}": 1.2 * prof * (1 + 0.05 * rng.standard_normal(20)) for i in range(5)}
    profiles = {k: prof for k in actual}
    fcs = rolling_forecasts(actual, profiles, [8, 17], steps=6)
    assert len(fcs) == 10
    first = forecast_all({k: y[:8] for k, y in actual.items()}, profiles, steps=6)
    np.testing.assert_allclose(fcs[0].mean, first["d0"].mean)
    assert {len(f.mean) for f in fcs[5:]} == {3}  # 17 counted, the profile ends at 20


def test_counts_equal_to_a_flat_profile_show_no_bias_after_smoothing():
    """Smoothing a flat profile leaves floating-point rounding (99.99999999999999); counts equal to
    the profile must still read as unbiased, not as a certain bias with a zero-width band."""
    prof = np.full(24, 100.0)
    f = forecast(prof[:12], prof, steps=6, counted_profile=True)
    assert f.method == "profile" and f.bias_t == 0.0
    np.testing.assert_allclose(f.mean, 100.0)
    with pytest.raises(ValueError, match="odd number"):
        smoothed_profile(prof, width=2)


def test_forecast_all_smooths_only_the_profiles_counted_on_one_day():
    """An expected profile (e.g. a demand model's entry flows) is kept as given; one counted on a single
    day is smoothed; the pooled bias test reads the profiles as given either way."""
    prof = peak_profile()
    y = prof[:12] * (1 + 0.05 * np.random.default_rng(8).standard_normal(12))  # no bias, some noise
    out = forecast_all({"entry": y, "loop": y}, {"entry": prof, "loop": prof}, 6, counted={"loop"})
    assert out["entry"].method == out["loop"].method == "profile"
    np.testing.assert_allclose(out["entry"].mean, prof[12:18])
    np.testing.assert_allclose(out["loop"].mean, smoothed_profile(prof)[12:18])
