"""The statistics of the benchmarks: Pearson r, percentile bootstraps, a paired bootstrap of a difference and a
sign-flip permutation test, under one rule for missing values.

The NaN rule (every function here):

- a value that is not finite (NaN, ±inf) is missing; a *pair* (x, y) with a missing side is dropped, and so is
  a missing entry of a single sample, before any statistic is computed;
- a statistic needs at least ``MIN_VALID`` (3) valid entries or pairs: with fewer it is NaN (an r of two
  points is always ±1, an interval or a p-value of one or two values says nothing);
- a correlation with a side that never varies (all its valid values equal) is NaN.

Bootstraps resample cases with replacement from a seeded generator (``resample_indices``: numpy's
``default_rng(seed).integers(0, n, (boots, n))``, so a seed gives the same resamples everywhere). A one-sample
interval (``bootstrap_ci``) resamples the valid entries. Draws shared between statistics or systems
(``bootstrap_draws``, ``pearson_ci``, ``paired_bootstrap``) resample the cases as given, so that they stay
paired, and the rule applies inside each resample. A percentile interval of draws (``percentile_interval``) is
2.5 … 97.5 % of the defined draws, and NaN where more than 5 % of the draws are undefined: a statistic that
exists only on the resamples that catch a rare change would otherwise look certain.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

MIN_VALID = 3  # fewer valid entries (or pairs) than this: the statistic is NaN
MIN_DEFINED_DRAWS = 0.95  # an interval needs this share of its bootstrap draws defined
NAN = float("nan")


def valid(x: np.ndarray) -> np.ndarray:
    """The finite entries of ``x`` (dtype kept)."""
    x = np.asarray(x)
    return x[np.isfinite(x)]


def valid_pairs(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``x`` and ``y`` without the pairs where either side is not finite (dtypes kept)."""
    x, y = np.asarray(x), np.asarray(y)
    if x.shape != y.shape:
        raise ValueError(f"paired samples of different shapes {x.shape} and {y.shape}")
    ok = np.isfinite(x) & np.isfinite(y)
    return x[ok], y[ok]


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson r of the valid pairs of ``x`` and ``y`` (1-d); NaN with fewer than ``MIN_VALID`` pairs or a side
    that never varies. Computed in the inputs' dtype as Σab / √(Σa² Σb²) of the centred values."""
    x, y = valid_pairs(x, y)
    if len(x) < MIN_VALID or (x == x[0]).all() or (y == y[0]).all():
        return NAN
    a, b = x - x.mean(), y - y.mean()
    den = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float(np.clip((a * b).sum() / den, -1.0, 1.0)) if den > 0 else NAN


def resample_indices(n: int, boots: int, seed: int) -> np.ndarray:
    """``[boots, n]`` case indices drawn with replacement (seeded): the bootstrap's resamples."""
    return np.random.default_rng(seed).integers(0, n, (boots, n)) if n else np.zeros((0, 0), int)


def bootstrap_draws(statistic: Callable[..., float], idx: np.ndarray, *columns: np.ndarray) -> np.ndarray:
    """``statistic`` of the columns (paired, case-aligned) on each resample (row of ``idx``). → ``[boots]``."""
    columns = tuple(np.asarray(c) for c in columns)
    return np.array([statistic(*(c[i] for c in columns)) for i in idx], float)


def percentile_interval(draws: np.ndarray, min_defined: float = MIN_DEFINED_DRAWS) -> tuple[float, float]:
    """The 95 % percentile interval (2.5 %, 97.5 %) of the defined bootstrap draws; NaN where there are none or
    fewer than ``min_defined`` of them are defined."""
    draws = np.asarray(draws)
    finite = draws[np.isfinite(draws)]
    if not len(draws) or not len(finite) or len(finite) < min_defined * len(draws):
        return NAN, NAN
    return float(np.percentile(finite, 2.5)), float(np.percentile(finite, 97.5))


def bootstrap_ci(x: np.ndarray, boots: int = 4000, seed: int = 0) -> tuple[float, float]:
    """95 % percentile bootstrap interval of the mean of the valid entries of ``x`` (NaN with fewer than
    ``MIN_VALID``). For a paired difference of means pass the per-case differences ``a − b``."""
    x = valid(x)
    if len(x) < MIN_VALID:
        return NAN, NAN
    return percentile_interval(x[resample_indices(len(x), boots, seed)].mean(1))


def pearson_ci(x: np.ndarray, y: np.ndarray, boots: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Pearson r of ``x`` and ``y`` with its 95 % bootstrap interval (cases resampled). → (r, lo, hi)."""
    lo, hi = percentile_interval(bootstrap_draws(pearson, resample_indices(len(x), boots, seed), x, y))
    return pearson(x, y), lo, hi


def paired_bootstrap(statistic: Callable[..., float], a: tuple[np.ndarray, ...], b: tuple[np.ndarray, ...],
                     boots: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """``statistic(*a) − statistic(*b)`` with a paired 95 % bootstrap interval: the same resampled cases for both
    (``a`` and ``b``: case-aligned columns over the same cases). → (difference, lo, hi)."""
    n = len(a[0])
    if any(len(c) != n for c in (*a, *b)):
        raise ValueError("paired_bootstrap: a and b must hold the same cases")
    idx = resample_indices(n, boots, seed)
    lo, hi = percentile_interval(bootstrap_draws(statistic, idx, *a) - bootstrap_draws(statistic, idx, *b))
    return statistic(*a) - statistic(*b), lo, hi


def sign_flip_p(d: np.ndarray, flips: int = 20000, seed: int = 0) -> float:
    """Two-sided p-value of mean(d) = 0 for paired differences ``d`` (valid entries; random sign flips, seeded);
    NaN with fewer than ``MIN_VALID``."""
    d = valid(d)
    if len(d) < MIN_VALID:
        return NAN
    rng = np.random.default_rng(seed)
    signs = rng.choice([-1.0, 1.0], (flips, len(d)))
    null = np.abs((signs * d).mean(1))
    return float((1 + (null >= abs(d.mean()) - 1e-12).sum()) / (flips + 1))
