"""Batch-level shift detectors shared by the corruption and streaming studies: DeepDrift and the peers' methods.

Each detector is fitted on clean calibration features and scores a batch (higher: more shifted). Features come
from one forward pass (:func:`experiments.features.extract_features`), so every method sees the same activations;
every detector is built through the registry (:func:`make_detectors`).
"""

from experiments.baselines.base import BatchDetector, NotFittedError, PerSampleDetector
from experiments.baselines.deepdrift_detector import COMBINE_RULES, DeepDriftDetector, combine_drift
from experiments.baselines.registry import (
    DEEPDRIFT_RULES,
    DETECTORS,
    PEER_DETECTORS,
    available_detectors,
    make_detector,
    make_detectors,
    option_source,
)

__all__ = [
    "COMBINE_RULES",
    "DEEPDRIFT_RULES",
    "DETECTORS",
    "PEER_DETECTORS",
    "BatchDetector",
    "DeepDriftDetector",
    "NotFittedError",
    "PerSampleDetector",
    "available_detectors",
    "combine_drift",
    "make_detector",
    "make_detectors",
    "option_source",
]
