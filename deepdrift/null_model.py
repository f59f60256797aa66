"""The null distribution of the drift statistic at a given batch size, from held-out clean samples.

For a batch of size B the statistic is ``s = B/D * sum_d ((mean_d - mu_d) / sigma_d)^2``; on clean data its mean is
about 1 at every B, but its spread and skew depend on feature correlations and on B. We resample batches of size B
(with replacement) from the centred held-out reservoir, add to each draw an error of the size and correlation of the
calibration mean's own estimation error (covariance Sigma/N), and fit a Pearson type III (shifted gamma) law by its
first three moments. The body of the null (up to its 90% quantile) is the resampled draws' empirical CDF, which needs no
model; the gamma fit only supplies the shape of the far tail, spliced on at that quantile. A gamma tail matches a
quadratic form of near-Gaussian vectors, and its log tail probability stays finite far beyond what a finite resample
could express, so strong drift still has a meaningful sigma value. (Moment fits alone misplace the lower end of a
strongly skewed law: single-image statistics fell below the fitted support and scored -inf.)

Three statistics are resampled from the same draws: the *mean shift* above (powerful when many features move a
little), the *peak shift* ``B * max_d ((mean_d - mu_d) / sigma_d)^2`` (powerful when a few features move a lot: dead
or stuck channels, a faulty attention head) and the *principal-axes shift* ``B/K * |z W|^2`` on whitened principal
axes (powerful for low-rank changes along quiet directions). A layer's p-value combines them by their smallest
p-value (Tippett's min-p), whose own null law is read off the same draws, so the combination stays calibrated with no
Bonferroni loss in the body. Beyond the draws' junction the combined p-value is ``min(p_junction, K * min p)`` for ``K``
statistics: the union (Bonferroni) bound, which holds whatever the statistics' dependence. (Extrapolating the factor
measured at the junction, about 2.1, was too light: deeper in the tail the factor grows towards ``K``; measured by the
calibration study's null grid.)
Adding a max-type test to a sum-of-squares test is the "power enhancement" of Fan, Liao & Yao (Econometrica 2015).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import special, stats

from .corrections import adjust_pvalues  # noqa: F401  (re-exported for callers of the old location)

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
    log_p_junction: float  # the draws' empirical log survival at the junction

    def log_sf(self, values: np.ndarray) -> np.ndarray:
        """``log P(S >= s)`` for each value (NaN where the value is not finite)."""
        values = np.asarray(values, dtype=np.float64)
        safe = np.where(np.isfinite(values), values, 0.0)
        shape = _pearson_log_sf(safe, np.array([self.mean]), np.array([self.std]), np.array([self.skew]))
        return _splice(
            values, self.empirical_log_sf(safe), shape, self.junction, self.log_p_junction, self.log_sf_junction
        )

    def empirical_log_sf(self, value: np.ndarray | float) -> np.ndarray:
        """Log of the draws' survival share at ``value`` (half-count continuity correction)."""
        return _empirical_log_sf(self.sorted_draws, value)


def _empirical_log_sf(sorted_draws: np.ndarray, value: np.ndarray | float) -> np.ndarray:
    return np.log1p(-(np.searchsorted(sorted_draws, value) + 0.5) / (sorted_draws.size + 1))


def _splice(
    values: np.ndarray,
    empirical: np.ndarray,
    pearson: np.ndarray,
    junction: np.ndarray | float,
    log_p_junction: np.ndarray | float,
    log_sf_junction: np.ndarray | float,
) -> np.ndarray:
    """The draws' empirical log survival up to the junction, the Pearson III shape spliced on beyond it
    (``p(s) = p_emp(q) * sf(s) / sf(q)``); NaN for non-finite values. Arrays broadcast element-wise."""
    tail = log_p_junction + np.minimum(pearson - log_sf_junction, 0.0)
    return np.where(np.isfinite(values), np.where(values <= junction, empirical, tail), np.nan)


def _log_sf_per_fit(values: np.ndarray, fits: list[NullFit]) -> np.ndarray:
    """``log P(S_i >= values_i)`` under ``fits[i]``, vectorised over the (layer) index ``i``: this runs once per
    statistic on every scored batch."""
    safe = np.where(np.isfinite(values), values, 0.0)
    shape = _pearson_log_sf(
        safe, np.array([f.mean for f in fits]), np.array([f.std for f in fits]), np.array([f.skew for f in fits])
    )
    empirical = np.array([float(f.empirical_log_sf(v)) for f, v in zip(fits, safe, strict=True)])
    junction = np.array([f.junction for f in fits])
    return _splice(
        values,
        empirical,
        shape,
        junction,
        np.array([f.log_p_junction for f in fits]),
        np.array([f.log_sf_junction for f in fits]),
    )


