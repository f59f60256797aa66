"""Equal footing: every statistic on every layer DeepDrift watches, turned into sigma by its own clean null.

A comparison of DeepDrift with its peers should change one thing at a time. :class:`LayerwiseScorer` scores the
same layers (the classifier's penultimate features and each of DeepDrift's taps) with DeepDrift's statistics and
the peers' (:mod:`experiments.baselines.layer_statistics`), from the same reference samples: the calibration rows
DeepDrift itself uses for its means and variances (its held-out share, chosen by position exactly as the library
chooses it, is every method's clean null set). Each method's per-layer score becomes a drift in sigma units through
its own null at the batch size in use, so layers combine by the same rule for every method
(:data:`experiments.baselines.COMBINE_RULES`):

* DeepDrift: the library's calibrated null (``DriftScorer.null_table``), for its min-p combination and each of its
  three statistics alone;
* a peer: ``null_draws`` batches drawn from the held-out rows (no repeats within a batch), scored like any batch,
  with DeepDrift's own tail treatment of such draws (:class:`PeerNull`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy import special

from deepdrift import CalibrationConfig, DriftScorer
from deepdrift.null_model import NullFit, fit_null, shift_statistics_from_means
from experiments.baselines.layer_statistics import (
    CHUNK_ELEMENTS,
    LAYER_STATISTICS,
    LayerStatistic,
    make_layer_statistic,
)
from experiments.features import FeatureSet

PENULTIMATE = "penultimate"
"""Layer name of the classifier's penultimate features (what pytorch-ood and torchdrift read)."""

DEEPDRIFT_STATISTICS: dict[str, int | None] = {
    "deepdrift": None,
    "deepdrift_mean": 0,
    "deepdrift_peak": 1,
    "deepdrift_principal": 2,
}
"""DeepDrift's statistics by name: the min-p combination (``None``) and the column of each statistic alone."""

FOOTING_STATISTICS: tuple[str, ...] = (*DEEPDRIFT_STATISTICS, *LAYER_STATISTICS)
"""Every statistic the equal-footing benchmark may score."""


def holdout_mask(n: int, fraction: float) -> np.ndarray:
    """Which of ``n`` calibration samples (in stream order) DeepDrift holds out for its null: the same evenly spread
    positions as ``deepdrift.CalibrationAccumulator`` (exactly ``fraction`` of them)."""
    position = np.arange(n)
    return np.floor((position + 1) * fraction) > np.floor(position * fraction)


def layer_features(features: FeatureSet) -> dict[str, torch.Tensor]:
    """The penultimate features followed by DeepDrift's taps, in depth order."""
    if PENULTIMATE in features.taps:
        raise ValueError(f"a tap is named {PENULTIMATE!r}, which the equal-footing benchmark reserves")
    return {PENULTIMATE: features.penultimate, **features.taps}


@dataclass(frozen=True)
class PeerNull:
    """A peer statistic's clean null at one batch size, with DeepDrift's own tail treatment: the draws' empirical
    survival up to their 90% quantile, a Pearson III tail spliced on beyond (``deepdrift.null_model.fit_null``), so
    the p-value of a strongly shifted batch is never capped at ``1 / draws`` and layers combine without ties."""

    fit: NullFit

    @classmethod
    def from_draws(cls, draws: np.ndarray, batch_size: int) -> PeerNull:
        values = np.asarray(draws, dtype=np.float64)
        if values.size < 2 or not np.isfinite(values).all():
            raise ValueError("null draws must be finite (score only batch sizes the statistic is defined for)")
        return cls(fit_null(values, batch_size))

    def sigma(self, values: np.ndarray) -> np.ndarray:
        """``Phi^-1(1 - p)`` of each value (~N(0, 1) on clean data); NaN stays NaN."""
        log_p = self.fit.log_sf(np.asarray(values, dtype=np.float64))
        finite = np.isfinite(log_p)
        return np.where(finite, -special.ndtri_exp(np.where(finite, log_p, -1.0)), np.nan)


