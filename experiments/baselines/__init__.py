"""Batch-level shift detectors shared by the corruption and streaming studies: DeepDrift and the peers' methods.

Each detector is fitted on clean calibration features and scores a batch (higher: more shifted). Features come
from one forward pass (:func:`extract_features`), so every method sees the same activations.
"""

from experiments.baselines.base import BatchDetector, NotFittedError, PerSampleDetector
from experiments.baselines.deepdrift_detector import COMBINE_RULES, DeepDriftDetector, combine_drift
from experiments.baselines.features import FeatureSet, classifier_layer, extract_features
from experiments.baselines.registry import (
    DETECTORS,
    PEER_DETECTORS,
    available_detectors,
    make_detector,
    make_detectors,
)

__all__ = [
    "COMBINE_RULES",
    "DETECTORS",
    "PEER_DETECTORS",
    "BatchDetector",
    "DeepDriftDetector",
    "FeatureSet",
    "NotFittedError",
    "PerSampleDetector",
    "available_detectors",
    "classifier_layer",
    "combine_drift",
    "extract_features",
    "make_detector",
    "make_detectors",
]
