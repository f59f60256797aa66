"""Batch-level shift detectors shared by the corruption and streaming studies: DeepDrift and the peers' methods.

Each detector is fitted on clean calibration features and scores a batch (higher: more shifted). Features come
from one forward pass (:func:`experiments.features.extract_features`); the peers' detectors read the logits or the
penultimate features, DeepDrift its taps. Every detector is built through the registry (:func:`make_detectors`).
:mod:`experiments.baselines.layerwise` puts them on equal footing: the peers' statistics on DeepDrift's layers, from
the same reference rows, each turned into sigma by its own clean null.
"""

from experiments.baselines.base import BatchDetector, NotFittedError, PerSampleDetector
from experiments.baselines.deepdrift_detector import COMBINE_RULES, DeepDriftDetector, combine_drift
from experiments.baselines.registry import (
    DEEPDRIFT_RULES,
    DETECTORS,
    PEER_DETECTORS,
    available_detectors,
    detector_status,
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
    "detector_status",
    "make_detector",
    "make_detectors",
    "option_source",
]