@dataclass(frozen=True, eq=False)
class CombinedNull:
    """Null law of one layer at one batch size: a fit per statistic and the law of their min-p combination.

    Attributes:
        fits: one ``NullFit`` per statistic (mean shift, peak shift, principal-axes shift).
        sorted_min_log_p: each draw's smallest log p-value over the statistics, ascending.
        junction: the draws' ``1 - TAIL_QUANTILE`` quantile of ``min log p``: empirical above, the Bonferroni bound
            ``min(p_junction, K * min p)`` below.
        log_p_junction: combined log p-value at the junction.
    """

    fits: tuple[NullFit, ...]
    sorted_min_log_p: np.ndarray
    junction: float
    log_p_junction: float

    @property
    def batch_size(self) -> int:
        return self.fits[0].batch_size

    def combine(self, min_log_p: float) -> float:
        """Combined log p-value from the smallest marginal log p-value of one batch; NaN stays NaN."""
        if not np.isfinite(min_log_p):
            return float("nan")
        if min_log_p < self.junction:
            return float(bonferroni_tail(min_log_p, self.log_p_junction, len(self.fits)))
        return float(np.log(_rank_fraction(self.sorted_min_log_p, min_log_p)))


def bonferroni_tail(min_log_p: np.ndarray | float, log_p_junction: np.ndarray | float, n_statistics: int) -> np.ndarray:
    """Combined log p-value below the min-p junction: ``log min(p_junction, K * min p)``.

    The union bound ``P(min_k p_k <= m) <= K * m`` holds for any dependence between the ``K`` statistics, so the
    far tail is conservative by construction; capping it at the junction's own value keeps the map monotone and
    continuous where the empirical body ends (just below the junction ``K * m`` can exceed ``p_junction``).
    """
    return np.minimum(log_p_junction, np.log(n_statistics) + np.asarray(min_log_p, dtype=np.float64))


def _rank_fraction(sorted_values: np.ndarray, value: float) -> float:
    """Share of ``sorted_values`` at or below ``value``, with the usual half-count continuity correction."""
    return (np.searchsorted(sorted_values, value, side="right") + 0.5) / (sorted_values.size + 1)


def fit_combined_null(draws: np.ndarray, batch_size: int) -> CombinedNull:
    """Fit each statistic's null (columns of ``draws``) and the law of their min-p combination on the same draws."""
    draws = np.asarray(draws, dtype=np.float64).reshape(len(draws), -1)
    fits = tuple(fit_null(draws[:, k], batch_size) for k in range(draws.shape[1]))
    min_log_p = np.min(np.stack([fit.log_sf(draws[:, k]) for k, fit in enumerate(fits)]), axis=0)
    ordered = np.sort(min_log_p)
    junction = float(ordered[int((1.0 - TAIL_QUANTILE) * (ordered.size - 1))])
    return CombinedNull(
        fits=fits,
        sorted_min_log_p=ordered,
        junction=junction,
        log_p_junction=float(np.log(_rank_fraction(ordered, junction))),
    )


