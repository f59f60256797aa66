"""95% intervals for the findings: exact and score intervals for proportions, an exact Poisson interval for event
rates, and seeded percentile bootstraps (over clusters for clustered counts, over batches for AUROC).

Every bootstrap here draws from a generator seeded with :data:`SEED`, so a findings page is the same bytes on every
run. Each function returns ``(low, high)``; the point estimate is the caller's (the plain ratio or mean).

Example:
    >>> [round(v, 4) for v in clopper_pearson(0, 2000)]
    [0.0, 0.0018]
    >>> [round(v, 3) for v in wilson(36, 36)]
    [0.904, 1.0]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

LEVEL = 0.95
"""Coverage of every interval."""

REPLICATES = 2000
"""Bootstrap replicates (percentile intervals: the 2.5% and 97.5% quantiles of 2000 are stable to ~0.5%)."""

SEED = 0
"""Seed of every bootstrap, so the page is byte-reproducible."""


@dataclass(frozen=True)
class Estimate:
    """A number with its 95% interval, printed as ``0.27% [0.15%, 0.43%]`` (``percent``) or ``0.965 [0.94, 0.98]``.

    ``low``/``high`` are NaN where no interval can be computed from the data at hand; the text then says so.
    """

    value: float
    low: float = math.nan
    high: float = math.nan
    percent: bool = False
    digits: int = 3

    @property
    def has_interval(self) -> bool:
        return math.isfinite(self.low) and math.isfinite(self.high)

    def _fmt(self, v: float) -> str:
        if not math.isfinite(v):
            return "n/a"
        return f"{100 * v:.{max(self.digits - 1, 0)}f}%" if self.percent else f"{v:.{self.digits}f}"

    def __str__(self) -> str:
        if not self.has_interval:
            return f"{self._fmt(self.value)} (no interval)"
        return f"{self._fmt(self.value)} [{self._fmt(self.low)}, {self._fmt(self.high)}]"


def _alpha(level: float) -> float:
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    return 1 - level


def _check_counts(k: int, n: int) -> None:
    if n <= 0 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n and n > 0, got k={k}, n={n}")


def clopper_pearson(k: int, n: int, level: float = LEVEL) -> tuple[float, float]:
    """Exact (Clopper-Pearson) interval of a proportion ``k / n``: conservative, right for rare tail events."""
    _check_counts(k, n)
    a = _alpha(level)
    low = 0.0 if k == 0 else float(stats.beta.ppf(a / 2, k, n - k + 1))
    high = 1.0 if k == n else float(stats.beta.ppf(1 - a / 2, k + 1, n - k))
    return low, high


def wilson(k: int, n: int, level: float = LEVEL) -> tuple[float, float]:
    """Wilson score interval of a proportion ``k / n``: good coverage for middling and extreme shares alike."""
    _check_counts(k, n)
    z = float(stats.norm.ppf(1 - _alpha(level) / 2))
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def poisson_rate(events: int, exposure: float, level: float = LEVEL) -> tuple[float, float]:
    """Exact (Garwood) interval of an event rate ``events / exposure`` (e.g. false alarms per clean batch)."""
    if events < 0 or exposure <= 0:
        raise ValueError(f"need events >= 0 and exposure > 0, got {events}, {exposure}")
    a = _alpha(level)
    low = 0.0 if events == 0 else float(stats.chi2.ppf(a / 2, 2 * events)) / 2
    high = float(stats.chi2.ppf(1 - a / 2, 2 * events + 2)) / 2
    return low / exposure, high / exposure


def proportion(k: int, n: int, method: str = "wilson", level: float = LEVEL, percent: bool = False) -> Estimate:
    """``k / n`` with its ``wilson`` or ``clopper_pearson`` interval."""
    interval = {"wilson": wilson, "clopper_pearson": clopper_pearson}[method](k, n, level)
    return Estimate(k / n, *interval, percent=percent)


def percentile(replicates: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """The percentile interval of bootstrap ``replicates`` (NaN replicates are dropped)."""
    values = np.asarray(replicates, dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return math.nan, math.nan
    a = _alpha(level)
    low, high = np.quantile(values, [a / 2, 1 - a / 2])
    return float(low), float(high)


def resample_counts(n: int, replicates: int = REPLICATES, rng: np.random.Generator | None = None) -> np.ndarray:
    """How often each of ``n`` units is drawn in each bootstrap replicate: ``(replicates, n)`` multinomial counts."""
    rng = rng if rng is not None else np.random.default_rng(SEED)
    return rng.multinomial(n, np.full(n, 1.0 / n), size=replicates).astype(float)


def cluster_rate(
    hits: Sequence[float], trials: Sequence[float], replicates: int = REPLICATES, level: float = LEVEL
) -> Estimate:
    """A pooled rate ``sum(hits) / sum(trials)`` with a bootstrap interval that resamples whole clusters.

    Batches of one injected fault share the fault, so they are not independent; resampling faults (clusters)
    keeps that dependence, where a binomial interval over batches would be too narrow.

    Args:
        hits: successes per cluster (e.g. batches with the exact onset tap, per fault).
        trials: trials per cluster (batches per fault).
    """
    k, n = np.asarray(hits, dtype=float), np.asarray(trials, dtype=float)
    if k.shape != n.shape or k.size == 0 or n.sum() <= 0:
        raise ValueError("need one hits and one trials value per cluster, and some trials")
    weights = resample_counts(k.size, replicates)
    with np.errstate(invalid="ignore", divide="ignore"):
        reps = (weights @ k) / (weights @ n)
    return Estimate(float(k.sum() / n.sum()), *percentile(reps, level))


def mean_interval(values: Sequence[float], replicates: int = REPLICATES, level: float = LEVEL) -> Estimate:
    """The mean of independent ``values`` with a percentile bootstrap interval."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        raise ValueError("need at least one value")
    reps = resample_counts(x.size, replicates) @ x / x.size
    return Estimate(float(x.mean()), *percentile(reps, level))


