"""The peers' statistics on any one layer's pooled features, scored for many batches of a pool at once.

The equal-footing benchmark runs each peer's statistic on exactly the layers DeepDrift watches, so the per-layer
statistic is separated from the choice of layers. Each statistic is fitted on clean reference features, then
turns a pool of per-sample features into whatever per-sample terms its batch statistic needs (:meth:`prepare`),
so thousands of batches drawn from one pool cost a gather each instead of a pass over the reference:

* ``mahalanobis``: distance to the nearest class mean under the pooled within-class covariance (Lee et al., 2018),
  averaged over the batch (as pytorch-ood's per-sample score is pressed into batch detection);
* ``knn``: distance of the unit-normalised feature to its k-th nearest normalised reference feature (Sun et al.,
  2022), averaged over the batch;
* ``mmd``: unbiased squared kernel MMD between the batch and the reference, Gaussian kernel whose bandwidth is the
  median reference distance, fixed at fit time (torchdrift re-derives it per batch, which no precomputation allows);
  undefined for a batch of one (the within-batch term divides by ``B (B - 1)``);
* ``ks``: the largest two-sample Kolmogorov-Smirnov distance over features (torchdrift's statistic), exact with ties;
  degenerate for a batch of one, where each feature's distance is ``max(F, 1 - F)`` of one rank and the batch score
  saturates near 1 as soon as one of many features is extreme.

All arithmetic is float64 numpy; higher always means more shifted.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

CHUNK_ELEMENTS = 1 << 21
"""Batch rows x features gathered per vectorised step (bounds the memory of the ``(chunk, B, D)`` arrays)."""


class LayerStatistic(ABC):
    """A batch statistic of one layer's features, fitted on clean reference features.

    Attributes:
        name: key of :data:`LAYER_STATISTICS`.
        min_batch_size: smaller batches are undefined for this statistic (scored NaN).
        degenerate_below: batches smaller than this are defined but degenerate (a handful of distinct values);
            the benchmark marks them instead of scoring them.
    """

    name: str = "statistic"
    min_batch_size: int = 1
    degenerate_below: int = 1
    _width: int = 1  # features gathered per batch row (sets the chunk size)

    @abstractmethod
    def fit(self, reference: np.ndarray, labels: np.ndarray | None = None) -> LayerStatistic:
        """Learn the clean reference from ``(n, D)`` features (and labels, for class-conditional statistics)."""

    @abstractmethod
    def prepare(self, x: np.ndarray) -> Any:
        """Per-sample terms of a pool ``(N, D)`` that :meth:`batch_statistics` reads."""

    @abstractmethod
    def _batches(self, prepared: Any, batches: np.ndarray) -> np.ndarray:
        """Statistics of ``(n_batches, B)`` row indices into the prepared pool."""

    def status(self, batch_size: int) -> str:
        """``"ok"``, ``"undefined"`` or ``"degenerate"`` at this batch size."""
        if batch_size < self.min_batch_size:
            return "undefined"
        return "degenerate" if batch_size < self.degenerate_below else "ok"

    def _gathered(self, batch_size: int) -> int:
        """Elements one batch gathers (sets how many batches a vectorised step takes)."""
        return batch_size * self._width

    def batch_statistics(self, prepared: Any, batches: np.ndarray) -> np.ndarray:
        """``(n_batches,)`` statistics of the batches (NaN where undefined or degenerate)."""
        batches = np.asarray(batches)
        if self.status(batches.shape[1]) != "ok":
            return np.full(len(batches), np.nan)
        chunk = max(1, CHUNK_ELEMENTS // self._gathered(batches.shape[1]))
        parts = [self._batches(prepared, batches[i : i + chunk]) for i in range(0, len(batches), chunk)]
        return np.concatenate(parts) if parts else np.empty(0)


class _PerSampleMean(LayerStatistic):
    """A per-sample outlier score, averaged over the batch."""

    def prepare(self, x: np.ndarray) -> np.ndarray:
        return self.sample_scores(np.asarray(x, dtype=np.float64))

    @abstractmethod
    def sample_scores(self, x: np.ndarray) -> np.ndarray:
        """``(N,)`` per-sample scores."""

    def _batches(self, prepared: np.ndarray, batches: np.ndarray) -> np.ndarray:
        return prepared[batches].mean(axis=1)


class LayerMahalanobis(_PerSampleMean):
    """Smallest squared Mahalanobis distance to a class mean, shared within-class covariance (pseudo-inverse:
    pooled features of wide layers can be rank-deficient; directions below 1e-10 of the largest variance are
    dropped)."""

    name = "mahalanobis"

    def fit(self, reference: np.ndarray, labels: np.ndarray | None = None) -> LayerMahalanobis:
        if labels is None:
            raise ValueError("mahalanobis fits class means: pass the reference labels")
        x, y = np.asarray(reference, dtype=np.float64), np.asarray(labels)
        classes = np.unique(y)
        means = np.stack([x[y == c].mean(axis=0) for c in classes])
        centred = (x - means[np.searchsorted(classes, y)]) / np.sqrt(len(x))
        # the covariance is centred.T @ centred; its eigenvectors from the SVD of centred (cheap when D >> n)
        _, singular, axes = np.linalg.svd(centred, full_matrices=False)
        keep = singular > singular.max() * 1e-5
        self._whiten = axes[keep].T / singular[keep]
        self._means = means @ self._whiten
        return self

    def sample_scores(self, x: np.ndarray) -> np.ndarray:
        z = x @ self._whiten
        squared = (z * z).sum(1)[:, None] - 2 * z @ self._means.T + (self._means * self._means).sum(1)[None, :]
        return squared.min(axis=1)


class LayerKNN(_PerSampleMean):
    """Euclidean distance of the unit-normalised feature to its k-th nearest normalised reference feature."""

    name = "knn"

    def __init__(self, k: int = 50) -> None:
        self.k = k

    def fit(self, reference: np.ndarray, labels: np.ndarray | None = None) -> LayerKNN:
        self._reference = _unit(np.asarray(reference, dtype=np.float64))
        self._k = min(self.k, len(self._reference))
        return self

    def sample_scores(self, x: np.ndarray) -> np.ndarray:
        cosine = _unit(x) @ self._reference.T
        kth = -np.partition(-cosine, self._k - 1, axis=1)[:, self._k - 1]  # k-th largest similarity
        return np.sqrt(np.clip(2.0 - 2.0 * kth, 0.0, None))


class LayerMMD(LayerStatistic):
    """Unbiased squared MMD to the reference, Gaussian kernel with the reference's median distance as bandwidth."""

    name = "mmd"
    min_batch_size = 2

    def fit(self, reference: np.ndarray, labels: np.ndarray | None = None) -> LayerMMD:
        y = np.asarray(reference, dtype=np.float64)
        d2 = _squared_distances(y, y)
        n = len(y)
        upper = d2[np.triu_indices(n, k=1)]
        self._gamma = 1.0 / (2.0 * max(float(np.median(upper)), 1e-12))
        kernel = np.exp(-self._gamma * d2)
        self._yy = (kernel.sum() - n) / (n * (n - 1))
        self._reference = y
        return self

    def prepare(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = np.asarray(x, dtype=np.float64)
        cross = np.exp(-self._gamma * _squared_distances(x, self._reference)).mean(axis=1)
        within = np.exp(-self._gamma * _squared_distances(x, x))
        return cross, within

    def _gathered(self, batch_size: int) -> int:
        return batch_size * batch_size

    def _batches(self, prepared: tuple[np.ndarray, np.ndarray], batches: np.ndarray) -> np.ndarray:
        cross, within = prepared
        b = batches.shape[1]
        block = within[batches[:, :, None], batches[:, None, :]]  # (n, B, B); rows are distinct samples
        xx = (block.sum(axis=(1, 2)) - np.trace(block, axis1=1, axis2=2)) / (b * (b - 1))
        return xx + self._yy - 2.0 * cross[batches].mean(axis=1)


class LayerKS(LayerStatistic):
    """Largest two-sample KS distance over features between the batch and the reference (exact with ties)."""

    name = "ks"
    degenerate_below = 2

    def fit(self, reference: np.ndarray, labels: np.ndarray | None = None) -> LayerKS:
        self._sorted = np.sort(np.asarray(reference, dtype=np.float64), axis=0)
        self._width = self._sorted.shape[1]
        return self

    def prepare(self, x: np.ndarray) -> np.ndarray:
        """Per sample and feature, the code ``below * (n + 1) + at_or_below`` of how many of the ``n`` reference
        values lie strictly below it and at or below it: codes order samples as their values do, and equal codes
        mean the reference's ECDF is the same at both values, so they may be treated as tied."""
        x = np.asarray(x, dtype=np.float64)
        n_ref = len(self._sorted)
        codes = np.empty(x.shape, dtype=np.int32 if (n_ref + 1) ** 2 < 2**31 else np.int64)
        for f in range(x.shape[1]):
            below = np.searchsorted(self._sorted[:, f], x[:, f], side="left")
            codes[:, f] = below * (n_ref + 1) + np.searchsorted(self._sorted[:, f], x[:, f], side="right")
        return np.ascontiguousarray(codes.T)  # (D, N): a batch gathers contiguous rows per feature

    def _batches(self, prepared: np.ndarray, batches: np.ndarray) -> np.ndarray:
        n_ref, b = len(self._sorted), batches.shape[1]
        codes = np.sort(prepared[:, batches], axis=2)  # (D, n, B): each feature's batch in order
        below = codes // (n_ref + 1)
        at_or_below = codes - below * (n_ref + 1)
        starts = np.ones(codes.shape, dtype=bool)
        np.not_equal(codes[..., 1:], codes[..., :-1], out=starts[..., 1:])
        ends = np.ones(codes.shape, dtype=bool)
        ends[..., :-1] = starts[..., 1:]
        step = np.float32(1.0 / n_ref)
        position = np.arange(b, dtype=np.float32) / np.float32(b)
        # the ECDFs differ most at a tied run's value (batch: run end + 1) or just below it (batch: run start)
        at = np.abs(position + np.float32(1.0 / b) - at_or_below * step)
        at *= ends
        just_below = np.abs(position - below * step)
        just_below *= starts
        return np.maximum(at.max(axis=(0, 2)), just_below.max(axis=(0, 2))).astype(np.float64)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d2 = (a * a).sum(1)[:, None] - 2.0 * a @ b.T + (b * b).sum(1)[None, :]
    return np.clip(d2, 0.0, None)


LAYER_STATISTICS: dict[str, type[LayerStatistic]] = {
    "mahalanobis": LayerMahalanobis,
    "knn": LayerKNN,
    "mmd": LayerMMD,
    "ks": LayerKS,
}
"""The peers' statistics that run per layer (the logit scores MSP/Energy and ViM's head residual have no per-layer
counterpart: they read the classifier's head)."""


def make_layer_statistic(name: str, **options: Any) -> LayerStatistic:
    """Build (not fit) the layer statistic ``name`` (``knn`` takes ``k``)."""
    try:
        factory = LAYER_STATISTICS[name]
    except KeyError:
        raise ValueError(f"unknown layer statistic {name!r}; use one of {sorted(LAYER_STATISTICS)}") from None
    return factory(**options)
