"""The one interface every shift detector of the benchmarks implements: ``fit(calib)``, ``batch_score(batch)``.

Convention (never flipped downstream): a higher batch score means "more shifted". Detectors that score single
samples (pytorch-ood's) turn them into a batch score by averaging, which is how a per-sample OOD detector is
usually pressed into batch-level shift detection (Rabanser et al., 2019, "Failing Loudly").
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
import torch

from experiments.features import FeatureSet


class NotFittedError(RuntimeError):
    """A detector was asked for scores before ``fit(calib)``."""


class BatchDetector(ABC):
    """A batch-level shift detector fitted on clean calibration features.

    Attributes:
        name: display name used in tables and figures.
        min_batch_size: smallest batch the method is defined for (e.g. kernel MMD needs two samples).
        degenerate_below: batches smaller than this are defined but degenerate (a one-sample KS statistic takes a
            handful of values); benchmarks mark such cells instead of scoring them.
    """

    name: str = "detector"
    min_batch_size: int = 1
    degenerate_below: int = 1

    @abstractmethod
    def fit(self, calib: FeatureSet) -> BatchDetector:
        """Learn the clean reference from calibration features; returns ``self``."""

    @abstractmethod
    def batch_score(self, batch: FeatureSet) -> float:
        """Shift score of one batch: higher means more shifted."""

    def status(self, batch_size: int) -> str:
        """``"ok"``, ``"undefined"`` (below ``min_batch_size``) or ``"degenerate"`` at this batch size."""
        if batch_size < self.min_batch_size:
            return "undefined"
        return "degenerate" if batch_size < self.degenerate_below else "ok"

    def batch_scores(self, pool: FeatureSet, batches: np.ndarray) -> np.ndarray:
        """Scores of many batches drawn from ``pool``: ``batches`` is ``[n_batches, batch_size]`` row indices."""
        if batches.shape[1] < self.min_batch_size:
            return np.full(len(batches), np.nan)
        return np.array([self.batch_score(pool.subset(idx)) for idx in batches], dtype=np.float64)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class PerSampleDetector(BatchDetector):
    """A detector that scores single samples; the batch score is the mean of its samples' scores."""

    _fitted: bool = False

    @abstractmethod
    def sample_scores(self, features: FeatureSet) -> np.ndarray:
        """Per-sample outlier scores ``[N]`` (higher: more outlying)."""

    def batch_score(self, batch: FeatureSet) -> float:
        return float(np.mean(self.sample_scores(batch)))

    def batch_scores(self, pool: FeatureSet, batches: np.ndarray) -> np.ndarray:
        """Score every pool sample once, then average per batch (same result as ``batch_score``, much faster)."""
        return self.sample_scores(pool)[batches].mean(axis=1)

    def _require_fitted(self) -> None:
        if not self._fitted:
            raise NotFittedError(f"{self.name}: call fit(calib_features) before scoring")


def as_numpy(values: torch.Tensor) -> np.ndarray:
    """float64 numpy copy of a score tensor."""
    return values.detach().cpu().double().numpy()
