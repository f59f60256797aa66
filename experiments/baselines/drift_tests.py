"""torchdrift's two-sample drift tests (kernel MMD, per-feature KS) on penultimate features.

Both come from torchdrift itself; the batch score is the detector's test statistic (higher: more shifted), not
its p-value: the MMD p-value needs a 1000-permutation bootstrap per batch, too slow for thousands of batches on a
CPU, and the KS p-value is a monotone function of the statistic at a fixed batch size, so AUROCs are the same.

The reference is a seeded random subset of the calibration features (``reference_size``): both tests cost
O(reference x batch) per batch (MMD computes all pairwise distances, KS sorts the joint sample).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from experiments.baselines.base import BatchDetector, NotFittedError
from experiments.features import FeatureSet


class _TorchDriftTest(BatchDetector):
    def __init__(self, model: nn.Module | None = None, reference_size: int = 1000, seed: int = 0) -> None:
        self.reference_size = reference_size
        self.seed = seed
        self._detector = self._make()

    def _make(self) -> nn.Module:
        raise NotImplementedError

    def fit(self, calib: FeatureSet) -> _TorchDriftTest:
        rng = np.random.default_rng(self.seed)
        n = min(self.reference_size, len(calib))
        index = torch.as_tensor(np.sort(rng.choice(len(calib), size=n, replace=False)))
        self._detector.fit(calib.penultimate[index])
        return self

    def batch_score(self, batch: FeatureSet) -> float:
        if self._detector.base_outputs is None:
            raise NotFittedError(f"{self.name}: call fit(calib_features) before scoring")
        if len(batch) < self.min_batch_size:
            return float("nan")
        with torch.no_grad():
            return float(self._detector(batch.penultimate))


class KernelMMD(_TorchDriftTest):
    """torchdrift ``KernelMMDDriftDetector`` (Gaussian kernel, median-distance bandwidth).

    Undefined for a single sample: torchdrift's unbiased within-batch term divides by ``n (n - 1)``.
    """

    name = "MMD"
    min_batch_size = 2

    def _make(self) -> nn.Module:
        from torchdrift.detectors import KernelMMDDriftDetector

        return KernelMMDDriftDetector(return_p_value=False)


class KolmogorovSmirnov(_TorchDriftTest):
    """torchdrift ``KSDriftDetector``: the largest per-feature two-sample KS statistic.

    Degenerate for a single sample: each feature's distance is then ``max(F, 1 - F)`` of one rank, and the largest
    over many features sits at or near 1 for most clean samples (ties that leave no usable threshold).
    """

    name = "KS"
    degenerate_below = 2

    def _make(self) -> nn.Module:
        from torchdrift.detectors import KSDriftDetector

        return KSDriftDetector(return_p_value=False)
