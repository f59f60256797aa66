"""Every layer's null law at one batch size, stacked into arrays so one scored batch costs a few vector operations.

``null_model`` fits one ``CombinedNull`` per layer; scoring a batch used to walk those objects layer by layer and
statistic by statistic (about forty small numpy calls per layer). ``NullTable`` holds the same numbers as ``(layers,)``
and ``(statistics, layers)`` arrays, so the splice of empirical body and Pearson III tail, the min-p combination and
the sigma transform each run once over all layers. The formulas are those of ``null_model`` element for element.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .null_model import CombinedNull, _pearson_log_sf, _sigma


@dataclass(frozen=True, eq=False)
class NullTable:
    """The null laws of ``L`` layers (one ``CombinedNull`` each) at one batch size, as arrays.

    Arrays indexed ``[l, k]`` hold statistic ``k`` (mean, peak, principal-axes shift) of layer ``l``.
    """

    batch_size: int
    mean: np.ndarray
    std: np.ndarray
    skew: np.ndarray
    junction: np.ndarray
    log_p_junction: np.ndarray
    log_sf_junction: np.ndarray
    sorted_draws: tuple[tuple[np.ndarray, ...], ...]  # [l][k]
    min_p_junction: np.ndarray  # (L,) junction of the combined law (in log p)
    min_p_log_p_junction: np.ndarray
    sorted_min_log_p: tuple[np.ndarray, ...]  # [l]
    min_p_sizes: np.ndarray

    @classmethod
    def from_nulls(cls, nulls: Sequence[CombinedNull]) -> NullTable:
        def field(name: str) -> np.ndarray:
            return np.array([[getattr(fit, name) for fit in null.fits] for null in nulls], dtype=np.float64)

        return cls(
            batch_size=nulls[0].batch_size,
            mean=field("mean"),
            std=field("std"),
            skew=field("skew"),
            junction=field("junction"),
            log_p_junction=field("log_p_junction"),
            log_sf_junction=field("log_sf_junction"),
            sorted_draws=tuple(tuple(fit.sorted_draws for fit in null.fits) for null in nulls),
            min_p_junction=np.array([null.junction for null in nulls], dtype=np.float64),
            min_p_log_p_junction=np.array([null.log_p_junction for null in nulls], dtype=np.float64),
            sorted_min_log_p=tuple(null.sorted_min_log_p for null in nulls),
            min_p_sizes=np.array([null.sorted_min_log_p.size for null in nulls], dtype=np.float64),
        )

    @property
    def n_layers(self) -> int:
        return self.mean.shape[0]

    def marginal_log_sf(self, statistics: np.ndarray) -> np.ndarray:
        """``log P(S_k >= s)`` of every statistic ``s`` in ``(..., L, K)`` under its own law (NaN where not finite).

        The draws' empirical survival up to the junction, the Pearson III shape spliced on beyond it
        (``null_model._splice``).
        """
        statistics = np.asarray(statistics, dtype=np.float64)
        finite = np.isfinite(statistics)
        safe = np.where(finite, statistics, 0.0)
        pearson = _pearson_log_sf(safe, self.mean, self.std, self.skew)
        ranks = np.empty_like(safe)
        sizes = np.empty(self.mean.shape)
        for layer, per_statistic in enumerate(self.sorted_draws):
            for k, draws in enumerate(per_statistic):
                ranks[..., layer, k] = np.searchsorted(draws, safe[..., layer, k])
                sizes[layer, k] = draws.size
        empirical = np.log1p(-(ranks + 0.5) / (sizes + 1))
        tail = self.log_p_junction + np.minimum(pearson - self.log_sf_junction, 0.0)
        return np.where(finite, np.where(safe <= self.junction, empirical, tail), np.nan)

    def combined_log_p(self, statistics: np.ndarray) -> np.ndarray:
        """Min-p combination of the statistics ``(..., L, K)`` into one log p-value per layer ``(..., L)``."""
        min_log_p = self.marginal_log_sf(statistics).min(axis=-1)  # NaN if any statistic is NaN
        finite = np.isfinite(min_log_p)
        safe = np.where(finite, min_log_p, 0.0)
        ranks = np.empty_like(safe)
        for layer, ordered in enumerate(self.sorted_min_log_p):
            ranks[..., layer] = np.searchsorted(ordered, safe[..., layer], side="right")
        body = np.log((ranks + 0.5) / (self.min_p_sizes + 1))
        tail = self.min_p_log_p_junction + (safe - self.min_p_junction)
        return np.where(finite, np.where(safe < self.min_p_junction, tail, body), np.nan)

    def sigma_and_pvalue(self, statistics: np.ndarray, statistic: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(drift in sigma units, p-value), each ``(..., L)``, of statistics ``(..., L, K)``: their min-p
        combination, or the single statistic ``statistic`` (a column index) alone."""
        if statistic is None:
            return _sigma(self.combined_log_p(statistics))
        return _sigma(self.marginal_log_sf(statistics)[..., statistic])
