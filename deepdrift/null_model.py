"""The null distribution of the drift statistic at a given batch size, from held-out clean samples.

For a batch of size B the statistic is ``s = B/D * sum_d ((mean_d - mu_d) / sigma_d)^2``; on clean data its mean is
about 1 at every B, but its spread and skew depend on feature correlations and on B. We resample batches of size B
(with replacement) from the centred held-out reservoir, add the expected contribution of the calibration mean's own
estimation error (B/N times the held-out variance ratio), and fit a Pearson type III (shifted gamma) law by its first
three moments. The body of the null (up to its 90% quantile) is the resampled draws' empirical CDF, which needs no
model; the gamma fit only supplies the shape of the far tail, spliced on at that quantile. A gamma tail matches a
quadratic form of near-Gaussian vectors, and its log tail probability stays finite far beyond what a finite resample
could express, so strong drift still has a meaningful sigma value. (Moment fits alone misplace the lower end of a
strongly skewed law: single-image statistics fell below the fitted support and scored -inf.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import special, stats

_MIN_SKEW = 1e-3
TAIL_QUANTILE = 0.9
"""Above this quantile of the resampled null, tail probabilities come from the Pearson III fit's shape."""


@dataclass(frozen=True, eq=False)
class NullFit:
    """Moments and sorted resampled draws of the clean-data statistic at one batch size."""

    batch_size: int
    mean: float
    std: float
    skew: float
    sorted_draws: np.ndarray
    junction: float  # the draws' TAIL_QUANTILE: empirical below, spliced Pearson tail above
    log_sf_junction: float  # the Pearson fit's log survival at the junction


def resample_statistic(
    z_centred: torch.Tensor, batch_size: int, n_draws: int, generator: torch.Generator, chunk: int = 256,
) -> torch.Tensor:
    """Statistic of ``n_draws`` batches drawn with replacement from standardised, centred held-out rows."""
    n_rows, n_features = z_centred.shape
    chunk = max(1, min(chunk, 2**24 // (batch_size * n_features)))  # at most ~64 MB of gathered rows at a time
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
    """Three-moment summary of resampled statistics, plus what the tail splice needs (computed once here)."""
    ordered = np.sort(np.asarray(draws, dtype=np.float64))
    mean, std, skew = float(np.mean(ordered)), float(np.std(ordered, ddof=1)), float(stats.skew(ordered, bias=False))
    junction = float(ordered[int(TAIL_QUANTILE * (ordered.size - 1))])
    log_sf_junction = float(_pearson_log_sf(np.array([junction]), np.array([mean]), np.array([std]),
                                            np.array([skew]))[0])
    return NullFit(batch_size=batch_size, mean=mean, std=std, skew=skew, sorted_draws=ordered,
                   junction=junction, log_sf_junction=log_sf_junction)


def _pearson_log_sf(values: np.ndarray, mean: np.ndarray, std: np.ndarray, skew: np.ndarray) -> np.ndarray:
    """log P(S >= value) under Pearson III (shifted gamma) laws with these moments, finite far into the tail."""
    std = np.maximum(std, 1e-12)
    skew = np.clip(skew, _MIN_SKEW, None)
    shape = 4.0 / skew**2
    x = shape + (values - mean) / std * np.sqrt(shape)  # standard gamma variate with the fitted mean/sd/skew
    x_safe = np.where(np.isfinite(x), np.maximum(x, 0.0), 0.0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        log_sf = np.log(special.gammaincc(shape, x_safe))
        # deep in the upper tail gammaincc underflows: use the log of its leading asymptotic term
        x_tail = np.maximum(x_safe, shape)  # only used where x >> shape
        asymptotic = ((shape - 1.0) * np.log(x_tail) - x_tail - special.gammaln(shape)
                      + np.log(x_tail / np.maximum(x_tail - shape + 1.0, 1e-12)))
    return np.where(np.isfinite(log_sf), log_sf, asymptotic)


def _empirical_cdf(draws: np.ndarray, value: float) -> float:
    return (np.searchsorted(draws, value) + 0.5) / (draws.size + 1)


def sigma_and_pvalue(statistic: np.ndarray, fits: list[NullFit]) -> tuple[np.ndarray, np.ndarray]:
    """Map statistics to (drift in sigma units, one-sided p-value) under each layer's null.

    The body (up to the draws' ``TAIL_QUANTILE``) uses the resampled draws directly; beyond it the Pearson III fit
    supplies the *shape* of the tail, spliced on so the two agree at the junction:
    ``p(s) = p_emp(q) * sf(s) / sf(q)``. ``drift = Phi^-1(1 - p)`` so clean data gives ~N(0, 1); it is computed from
    log tail probabilities, so it stays finite and monotone for arbitrarily strong drift. Non-finite statistics give
    NaN (the caller flags them).
    """
    s = np.asarray(statistic, dtype=np.float64)
    junction = np.array([f.junction for f in fits])
    log_sf_q = np.array([f.log_sf_junction for f in fits])
    log_sf_s = _pearson_log_sf(np.where(np.isfinite(s), s, 0.0), np.array([f.mean for f in fits]),
                               np.array([f.std for f in fits]), np.array([f.skew for f in fits]))
    drift = np.full(s.shape, np.nan)
    p_value = np.full(s.shape, np.nan)
    for i, fit in enumerate(fits):
        if not np.isfinite(s[i]):
            continue
        if s[i] <= junction[i]:
            cdf = _empirical_cdf(fit.sorted_draws, s[i])
            drift[i], p_value[i] = special.ndtri(cdf), 1.0 - cdf
        else:
            log_p = np.log1p(-_empirical_cdf(fit.sorted_draws, junction[i])) + min(log_sf_s[i] - log_sf_q[i], 0.0)
            drift[i], p_value[i] = -special.ndtri_exp(log_p), np.exp(log_p)
    return drift, p_value


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