def null_batches(n_rows: int, batch_size: int, n_draws: int, seed: int) -> np.ndarray:
    """``(n_draws, batch_size)`` row indices into the null set, no repeats within a batch (seeded per size)."""
    if batch_size > n_rows:
        raise ValueError(f"batch size {batch_size} exceeds the {n_rows} held-out calibration samples")
    rng = np.random.default_rng([seed, 7, batch_size])
    return np.argsort(rng.random((n_draws, n_rows)), axis=1)[:, :batch_size]


class LayerwiseScorer:
    """DeepDrift's and the peers' statistics on the same layers, from the same reference, each in sigma units.

    Args:
        statistics: names from :data:`FOOTING_STATISTICS`.
        calibration_config: DeepDrift's calibration settings; its ``holdout_fraction`` also splits every peer's
            calibration rows into reference and null sets, and its ``seed`` seeds the peers' null draws.
        null_draws: resampled clean batches per batch size for each peer's null (DeepDrift draws its own, 4000).
        knn_k: neighbours of the KNN statistic.
        chunk_size: calibration features are fed to DeepDrift in chunks of this many samples.

    Example:
        >>> scorer = LayerwiseScorer(["deepdrift", "mahalanobis"]).fit(calib)  # doctest: +SKIP
        >>> sigma = scorer.score(pool, {16: batches})[16]["mahalanobis"]  # (n_batches, layers)  # doctest: +SKIP
    """

    def __init__(
        self,
        statistics: Sequence[str] = FOOTING_STATISTICS,
        calibration_config: CalibrationConfig = CalibrationConfig(),
        null_draws: int = 4000,
        knn_k: int = 50,
        chunk_size: int = 128,
    ) -> None:
        unknown = [s for s in statistics if s not in FOOTING_STATISTICS]
        if unknown:
            raise ValueError(f"unknown statistics {unknown}; use names of {list(FOOTING_STATISTICS)}")
        self.statistics = tuple(statistics)
        self.calibration_config = calibration_config
        self.null_draws = null_draws
        self.knn_k = knn_k
        self.chunk_size = chunk_size
        self.layers: list[str] = []
        self._deepdrift: DriftScorer | None = None
        self._peers: dict[tuple[str, str], LayerStatistic] = {}
        self._null_rows: dict[tuple[str, str], object] = {}
        self._nulls: dict[tuple[str, str, int], PeerNull] = {}
        self.n_reference = 0
        self.n_null = 0

    def status(self, statistic: str, batch_size: int) -> str:
        """``"ok"``, ``"undefined"`` or ``"degenerate"`` for ``statistic`` at ``batch_size``."""
        if statistic in DEEPDRIFT_STATISTICS:
            return "ok"
        return LAYER_STATISTICS[statistic]().status(batch_size)

    def fit(self, calib: FeatureSet) -> LayerwiseScorer:
        """Fit every statistic on every layer: reference rows for the fit, held-out rows for the peers' nulls."""
        if calib.labels is None:
            raise ValueError("the equal-footing scorer needs labelled calibration features (Mahalanobis)")
        layers = layer_features(calib)
        self.layers = list(layers)
        held = holdout_mask(len(calib), self.calibration_config.holdout_fraction)
        self.n_reference, self.n_null = int((~held).sum()), int(held.sum())
        if any(s in DEEPDRIFT_STATISTICS for s in self.statistics):
            self._deepdrift = DriftScorer(self.calibration_config).fit_features(self._chunks(layers))
            if self._deepdrift.calibration is None or any(
                self._deepdrift.calibration.layers[name].count != self.n_reference for name in self.layers
            ):
                raise RuntimeError("DeepDrift's calibration count differs from the shared reference split")
        labels = calib.labels.numpy()
        self._peers, self._null_rows, self._nulls = {}, {}, {}
        for statistic in self.statistics:
            if statistic in DEEPDRIFT_STATISTICS:
                continue
            options = {"k": self.knn_k} if statistic == "knn" else {}
            for layer, x in layers.items():
                values = x.double().numpy()
                fitted = make_layer_statistic(statistic, **options).fit(values[~held], labels[~held])
                self._peers[statistic, layer] = fitted
                self._null_rows[statistic, layer] = fitted.prepare(values[held])
        return self

    def _chunks(self, layers: Mapping[str, torch.Tensor]) -> Iterator[dict[str, torch.Tensor]]:
        n = len(next(iter(layers.values())))
        for start in range(0, n, self.chunk_size):
            yield {name: x[start : start + self.chunk_size] for name, x in layers.items()}

    def _null(self, statistic: str, layer: str, batch_size: int) -> PeerNull:
        key = (statistic, layer, batch_size)
        if key not in self._nulls:
            draws = null_batches(self.n_null, batch_size, self.null_draws, self.calibration_config.seed)
            values = self._peers[statistic, layer].batch_statistics(self._null_rows[statistic, layer], draws)
            self._nulls[key] = PeerNull.from_draws(values, batch_size)
        return self._nulls[key]

    def score(self, pool: FeatureSet, batches: Mapping[int, np.ndarray]) -> dict[int, dict[str, np.ndarray]]:
        """Sigma of every statistic on every layer for batches drawn from ``pool``.

        Args:
            pool: features of the images batches are drawn from.
            batches: ``{batch size: (n_batches, batch size) row indices}``.

        Returns:
            ``{batch size: {statistic: (n_batches, len(layers)) sigma}}``; NaN where the statistic is undefined or
            degenerate at that batch size.
        """
        if not self.layers:
            raise RuntimeError("call fit(calib) before score()")
        layers = layer_features(pool)
        out: dict[int, dict[str, np.ndarray]] = {b: {} for b in batches}
        if self._deepdrift is not None:
            statistics = self._deepdrift_statistics(layers, batches)
            for b, values in statistics.items():
                table = self._deepdrift.null_table(b)
                for name, column in DEEPDRIFT_STATISTICS.items():
                    if name in self.statistics:
                        out[b][name] = table.sigma_and_pvalue(values, column)[0]
        for statistic in self.statistics:
            if statistic in DEEPDRIFT_STATISTICS:
                continue
            columns: dict[int, list[np.ndarray]] = {b: [] for b in batches}
            for layer in self.layers:
                fitted = self._peers[statistic, layer]
                prepared = fitted.prepare(layers[layer].double().numpy())
                for b, index in batches.items():
                    if fitted.status(b) != "ok":
                        columns[b].append(np.full(len(index), np.nan))
                        continue
                    raw = fitted.batch_statistics(prepared, index)
                    columns[b].append(self._null(statistic, layer, b).sigma(raw))
            for b in batches:
                out[b][statistic] = np.stack(columns[b], axis=1)
        return out

    def _deepdrift_statistics(
        self, layers: Mapping[str, torch.Tensor], batches: Mapping[int, np.ndarray]
    ) -> dict[int, np.ndarray]:
        """DeepDrift's raw ``(n_batches, layers, 3)`` statistics, all batches of a size at once (the same numbers
        as ``DriftScorer.statistics`` batch by batch, up to float64 rounding)."""
        assert self._deepdrift is not None and self._deepdrift.calibration is not None
        calibration = self._deepdrift.calibration
        out: dict[int, list[torch.Tensor]] = {b: [] for b in batches}
        for name in self.layers:
            ref = calibration.layers[name]
            z = (layers[name].double() - ref.mean.cpu()) * ref.var.cpu().rsqrt()
            principal = None if ref.principal is None else ref.principal.cpu().double()
            for b, index in batches.items():
                index = torch.as_tensor(index)
                step = max(1, CHUNK_ELEMENTS // (b * z.shape[1]))
                shift = torch.cat([z[index[i : i + step]].mean(dim=1) for i in range(0, len(index), step)])
                out[b].append(shift_statistics_from_means(shift, b, principal))
        return {b: torch.stack(parts, dim=1).numpy() for b, parts in out.items()}