def resample_statistics(
    z_centred: torch.Tensor,
    batch_size: int,
    n_draws: int,
    generator: torch.Generator,
    reference_count: int | None = None,
    principal: torch.Tensor | None = None,
    chunk: int = 256,
) -> torch.Tensor:
    """Mean-shift, peak-shift and principal-axes statistics of ``n_draws`` batches drawn with replacement from
    standardised, centred held-out rows, as a ``(n_draws, 3)`` float64 tensor (see ``shift_statistics``).

    Args:
        reference_count: samples behind the reference mean. Each draw adds an error of that mean's size and
            correlation (a Gaussian mix of the held-out rows with covariance ``Sigma / count``), so the null covers
            the uncertainty of the reference mean; independent per-feature errors would overstate it along quiet
            principal axes.
        principal: ``(features, axes)`` whitening map; without it the third column repeats the mean shift.
    """
    n_rows, n_features = z_centred.shape
    chunk = max(1, min(chunk, 2**24 // (batch_size * n_features)))  # at most ~64 MB of gathered rows at a time
    out = torch.empty(n_draws, 3, dtype=torch.float64)
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
        means = means.double()
        if reference_count is not None:
            mix = torch.randn(stop - start, n_rows, generator=generator, dtype=z_centred.dtype)
            means = means + (mix @ z_centred).double() / (n_rows * reference_count) ** 0.5
        out[start:stop] = shift_statistics_from_means(means, batch_size, principal)
    return out


def shift_statistics_from_means(
    shift: torch.Tensor, batch_size: int, principal: torch.Tensor | None = None
) -> torch.Tensor:
    """The three statistics from standardised batch-mean shifts ``z`` (``(..., features)``), as ``(..., 3)``:
    ``B/D * sum z^2`` (mean shift), ``B * max z^2`` (peak shift), ``B/K * |z @ W|^2`` (principal axes)."""
    squared = shift.square()
    mean_shift = squared.sum(dim=-1) * (batch_size / shift.shape[-1])
    peak = squared.max(dim=-1).values * batch_size
    if principal is None:
        axes = mean_shift
    else:
        axes = (shift @ principal.to(shift)).square().sum(dim=-1) * (batch_size / principal.shape[1])
    return torch.stack([mean_shift, peak, axes], dim=-1)


def fit_null(draws: np.ndarray, batch_size: int) -> NullFit:
    """Three-moment summary of resampled statistics, plus what the tail splice needs (computed once here)."""
    ordered = np.sort(np.asarray(draws, dtype=np.float64))
    mean, std, skew = float(np.mean(ordered)), float(np.std(ordered, ddof=1)), float(stats.skew(ordered, bias=False))
    junction = float(ordered[int(TAIL_QUANTILE * (ordered.size - 1))])
    log_sf_junction = float(
        _pearson_log_sf(np.array([junction]), np.array([mean]), np.array([std]), np.array([skew]))[0]
    )
    log_p_junction = float(_empirical_log_sf(ordered, junction))
    return NullFit(
        batch_size=batch_size,
        mean=mean,
        std=std,
        skew=skew,
        sorted_draws=ordered,
        junction=junction,
        log_sf_junction=log_sf_junction,
        log_p_junction=log_p_junction,
    )


@dataclass(frozen=True)
class PearsonParameters:
    """What the Pearson III tail needs of fitted moments, derived once (arrays broadcast against the values)."""

    mean: np.ndarray
    std: np.ndarray
    shape: np.ndarray
    sqrt_shape: np.ndarray
    log_gamma_shape: np.ndarray

    @classmethod
    def from_moments(cls, mean: np.ndarray, std: np.ndarray, skew: np.ndarray) -> PearsonParameters:
        shape = 4.0 / np.clip(skew, _MIN_SKEW, None) ** 2
        return cls(mean, np.maximum(std, 1e-12), shape, np.sqrt(shape), special.gammaln(shape))

    def log_sf(self, values: np.ndarray) -> np.ndarray:
        """log P(S >= value) under Pearson III (shifted gamma) laws with these moments, finite far into the tail."""
        shape = self.shape
        x = shape + (values - self.mean) / self.std * self.sqrt_shape  # standard gamma variate with these moments
        x_safe = np.where(np.isfinite(x), np.maximum(x, 0.0), 0.0)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            log_sf = np.log(special.gammaincc(shape, x_safe))
            # deep in the upper tail gammaincc underflows: use the log of its leading asymptotic term
            x_tail = np.maximum(x_safe, shape)  # only used where x >> shape
            asymptotic = (
                (shape - 1.0) * np.log(x_tail)
                - x_tail
                - self.log_gamma_shape
                + np.log(x_tail / np.maximum(x_tail - shape + 1.0, 1e-12))
            )
        return np.where(np.isfinite(log_sf), log_sf, asymptotic)


def _pearson_log_sf(values: np.ndarray, mean: np.ndarray, std: np.ndarray, skew: np.ndarray) -> np.ndarray:
    """log P(S >= value) under Pearson III (shifted gamma) laws with these moments, finite far into the tail."""
    return PearsonParameters.from_moments(mean, std, skew).log_sf(values)


def sigma_and_pvalue(statistic: np.ndarray, fits: list[NullFit]) -> tuple[np.ndarray, np.ndarray]:
    """Map statistics to (drift in sigma units, one-sided p-value) under each layer's null.

    The body (up to the draws' ``TAIL_QUANTILE``) uses the resampled draws directly; beyond it the Pearson III fit
    supplies the *shape* of the tail, spliced on so the two agree at the junction:
    ``p(s) = p_emp(q) * sf(s) / sf(q)``. ``drift = Phi^-1(1 - p)`` so clean data gives ~N(0, 1); it is computed from
    log tail probabilities, so it stays finite and monotone for arbitrarily strong drift. Non-finite statistics give
    NaN (the caller flags them).
    """
    return _sigma(_log_sf_per_fit(np.asarray(statistic, dtype=np.float64), list(fits)))


def combined_sigma_and_pvalue(statistics: np.ndarray, nulls: list[CombinedNull]) -> tuple[np.ndarray, np.ndarray]:
    """Like ``sigma_and_pvalue`` for ``(layers, statistics)`` arrays, combining each layer's statistics by min-p."""
    statistics = np.asarray(statistics, dtype=np.float64)
    marginal = [_log_sf_per_fit(statistics[:, k], [null.fits[k] for null in nulls]) for k in range(statistics.shape[1])]
    min_log_p = np.min(np.stack(marginal, axis=1), axis=1)  # NaN if any statistic is NaN
    return _sigma(np.array([null.combine(float(m)) for null, m in zip(nulls, min_log_p, strict=True)]))


def _sigma(log_p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(drift, p) from log p-values; NaN stays NaN."""
    finite = np.isfinite(log_p)
    safe = np.where(finite, log_p, -1.0)
    drift = np.where(finite, -special.ndtri_exp(safe), np.nan)
    return drift, np.where(finite, np.exp(safe), np.nan)
