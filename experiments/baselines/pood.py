"""pytorch-ood's detectors (MSP, Energy, Mahalanobis, ViM, KNN) on precomputed features, batch score = mean.

All five come from pytorch-ood itself (``pip install pytorch-ood``); this module only adapts their
``fit_features`` / ``predict_features`` (or static ``score(logits)``) to :class:`BatchDetector`. pytorch-ood's
scores already follow "higher = more outlying", so nothing is negated here.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from experiments.baselines.base import PerSampleDetector, as_numpy
from experiments.features import FeatureSet, classifier_layer

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def _float64_default() -> Iterator[None]:
    """Make float64 torch's default dtype inside the block (restored afterwards, even on errors)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def _require_labels(calib: FeatureSet, name: str) -> None:
    if calib.labels is None:
        raise ValueError(f"{name} fits class-conditional statistics: build the calibration FeatureSet with labels")


class _LogitDetector(PerSampleDetector):
    """A detector that scores logits with a temperature and needs no fitting (MSP, Energy)."""

    def __init__(self, model: nn.Module | None = None, temperature: float = 1.0) -> None:
        self.temperature = temperature

    def fit(self, calib: FeatureSet) -> _LogitDetector:
        self._fitted = True
        return self


class MaxSoftmax(_LogitDetector):
    """Negative maximum softmax probability (Hendrycks & Gimpel, 2017); needs no fitting."""

    name = "MSP"

    def sample_scores(self, features: FeatureSet) -> np.ndarray:
        from pytorch_ood.detector import MaxSoftmax as _MSP

        return as_numpy(_MSP.score(features.logits, t=self.temperature))


class Energy(_LogitDetector):
    """Free energy ``-T logsumexp(logits / T)`` (Liu et al., 2020); needs no fitting."""

    name = "Energy"

    def sample_scores(self, features: FeatureSet) -> np.ndarray:
        from pytorch_ood.detector import EnergyBased

        return as_numpy(EnergyBased.score(features.logits, t=self.temperature))


class Mahalanobis(PerSampleDetector):
    """Distance to the closest class mean under a shared covariance (Lee et al., 2018), on penultimate features.

    Runs in float64 (features and torch's default dtype, which pytorch-ood uses for its class means and
    covariance): pytorch-ood inverts the pooled covariance with only a 1e-6 ridge, which in float32
    is numerically unstable (scores change with the thread count) when the feature width approaches the number
    of calibration samples. With more features than samples the covariance is singular and the scores are
    unreliable whatever the precision; the benchmark reports them as measured.
    """

    name = "Mahalanobis"

    def __init__(self, model: nn.Module | None = None) -> None:
        from pytorch_ood.detector import Mahalanobis as _Mahalanobis

        self._detector = _Mahalanobis(None)

    def fit(self, calib: FeatureSet) -> Mahalanobis:
        _require_labels(calib, self.name)
        with _float64_default():
            self._detector.fit_features(calib.penultimate.double(), calib.labels)
        self._fitted = True
        return self

    def sample_scores(self, features: FeatureSet) -> np.ndarray:
        self._require_fitted()
        with _float64_default():
            return as_numpy(self._detector.predict_features(features.penultimate.double()))


class ViM(PerSampleDetector):
    """Virtual-logit matching (Wang et al., 2022): residual norm off the principal subspace plus energy.

    Args:
        model: the classifier, whose final linear layer supplies ``W`` and ``b``.
        dim: dimension of the principal subspace; default half the feature width (OpenOOD uses 256 for the
            512-wide ResNet-18).
    """

    name = "ViM"

    def __init__(self, model: nn.Module, dim: int | None = None) -> None:
        head = classifier_layer(model)
        self.dim = dim or max(1, head.in_features // 2)
        if self.dim >= head.in_features:
            raise ValueError(f"ViM dim must be below the feature width {head.in_features}, got {self.dim}")
        from pytorch_ood.detector import ViM as _ViM

        self._detector = _ViM(None, d=self.dim, w=head.weight, b=head.bias)

    def fit(self, calib: FeatureSet) -> ViM:
        _require_labels(calib, self.name)
        self._detector.fit_features(calib.penultimate, calib.labels)
        self._fitted = True
        return self

    def sample_scores(self, features: FeatureSet) -> np.ndarray:
        self._require_fitted()
        return as_numpy(self._detector.predict_features(features.penultimate))


class KNN(PerSampleDetector):
    """Distance to the k-th nearest normalised calibration feature (Sun et al., 2022)."""

    name = "KNN"

    def __init__(self, model: nn.Module | None = None, k: int = 50) -> None:
        self.k = k
        self._detector = None

    def fit(self, calib: FeatureSet) -> KNN:
        from pytorch_ood.detector import KNN as _KNN

        _require_labels(calib, self.name)
        k = min(self.k, len(calib))
        if k < self.k:
            logger.warning("KNN: only %d calibration samples, using k=%d instead of %d", len(calib), k, self.k)
        self._detector = _KNN(None, k=k).fit_features(calib.penultimate, calib.labels)
        self._fitted = True
        return self

    def sample_scores(self, features: FeatureSet) -> np.ndarray:
        self._require_fitted()
        return as_numpy(self._detector.predict_features(features.penultimate))
