"""avatarv.eval.stats: Pearson r, bootstrap intervals, the paired bootstrap and the sign-flip test, under the
one NaN rule (non-finite pairs dropped first; fewer than 3 valid pairs → NaN)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import pearsonr

from avatarv.eval.stats import (
    MIN_VALID,
    bootstrap_ci,
    bootstrap_draws,
    paired_bootstrap,
    pearson,
    pearson_ci,
    percentile_interval,
    resample_indices,
    sign_flip_p,
)


def _correlated(n: int, rho: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    return x, rho * x + math.sqrt(1 - rho**2) * rng.normal(size=n)


# --- Pearson r ---------------------------------------------------------------------------------------------


def test_pearson_matches_numpy_and_scipy():
    assert pearson(np.array([1, 2, 3, 4, 5.0]), np.array([2, 4, 5, 4, 5.0])) == pytest.approx(math.sqrt(0.6), abs=1e-15)
    for seed, rho in ((0, 0.0), (1, 0.5), (2, -0.8)):
        x, y = _correlated(200, rho, seed)
        r = pearson(x, y)
        assert r == pytest.approx(np.corrcoef(x, y)[0, 1], abs=1e-12)
        assert r == pytest.approx(pearsonr(x, y).statistic, abs=1e-12)
    x, _ = _correlated(50, 0.0, 3)
    assert pearson(x, 3 * x - 2) == 1.0 and pearson(x, -x) == -1.0  # exact, never past ±1
    assert pearson(x, x**2) == pytest.approx(pearsonr(x, x**2).statistic, abs=1e-12)


def test_pearson_keeps_the_dtype_it_is_given():
    """float32 inputs (a torch tensor's numpy view) are computed in float32, as the probes always did."""
    x, y = (a.astype(np.float32) for a in _correlated(100, 0.4, 4))
    a, b = x - x.mean(), y - y.mean()
    assert pearson(x, y) == float((a * b).sum() / float(np.sqrt((a * a).sum() * (b * b).sum())))


# --- the NaN rule ------------------------------------------------------------------------------------------


def test_nan_rule_drops_pairs_with_a_missing_side():
    x, y = _correlated(30, 0.7, 5)
    xs, ys = x.copy(), y.copy()
    xs[[2, 7]] = np.nan
    ys[[7, 11]] = np.inf  # infinities are missing too
    keep = np.ones(30, bool)
    keep[[2, 7, 11]] = False
    assert pearson(xs, ys) == pearson(x[keep], y[keep])
    assert math.isfinite(pearson(xs, ys))
    assert bootstrap_ci(np.r_[x, np.nan, -np.inf]) == bootstrap_ci(x)
    assert sign_flip_p(np.r_[x, np.nan]) == sign_flip_p(x)


def test_nan_rule_fewer_than_three_valid_pairs_is_nan():
    assert MIN_VALID == 3
    x = np.array([1.0, 2.0, np.nan, 4.0])
    y = np.array([1.0, 3.0, 2.0, np.nan])
    assert math.isnan(pearson(x, y))  # 2 valid pairs: r would be ±1 by construction
    assert math.isfinite(pearson(np.r_[x, 5.0], np.r_[y, 6.0]))  # 3 valid pairs
    assert math.isnan(pearson(np.array([]), np.array([])))
    assert all(math.isnan(v) for v in bootstrap_ci(np.array([1.0, 2.0, np.nan])))
    assert all(math.isfinite(v) for v in bootstrap_ci(np.array([1.0, 2.0, 4.0])))
    assert math.isnan(sign_flip_p(np.array([1.0, 1.0, np.nan])))
    r, lo, hi = pearson_ci(x, y, boots=50)
    assert math.isnan(r) and math.isnan(lo) and math.isnan(hi)


def test_nan_rule_a_side_that_never_varies_is_nan():
    y = np.array([1.0, 2.0, 3.0, 5.0, 8.0, 13.0])
    assert math.isnan(pearson(np.zeros(6), y))
    # 0.1 six times: its mean is not exactly 0.1, so a centred formula alone would see rounding noise as signal
    assert np.full(6, 0.1).mean() != 0.1
    assert math.isnan(pearson(np.full(6, 0.1), y)) and math.isnan(pearson(y, np.full(6, 0.1)))


def test_paired_samples_must_align():
    with pytest.raises(ValueError):
        pearson(np.arange(4.0), np.arange(5.0))
    with pytest.raises(ValueError):
        paired_bootstrap(pearson, (np.arange(4.0), np.arange(4.0)), (np.arange(5.0), np.arange(5.0)))


# --- bootstrap intervals -----------------------------------------------------------------------------------


def test_resamples_are_numpys_seeded_draws():
    """The resampling order every benchmark shares (changing it changes every printed interval)."""
    assert np.array_equal(resample_indices(4, 2, 0), np.random.default_rng(0).integers(0, 4, (2, 4)))
    assert np.array_equal(resample_indices(4, 2, 0), [[3, 2, 2, 1], [1, 0, 0, 0]])
    assert resample_indices(0, 10, 0).shape == (0, 0)


def test_bootstrap_ci_brackets_the_mean_deterministically():
    x = np.linspace(0, 1, 50)
    lo, hi = bootstrap_ci(x)
    assert lo < 0.5 < hi and hi - lo < 0.25
    assert (lo, hi) == pytest.approx((0.4204081632653061, 0.5795918367346938), abs=1e-15)  # seed 0, pinned
    assert bootstrap_ci(x) == (lo, hi)
    assert bootstrap_ci(x, seed=1) != (lo, hi)
    assert bootstrap_ci(x, boots=500) != (lo, hi)


def test_bootstrap_ci_covers_the_true_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(11)
    covered = 0
    for trial in range(200):
        lo, hi = bootstrap_ci(rng.normal(0.3, 1.0, 40), boots=1000, seed=trial)
        covered += lo <= 0.3 <= hi
    assert 0.86 <= covered / 200 <= 0.99  # percentile bootstrap of n = 40: a little under 95 %


def test_pearson_ci_covers_the_true_r_and_narrows_with_more_cases():
    x, y = _correlated(400, 0.6, 6)
    r, lo, hi = pearson_ci(x, y, boots=1000, seed=0)
    assert lo < 0.6 < hi and lo < r < hi and hi - lo < 0.2
    assert pearson_ci(x, y, boots=1000, seed=0) == (r, lo, hi)
    _, lo40, hi40 = pearson_ci(x[:40], y[:40], boots=1000, seed=0)
    assert hi40 - lo40 > hi - lo


def test_an_interval_needs_95_percent_of_its_draws_defined():
    draws = np.r_[np.linspace(-1, 1, 95), np.full(5, np.nan)]
    assert percentile_interval(draws) == (float(np.percentile(draws[:95], 2.5)), float(np.percentile(draws[:95], 97.5)))
    assert all(math.isnan(v) for v in percentile_interval(np.r_[draws, np.nan]))
    assert percentile_interval(np.r_[draws, np.nan], min_defined=0.5)[0] == pytest.approx(-0.95)
    assert all(math.isnan(v) for v in percentile_interval(np.full(10, np.nan), min_defined=0.0))
    # one case of 20 moves: r exists only on the resamples that include it, so no interval (it would look certain)
    y = np.arange(20.0)
    x = (np.arange(20) == 0).astype(float)
    r, lo, hi = pearson_ci(x, y, boots=500)
    assert math.isfinite(r) and math.isnan(lo) and math.isnan(hi)


# --- paired bootstrap of a difference ----------------------------------------------------------------------


def test_paired_bootstrap_has_the_sign_of_the_constructed_difference():
    rng = np.random.default_rng(7)
    ref = rng.normal(size=30)
    follows = (2 * ref + 0.3 * rng.normal(size=30), ref)  # r ≈ 0.99
    ignores = (rng.normal(size=30), ref)  # r ≈ 0
    d, lo, hi = paired_bootstrap(pearson, follows, ignores, boots=1000)
    assert d > 0.6 and 0 < lo <= d <= hi
    d, lo, hi = paired_bootstrap(pearson, ignores, follows, boots=1000)
    assert d < -0.6 and lo <= d <= hi < 0
    assert paired_bootstrap(pearson, follows, follows, boots=200) == (0.0, 0.0, 0.0)


def test_paired_bootstrap_resamples_the_same_cases_for_both():
    """b = a + 0.1 on every case: paired, every resample's difference is exactly the shift, although the
    cases themselves spread widely (an unpaired bootstrap would give an interval wider than 1)."""
    a = np.random.default_rng(8).normal(0, 5, 40)
    d, lo, hi = paired_bootstrap(np.mean, (a + 0.1,), (a,), boots=500)
    assert d == pytest.approx(0.1) and lo == pytest.approx(0.1) and hi == pytest.approx(0.1)
    idx = resample_indices(40, 500, 0)
    assert np.array_equal(bootstrap_draws(np.mean, idx, a), a[idx].mean(1))


def test_paired_difference_of_means_via_bootstrap_ci_and_sign_flip():
    rng = np.random.default_rng(9)
    base = rng.normal(0, 3, 25)
    better = base + 0.5 + 0.2 * rng.normal(size=25)
    lo, hi = bootstrap_ci(better - base)
    assert 0 < lo < 0.5 < hi
    assert sign_flip_p(better - base) < 0.001 and sign_flip_p(base - better) < 0.001


def test_sign_flip_p_separates_a_shift_from_noise():
    rng = np.random.default_rng(0)
    assert sign_flip_p(rng.normal(1.0, 0.5, 20)) < 0.001
    assert sign_flip_p(rng.normal(0.0, 0.5, 20)) > 0.05
    # exact: 4 equal positive differences -> only the all-plus and all-minus flips reach |mean|: p = 2/16
    assert sign_flip_p(np.ones(4), flips=200_000) == pytest.approx(2 / 16, abs=0.01)
    assert sign_flip_p(np.ones(4), seed=3) == sign_flip_p(np.ones(4), seed=3)
