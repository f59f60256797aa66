"""Nested bootstrap intervals: over training seeds, then clusters within a seed, then units within a cluster.

A seed's headline number is a ratio of hits to trials pooled over its units (clean batches, fault batches); units
share a cluster (a calibration split, a fault) whose common error the interval must carry, so a seed's bootstrap
draws its clusters with replacement and weights each cluster's units by Poisson(1). Across seeds the estimate is
the mean of the seeds' ratios, and its bootstrap draws seeds with replacement and, for each drawn seed, one of that
seed's own bootstrap replicates: the interval then carries seed-to-seed variation and each seed's sampling error.
Where every unit is a miss (or, for 0/1 units, every unit a hit) resampling has nothing to vary; the open end is then
the Clopper-Pearson bound of as many trials as units (conservative where a unit holds several trials).
With three seeds the outer stage has only ten distinct draws, so the interval is coarse; the per-seed values are
shown beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from experiments.findings.intervals import clopper_pearson

REPLICATES = 2000
LEVEL = 0.95
SEED = 0
_DENSE_LIMIT = 4_000_000
"""Above this many (replicate x unit) weights per cluster, a constant-trials cluster uses the sparse draw."""


@dataclass(frozen=True)
class Cluster:
    """The units of one cluster: hits and trials per unit (e.g. taps above 3 sigma, and taps, per batch)."""

    hits: np.ndarray
    trials: np.ndarray


@dataclass(frozen=True)
class SeedEstimate:
    """One seed's ratio, its 95% interval and its bootstrap replicates (what the across-seed stage draws)."""

    value: float
    low: float
    high: float
    draws: np.ndarray
    clusters: int
    units: int = 0
    binary: bool = False


def seed_estimate(clusters: Sequence[Cluster], rng: np.random.Generator, replicates: int = REPLICATES) -> SeedEstimate:
    """Pooled hits / trials over ``clusters`` with a (clusters, then Poisson-weighted units) bootstrap."""
    if not clusters:
        nan = float("nan")
        return SeedEstimate(nan, nan, nan, np.full(replicates, nan), 0)
    units = sum(int(c.hits.size) for c in clusters)
    binary = all(np.all(c.trials == 1) for c in clusters)
    numerators = np.empty((len(clusters), replicates))
    denominators = np.empty((len(clusters), replicates))
    for c, cluster in enumerate(clusters):
        hits = np.asarray(cluster.hits, dtype=float)
        trials = np.asarray(cluster.trials, dtype=float)
        constant = trials.size > 0 and np.all(trials == trials[0])
        if constant and hits.size * replicates > _DENSE_LIMIT:
            # only units with a hit move the numerator; the units' total weight is Poisson(n)
            nonzero = hits[hits > 0]
            numerators[c] = rng.poisson(1.0, (replicates, nonzero.size)) @ nonzero
            denominators[c] = rng.poisson(float(hits.size), replicates) * trials[0]
        else:
            weights = rng.poisson(1.0, (replicates, hits.size)).astype(float)
            numerators[c] = weights @ hits
            denominators[c] = weights @ trials
    drawn = rng.integers(0, len(clusters), (replicates, len(clusters)))
    columns = np.arange(replicates)[:, None]
    total = denominators[drawn, columns].sum(axis=1)
    draws = np.where(total > 0, numerators[drawn, columns].sum(axis=1) / np.maximum(total, 1e-300), np.nan)
    value = float(sum(c.hits.sum() for c in clusters) / max(sum(c.trials.sum() for c in clusters), 1e-300))
    low, high = _bounded(value, *_quantiles(draws), units, binary)
    return SeedEstimate(value, low, high, draws, len(clusters), units, binary)


def across_seeds(estimates: Sequence[SeedEstimate], rng: np.random.Generator) -> tuple[float, float, float]:
    """Mean of the seeds' values with a nested bootstrap interval: ``(mean, low, high)``."""
    values = np.array([e.value for e in estimates])
    if not len(values) or not np.isfinite(values).all():
        nan = float("nan")
        return nan, nan, nan
    draws = np.stack([e.draws for e in estimates])  # (seeds, replicates)
    replicates = draws.shape[1]
    picked = rng.integers(0, len(estimates), (replicates, len(estimates)))
    means = draws[picked, np.arange(replicates)[:, None]].mean(axis=1)
    mean = float(values.mean())
    low, high = _bounded(mean, *_quantiles(means), sum(e.units for e in estimates), all(e.binary for e in estimates))
    return mean, low, high


def _bounded(value: float, low: float, high: float, units: int, binary: bool) -> tuple[float, float]:
    """Open a degenerate interval at an all-miss (or, for 0/1 units, all-hit) estimate by Clopper-Pearson."""
    if units and value == 0.0:
        high = max(high, clopper_pearson(0, units, LEVEL)[1])
    if units and binary and value == 1.0:
        low = min(low, clopper_pearson(units, units, LEVEL)[0])
    return low, high


def _quantiles(draws: np.ndarray) -> tuple[float, float]:
    finite = draws[np.isfinite(draws)]
    if not finite.size:
        return float("nan"), float("nan")
    low, high = np.quantile(finite, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
    return float(low), float(high)
