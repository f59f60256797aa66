"""DeepDrift as a batch detector: per-tap drift from ``DriftScorer``, combined over taps by a clean-data-only rule.

Why fixed rules: choosing the "best" tap on corrupted data would leak the test distribution into the detector.
Both rules below need nothing but the calibrated per-tap drift, which is ~N(0, 1) per tap on clean data:

* ``max``: the largest drift over taps (alarm when any layer moves);
* ``stouffer``: ``sum(drift) / sqrt(K)``, Stouffer's combination (N(0, 1) on clean data if taps were independent;
  they are not, so its clean spread is wider, but AUROC only depends on the ordering).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import replace

import numpy as np
import torch
from torch import nn

import deepdrift
from deepdrift import CalibrationConfig, DriftScorer
from deepdrift.presets import PresetName
from experiments.baselines.base import BatchDetector, NotFittedError
from experiments.features import FeatureSet

COMBINE_RULES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "max": lambda drift: drift.max(axis=-1),
    "stouffer": lambda drift: drift.sum(axis=-1) / np.sqrt(drift.shape[-1]),
}
"""Tap-combination rules: ``[..., K]`` per-tap drift -> ``[...]`` batch score. None looks at shifted data."""


def combine_drift(drift: np.ndarray, rule: str) -> np.ndarray:
    """Combine per-tap drift (last axis) with one of :data:`COMBINE_RULES`."""
    try:
        return COMBINE_RULES[rule](np.asarray(drift, dtype=np.float64))
    except KeyError:
        raise ValueError(f"unknown combine rule {rule!r}; use one of {sorted(COMBINE_RULES)}") from None


class _SharedDrift:
    """One fitted ``DriftScorer`` and its last per-tap drift, shared by every combination rule built from it."""

    def __init__(self, calibration_config: CalibrationConfig, chunk_size: int, preset: PresetName = "default") -> None:
        settings = deepdrift.preset(preset)
        if preset != "default":  # the preset's own calibration settings, keeping the study's seed and sizes
            calibration_config = replace(
                calibration_config, principal_max_features=settings["calibration_config"].principal_max_features
            )
        self.scorer = DriftScorer(calibration_config, statistic=settings["statistic"])
        self.means_only = settings["pooling"].summary == "mean"
        self.chunk_size = chunk_size
        self.tap_names: list[str] = []
        self._fitted_on: FeatureSet | None = None
        self._last: tuple[FeatureSet, np.ndarray, np.ndarray] | None = None

    def fit(self, calib: FeatureSet) -> None:
        if calib is self._fitted_on:
            return  # a sibling rule fitted the shared scorer on these very features
        if not calib.taps:
            raise ValueError("DeepDrift needs tap features: extract the calibration FeatureSet with `taps=`")
        fitted_on = calib
        calib = self._pooled(calib)

        def chunks() -> Iterator[dict[str, torch.Tensor]]:
            for start in range(0, len(calib), self.chunk_size):
                yield {name: x[start : start + self.chunk_size] for name, x in calib.taps.items()}

        self.scorer.fit_features(chunks())
        self.tap_names = list(self.scorer.calibration.names)
        self._fitted_on, self._last = fitted_on, None

    def _pooled(self, features: FeatureSet) -> FeatureSet:
        """The tap features this preset scores (channel means only for ``fast``)."""
        return features.channel_means() if self.means_only else features

    def layer_drift(self, batch: FeatureSet, name: str) -> np.ndarray:
        if not self.scorer.is_calibrated:
            raise NotFittedError(f"{name}: call fit(calib_features) before scoring")
        batch = self._pooled(batch)
        scores = self.scorer.score_features({tap: batch.taps[tap] for tap in self.tap_names})
        return np.array([scores[tap].drift for tap in self.tap_names], dtype=np.float64)

    def layer_drifts(self, pool: FeatureSet, batches: np.ndarray, name: str) -> np.ndarray:
        """Per-tap drift of many batches; the same pool and batch array again returns the stored result."""
        if self._last is not None and self._last[0] is pool and self._last[1] is batches:
            return self._last[2]
        drift = np.stack([self.layer_drift(pool.subset(idx), name) for idx in batches])
        self._last = (pool, batches, drift)
        return drift


class DeepDriftDetector(BatchDetector):
    """Calibrated per-tap drift (sigma units) of DeepDrift, combined into one batch score.

    Args:
        model: unused (the taps' features come in the :class:`FeatureSet`); accepted for the registry.
        combine: ``"max"`` or ``"stouffer"`` (see :data:`COMBINE_RULES`).
        calibration_config: DeepDrift's calibration settings (held-out share for the null, reservoir, seed).
        chunk_size: calibration features are fed in chunks of this many samples (moments are exact either way).
        preset: ``deepdrift.preset`` to score with; ``fast`` reads each tap's channel means from the full features
            (so one extraction serves both) and scores the mean shift alone.

    Example:
        >>> by_max = DeepDriftDetector(combine="max").fit(calib)  # doctest: +SKIP
        >>> by_sum = by_max.with_rule("stouffer")  # same scorer: fitted once, each batch scored once
    """

    def __init__(
        self,
        model: nn.Module | None = None,
        combine: str = "max",
        calibration_config: CalibrationConfig = CalibrationConfig(),
        chunk_size: int = 128,
        preset: str = "default",
    ) -> None:
        if combine not in COMBINE_RULES:
            raise ValueError(f"unknown combine rule {combine!r}; use one of {sorted(COMBINE_RULES)}")
        self.combine = combine
        self.name = f"DeepDrift ({combine})" if preset == "default" else f"DeepDrift {preset} ({combine})"
        self._shared = _SharedDrift(calibration_config, chunk_size, preset)  # type: ignore[arg-type]

    @property
    def scorer(self) -> DriftScorer:
        return self._shared.scorer

    @property
    def tap_names(self) -> list[str]:
        return self._shared.tap_names

    def with_rule(self, combine: str) -> DeepDriftDetector:
        """The same calibrated per-tap drift combined by another rule (fit and per-tap scores are shared)."""
        if combine not in COMBINE_RULES:
            raise ValueError(f"unknown combine rule {combine!r}; use one of {sorted(COMBINE_RULES)}")
        other = copy.copy(self)
        other.combine, other.name = combine, f"DeepDrift ({combine})"
        return other

    def fit(self, calib: FeatureSet) -> DeepDriftDetector:
        self._shared.fit(calib)
        return self

    def layer_drift(self, batch: FeatureSet) -> np.ndarray:
        """Drift of every tap (calibration order) for one batch, shape ``[K]``."""
        return self._shared.layer_drift(batch, self.name)

    def layer_drifts(self, pool: FeatureSet, batches: np.ndarray) -> np.ndarray:
        """Per-tap drift of many batches drawn from ``pool``: ``[n_batches, K]``."""
        return self._shared.layer_drifts(pool, batches, self.name)

    def batch_score(self, batch: FeatureSet) -> float:
        return float(combine_drift(self.layer_drift(batch), self.combine))

    def batch_scores(self, pool: FeatureSet, batches: np.ndarray) -> np.ndarray:
        return combine_drift(self.layer_drifts(pool, batches), self.combine)
