"""Localisers beside the doctor: the first significant tap under a per-layer peer detector, and always-first-tap.

A peer localiser fits one detector per tap (Mahalanobis or kernel MMD from :mod:`experiments.baselines`, which
read a ``FeatureSet``'s ``penultimate``, so each tap's features are handed over in that slot). The calibration
features are split once, seeded: one half fits the detectors, the other half is each detector's clean null. At
batch size 1 the null is every null sample's score; at larger batches, ``null_draws`` random clean batches. A
batch's p-value per tap is ``(1 + #null >= score) / (1 + #null)``; then the doctor's own rule decides: Holm across
taps at the doctor's alpha, and the onset is the first significant tap in depth order (a non-finite score, e.g.
from a bit flip, counts as significant, as it does for the doctor). Only the statistic differs from the doctor.

A detector undefined at a batch size (MMD needs two samples) gives no verdicts there: the cell is missing, not 0.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from deepdrift import DoctorConfig
from deepdrift.corrections import adjust_pvalues
from experiments.baselines.base import BatchDetector, PerSampleDetector
from experiments.baselines.drift_tests import KernelMMD
from experiments.features import FeatureSet

PEER_LOCALISERS: tuple[str, ...] = ("mahalanobis", "mmd")
"""Peer detectors a config may name in ``faults.peers``."""
FIRST_TAP = "first_tap"
"""The trivial localiser's name: it always names tap 0 (and so never says "stable")."""
DOCTOR = "doctor"

logger = logging.getLogger(__name__)


def tap_view(feats: FeatureSet, tap: str) -> FeatureSet:
    """One tap's features in the ``penultimate`` slot, which the baselines read."""
    return FeatureSet(logits=feats.logits, penultimate=feats.taps[tap], labels=feats.labels)


class WhitenedMahalanobis(PerSampleDetector):
    """The baselines' Mahalanobis detector (pytorch-ood's fit: class means, a shared covariance with its 1e-6 ridge,
    float64), scored through a whitening map so that one ``N x D x D`` product serves every class.

    With the precision ``P = L L^T``, ``(z - mu_c) P (z - mu_c)^T = ||z L - mu_c L||^2``; pytorch-ood forms the
    product once per class, ten times the work on ten classes, which a benchmark scoring every tap of every fault
    cannot afford. The scores equal :class:`experiments.baselines.pood.Mahalanobis`'s up to float64 rounding (a test
    checks); a precision that is not numerically positive definite falls back to pytorch-ood's own scoring.
    """

    name = "Mahalanobis"
    chunk = 1024

    def __init__(self) -> None:
        self._fitted_detector = None
        self._map: torch.Tensor | None = None
        self._centres: torch.Tensor | None = None

    def fit(self, calib: FeatureSet) -> WhitenedMahalanobis:
        from pytorch_ood.detector import Mahalanobis as _Mahalanobis

        if calib.labels is None:
            raise ValueError("Mahalanobis fits class means: build the calibration FeatureSet with labels")
        previous = torch.get_default_dtype()
        torch.set_default_dtype(torch.float64)
        try:
            detector = _Mahalanobis(None)
            detector.fit_features(calib.penultimate.double(), calib.labels)
        finally:
            torch.set_default_dtype(previous)
        lower, info = torch.linalg.cholesky_ex(detector.precision.double())
        self._fitted_detector = detector
        self._map = lower if int(info) == 0 else None
        self._centres = detector.mu.double() @ lower if int(info) == 0 else None
        self._fitted = True
        return self

    def sample_scores(self, features: FeatureSet) -> np.ndarray:
        self._require_fitted()
        z = features.penultimate.double()
        if self._map is None or self._centres is None:
            previous = torch.get_default_dtype()
            torch.set_default_dtype(torch.float64)
            try:
                return self._fitted_detector.predict_features(z).numpy()
            finally:
                torch.set_default_dtype(previous)
        out = []
        for start in range(0, len(z), self.chunk):
            w = z[start : start + self.chunk] @ self._map
            out.append(0.5 * ((w[:, None, :] - self._centres[None]) ** 2).sum(-1).min(dim=1).values)
        return torch.cat(out).numpy() if out else np.empty(0)


def _detector(method: str, reference_size: int, seed: int) -> BatchDetector:
    if method == "mahalanobis":
        return WhitenedMahalanobis()
    if method == "mmd":
        return KernelMMD(reference_size=reference_size, seed=seed)
    raise ValueError(f"unknown peer localiser {method!r}; choose from {PEER_LOCALISERS}")


