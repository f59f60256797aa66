"""The null distribution of the drift statistic at a given batch size, from held-out clean samples.

For a batch of size B the statistic is ``s = B/D * sum_d ((mean_d - mu_d) / sigma_d)^2``; on clean data its mean is
about 1 at every B, but its spread and skew depend on feature correlations and on B. We resample batches of size B
(with replacement) from the centred held-out reservoir, add the expected contribution of the calibration mean's own
estimation error (B/N times the held-out variance ratio), and fit a Pearson type III (shifted gamma) law by its first
three moments to the upper half. A gamma tail matches a quadratic form of near-Gaussian vectors, and its log tail
probability stays finite far beyond what a finite resample could express, so strong drift still has a meaningful
sigma value. Below the median the resampled draws are used directly (their empirical CDF): moment fits misplace the
lower end of a strongly skewed law, and a batch that is unusually *close* to the reference is not what we test for.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import special, stats

_MIN_SKEW = 1e-3


@dataclass(frozen=True, eq=False)
class NullFit:
    """Moments and sorted resampled draws of the clean-data statistic at one batch size."""

    batch_size: int
    mean: float
    std: float
    skew: float
    sorted_draws: np.ndarray


def resample_statistic(
    z_centred: torch.Tensor, batch_size: int, n_draws: int, generator: torch.Generator, chunk: int = 256,
) -> torch.Tensor:
    """Statistic of ``n_draws`` batches drawn with replacement from standardised, centred held-out rows."""
    n_rows, n_features = z_centred.shape
    out = torch.empty(n_draws, dtype=torch.float64)
    use_counts = batch_size * 4 >= n_rows  # a (draws x rows) count matrix beats gathering for large batches
    for start in range(0, n_draws, chunk):
        stop = min(start + chunk, n_draws)
        idx = torch.randint(0, n_rows, (stop - start, batch_size), generator=generator)
        if use_counts:
            counts = torch.zeros(stop - start, n_rows, dtype=z_centred.dtype)
            counts.scatter_add_(1, idx, torch.ones_like(idx, dtype=z_centred.dtype))
            means = counts @ z_centred / batch_size
        else:
            means = z_centred[idx].mean(dim=1)
        out[start:stop] = (means.double() ** 2).sum(dim=1) * (batch_size / n_features)
    return out


def fit_null(draws: np.ndarray, batch_size: int) -> NullFit:
    """Three-moment summary of resampled statistics."""
    return NullFit(
        batch_size=batch_size,
        mean=float(np.mean(draws)),
        std=float(np.std(draws, ddof=1)),
        skew=float(stats.skew(draws, bias=False)),
        sorted_draws=np.sort(np.asarray(draws, dtype=np.float64)),
    )


def sigma_and_pvalue(statistic: np.ndarray, fits: list[NullFit]) -> tuple[np.ndarray, np.ndarray]:
    """Map statistics to (drift in sigma units, one-sided p-value) under each layer's Pearson III null.

    ``drift = Phi^-1(1 - p)`` so clean data gives ~N(0, 1); computed from log tail probabilities, so it stays finite
    and monotone for arbitrarily strong drift. Non-finite statistics give NaN (the caller flags them).
    """
    s = np.asarray(statistic, dtype=np.float64)
    mean = np.array([f.mean for f in fits])
    std = np.array([max(f.std, 1e-12) for f in fits])
    skew = np.clip(np.array([f.skew for f in fits]), _MIN_SKEW, None)
    shape = 4.0 / skew**2
    x = shape + (s - mean) / std * np.sqrt(shape)  # standard gamma variate with the fitted mean/sd/skew
    x_safe = np.where(np.isfinite(x), np.maximum(x, 0.0), 0.0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        log_sf = np.log(special.gammaincc(shape, x_safe))
        log_cdf = np.log(special.gammainc(shape, x_safe))
        # deep in the upper tail gammaincc underflows: use log of its leading asymptotic term
        x_tail = np.maximum(x_safe, shape)  # only used where x >> shape
        asymptotic = ((shape - 1.0) * np.log(x_tail) - x_tail - special.gammaln(shape)
                      + np.log(x_tail / np.maximum(x_tail - shape + 1.0, 1e-12)))
        log_sf = np.where(np.isfinite(log_sf), log_sf, asymptotic)
        drift = np.where(log_sf < np.log(0.5), -special.ndtri_exp(log_sf), special.ndtri_exp(log_cdf))
    p_value = np.exp(log_sf)
    for i, fit in enumerate(fits):  # lower half: empirical CDF of the resampled draws
        n = fit.sorted_draws.size
        if n and np.isfinite(s[i]) and s[i] < fit.sorted_draws[n // 2]:
            cdf = (np.searchsorted(fit.sorted_draws, s[i]) + 0.5) / (n + 1)
            drift[i], p_value[i] = special.ndtri(cdf), 1.0 - cdf
    bad = ~np.isfinite(s)
    return np.where(bad, np.nan, drift), np.where(bad, np.nan, p_value)


def adjust_pvalues(p_values: np.ndarray, method: str = "holm") -> np.ndarray:
    """Family-wise (Holm) or false-discovery (Benjamini-Hochberg) adjustment across layers; NaN stays NaN."""
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full_like(p, np.nan)
    ok = np.isfinite(p)
    if not ok.any():
        return out
    if method == "bh":
        out[ok] = stats.false_discovery_control(p[ok], method="bh")
        return out
    if method != "holm":
        raise ValueError(f"unknown correction {method!r}; use 'holm' or 'bh'")
    vals = p[ok]
    order = np.argsort(vals)
    m = len(vals)
    adjusted = np.maximum.accumulate((m - np.arange(m)) * vals[order]).clip(max=1.0)
    res = np.empty(m)
    res[order] = adjusted
    out[ok] = res
    return out
