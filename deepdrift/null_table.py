"""Every layer's null law at one batch size, stacked into arrays so one scored batch costs a few vector operations.

``null_model`` fits one ``CombinedNull`` per layer; scoring a batch used to walk those objects layer by layer and
statistic by statistic (about forty small numpy calls per layer). ``NullTable`` holds the same numbers as ``(layers,)``
and ``(statistics, layers)`` arrays, so the splice of empirical body and Pearson III tail, the min-p combination and
the sigma transform each run once over all layers. The formulas are those of ``null_model`` element for element.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from .null_model import CombinedNull, PearsonParameters, _sigma, bonferroni_tail


def _lexicographic(rows: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Sorted rows laid end to end as ``row + 1j * value``, which numpy orders by row, then value, so one
    ``searchsorted`` finds a value's rank within every row at once; and each row's offset in that array."""
    keys = np.empty(sum(r.size for r in rows), dtype=np.complex128)
    keys.real = np.repeat(np.arange(len(rows), dtype=np.float64), [r.size for r in rows])
    keys.imag = np.concatenate(rows)
    offsets = np.concatenate([[0], np.cumsum([r.size for r in rows])[:-1]]).astype(np.float64)
    return keys, offsets


def _ranks(keys: np.ndarray, offsets: np.ndarray, values: np.ndarray, side: Literal["left", "right"]) -> np.ndarray:
    """Rank of each finite ``values[..., r]`` within sorted row ``r`` (``np.searchsorted`` semantics)."""
    query = np.empty(values.shape, dtype=np.complex128)
    query.real = np.arange(values.shape[-1], dtype=np.float64)
    query.imag = values
    return np.searchsorted(keys, query, side=side) - offsets


@dataclass(frozen=True, eq=False)
class NullTable:
    """The null laws of ``L`` layers (one ``CombinedNull`` each) at one batch size, as arrays.

    Arrays indexed ``[l, k]`` hold statistic ``k`` (mean, peak, principal-axes shift) of layer ``l``; the sorted
    draws of every ``(l, k)`` (and of every layer's min-p) sit end to end in one lexicographic array, so ranking a
    batch's statistics is a single ``searchsorted``.
    """

    batch_size: int
    pearson: PearsonParameters
    junction: np.ndarray
    log_p_junction: np.ndarray
    log_sf_junction: np.ndarray
    draw_keys: np.ndarray
    draw_offsets: np.ndarray  # (L * K,)
    draw_counts: np.ndarray  # (L, K)
    min_p_junction: np.ndarray  # (L,) junction of the combined law (in log p)
    min_p_log_p_junction: np.ndarray
    min_p_keys: np.ndarray
    min_p_offsets: np.ndarray
    min_p_counts: np.ndarray

    @classmethod
    def from_nulls(cls, nulls: Sequence[CombinedNull]) -> NullTable:
        def field(name: str) -> np.ndarray:
            return np.array([[getattr(fit, name) for fit in null.fits] for null in nulls], dtype=np.float64)

        draws = [fit.sorted_draws for null in nulls for fit in null.fits]
        draw_keys, draw_offsets = _lexicographic(draws)
        min_p_keys, min_p_offsets = _lexicographic([null.sorted_min_log_p for null in nulls])
        return cls(
            batch_size=nulls[0].batch_size,
            pearson=PearsonParameters.from_moments(field("mean"), field("std"), field("skew")),
            junction=field("junction"),
            log_p_junction=field("log_p_junction"),
            log_sf_junction=field("log_sf_junction"),
            draw_keys=draw_keys,
            draw_offsets=draw_offsets,
            draw_counts=np.array([d.size for d in draws], dtype=np.float64).reshape(len(nulls), -1),
            min_p_junction=np.array([null.junction for null in nulls], dtype=np.float64),
            min_p_log_p_junction=np.array([null.log_p_junction for null in nulls], dtype=np.float64),
            min_p_keys=min_p_keys,
            min_p_offsets=min_p_offsets,
            min_p_counts=np.array([null.sorted_min_log_p.size for null in nulls], dtype=np.float64),
        )

    @property
    def n_layers(self) -> int:
        return self.junction.shape[0]

    def marginal_log_sf(self, statistics: np.ndarray) -> np.ndarray:
        """``log P(S_k >= s)`` of every statistic ``s`` in ``(..., L, K)`` under its own law (NaN where not finite).

        The draws' empirical survival up to the junction, the Pearson III shape spliced on beyond it
        (``null_model._splice``).
        """
        statistics = np.asarray(statistics, dtype=np.float64)
        finite = np.isfinite(statistics)
        safe = np.where(finite, statistics, 0.0)
        pearson = self.pearson.log_sf(safe)
        flat = safe.reshape(*safe.shape[:-2], -1)
        ranks = _ranks(self.draw_keys, self.draw_offsets, flat, "left").reshape(safe.shape)
        empirical = np.log1p(-(ranks + 0.5) / (self.draw_counts + 1))
        tail = self.log_p_junction + np.minimum(pearson - self.log_sf_junction, 0.0)
        return np.where(finite, np.where(safe <= self.junction, empirical, tail), np.nan)

    def combined_log_p(self, statistics: np.ndarray) -> np.ndarray:
        """Min-p combination of the statistics ``(..., L, K)`` into one log p-value per layer ``(..., L)``."""
        min_log_p = self.marginal_log_sf(statistics).min(axis=-1)  # NaN if any statistic is NaN
        finite = np.isfinite(min_log_p)
        safe = np.where(finite, min_log_p, 0.0)
        ranks = _ranks(self.min_p_keys, self.min_p_offsets, safe, "right")
        body = np.log((ranks + 0.5) / (self.min_p_counts + 1))
        tail = bonferroni_tail(safe, self.min_p_log_p_junction, self.junction.shape[-1])
        return np.where(finite, np.where(safe < self.min_p_junction, tail, body), np.nan)

    def sigma_and_pvalue(self, statistics: np.ndarray, statistic: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(drift in sigma units, p-value), each ``(..., L)``, of statistics ``(..., L, K)``: their min-p
        combination, or the single statistic ``statistic`` (a column index) alone."""
        if statistic is None:
            return _sigma(self.combined_log_p(statistics))
        return _sigma(self.marginal_log_sf(statistics)[..., statistic])