def consecutive_batches(n_images: int, batch_size: int, n_batches: int) -> np.ndarray:
    """``[n, batch_size]`` row indices of consecutive batches, as the doctor's batches are formed."""
    n = min(n_batches, n_images // batch_size)
    return np.arange(n * batch_size).reshape(n, batch_size)


def null_batches(n_pool: int, batch_size: int, draws: int, rng: np.random.Generator) -> np.ndarray:
    """Clean null batches from a pool: every sample once at batch size 1, else ``draws`` random batches (no
    repeats within a batch)."""
    if batch_size == 1:
        return np.arange(n_pool)[:, None]
    return np.stack([rng.choice(n_pool, size=batch_size, replace=False) for _ in range(draws)])


@dataclass(frozen=True)
class PeerLocaliser:
    """Per-tap detectors with their clean nulls; :meth:`onsets` applies the doctor's significance and onset rule.

    Attributes:
        name: the method (``mahalanobis`` / ``mmd``).
        taps: tap names in depth order.
        detectors: fitted detector per tap.
        nulls: sorted clean null scores per (tap, batch size).
        doctor: alpha and correction (the doctor's defaults).
    """

    name: str
    taps: tuple[str, ...]
    detectors: Mapping[str, BatchDetector]
    nulls: Mapping[tuple[str, int], np.ndarray]
    doctor: DoctorConfig = DoctorConfig()

    def defined(self, batch_size: int) -> bool:
        return all(d.min_batch_size <= batch_size for d in self.detectors.values())

    def p_values(self, feats: FeatureSet, batches: np.ndarray) -> np.ndarray:
        """``[n_batches, n_taps]`` one-sided p-values against each tap's clean null (0 for a non-finite score)."""
        batch_size = batches.shape[1]
        out = np.empty((len(batches), len(self.taps)))
        rows, local = np.unique(batches, return_inverse=True)  # score only the images the batches use
        local = local.reshape(batches.shape)
        for j, tap in enumerate(self.taps):
            scores = self.detectors[tap].batch_scores(tap_view(feats, tap).subset(rows), local)
            null = self.nulls[(tap, batch_size)]
            below = np.searchsorted(null, scores, side="left")
            out[:, j] = np.where(np.isfinite(scores), (1 + len(null) - below) / (1 + len(null)), 0.0)
        return out

    def onsets(self, feats: FeatureSet, batches: np.ndarray) -> np.ndarray:
        """First significant tap per batch after the correction across taps (-1: none, "stable")."""
        p = self.p_values(feats, batches)
        significant = np.stack([adjust_pvalues(row, self.doctor.correction) < self.doctor.alpha for row in p])
        first = significant.argmax(axis=1)
        return np.where(significant.any(axis=1), first, -1)


def fit_peer(
    method: str,
    calib: FeatureSet,
    batch_sizes: Sequence[int],
    *,
    reference_size: int = 250,
    null_draws: int = 1000,
    seed: int = 0,
    doctor: DoctorConfig = DoctorConfig(),
) -> PeerLocaliser:
    """Fit one ``method`` detector per tap on half of ``calib`` (labelled), and its null on the other half.

    Args:
        method: a name of :data:`PEER_LOCALISERS`.
        calib: clean calibration features with labels (Mahalanobis fits class means).
        batch_sizes: batch sizes to build nulls for (those the detector is undefined at are skipped).
        reference_size: MMD's reference sample (from the fitting half).
        null_draws: null batches per tap at batch sizes >= 2.
        seed: seeds the split, the reference and the null batches.
    """
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(calib))
    fit_part, null_part = (
        calib.subset(np.sort(order[: len(calib) // 2])),
        calib.subset(np.sort(order[len(calib) // 2 :])),
    )
    taps = tuple(calib.taps)
    detectors, nulls = {}, {}
    with torch.no_grad():
        for tap in taps:
            detector = _detector(method, reference_size, seed).fit(tap_view(fit_part, tap))
            detectors[tap] = detector
            for batch_size in batch_sizes:
                if batch_size < detector.min_batch_size:
                    continue
                idx = null_batches(len(null_part), batch_size, null_draws, rng)
                if len(taps) / (1 + len(idx)) >= doctor.alpha:
                    logger.warning(
                        "%s at batch %d: %d null batches cannot reach Holm significance over %d taps at alpha %g; "
                        "raise the calibration size or peer_null_draws",
                        method, batch_size, len(idx), len(taps), doctor.alpha,
                    )  # fmt: skip
                nulls[(tap, batch_size)] = np.sort(detector.batch_scores(tap_view(null_part, tap), idx))
    return PeerLocaliser(method, taps, detectors, nulls, doctor)