def pair_matrix(clean: np.ndarray, shifted: np.ndarray) -> np.ndarray:
    """``M[i, j] = 1[shifted_i > clean_j] + 0.5 * 1[shifted_i == clean_j]``: its mean is the AUROC (ties halved)."""
    s, c = np.asarray(shifted, dtype=float)[:, None], np.asarray(clean, dtype=float)[None, :]
    return (s > c) + 0.5 * (s == c)


def mean_auroc(
    clean: np.ndarray, shifted: np.ndarray, shifted_weights: np.ndarray, clean_weights: np.ndarray
) -> np.ndarray:
    """Mean AUROC over cells (e.g. corruption x severity) of each bootstrap replicate.

    All cells share one clean set (``clean``: one score per clean batch) and the same shifted batch indices
    (``shifted``: cells x shifted batches), as in the corruption benchmark, where batch ``i`` holds the same images
    under every corruption. A replicate that draws shifted batch ``i`` ``a`` times and clean batch ``j`` ``b``
    times counts that pair ``a * b`` times, so its AUROC is ``w_s M w_c / (sum w_s * sum w_c)`` with ``M`` the
    :func:`pair_matrix`: no re-ranking per replicate. Unit weights (one row of ones) give the plain AUROC.

    Args:
        clean: ``(n_clean,)`` scores of the clean batches.
        shifted: ``(cells, n_shifted)`` scores of the shifted batches.
        shifted_weights: ``(replicates, n_shifted)`` draw counts (:func:`resample_counts`).
        clean_weights: ``(replicates, n_clean)`` draw counts.

    Returns:
        ``(replicates,)`` mean AUROC over the cells.
    """
    shifted = np.atleast_2d(np.asarray(shifted, dtype=float))
    total = np.zeros(len(shifted_weights))
    norm = shifted_weights.sum(1) * clean_weights.sum(1)
    for cell in shifted:
        total += ((shifted_weights @ pair_matrix(clean, cell)) * clean_weights).sum(1) / norm
    return total / len(shifted)
