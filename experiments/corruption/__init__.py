"""Corruption benchmark: where in the network does each corruption show, does drift track the accuracy loss, and
how well do DeepDrift and the peers' detectors tell clean from corrupted batches?

Pipeline: :func:`build_corrupted_set` (cached corrupted held-out set) -> :func:`measure_model` (per model: batch
scores of every detector, per-tap drift, accuracy) -> :func:`corruption_report` (AUROC/TPR, figures, tables).
The workflow's entries, one per rule, are in :mod:`experiments.corruption.run`.
"""

from experiments.corruption.config import CorruptionConfig
from experiments.corruption.detection import detection_metrics, draw_batches
from experiments.corruption.images import build_corrupted_set
from experiments.corruption.measure import measure_model
from experiments.corruption.run import corruption_report, load_results
from experiments.corruption.smoke import smoke_profile
from experiments.corruption.summary import (
    METHOD_LABELS,
    accuracy_vs_drift,
    detection_results,
    drift_accuracy_correlation,
    drift_profile,
    severity_table,
)

__all__ = [
    "METHOD_LABELS",
    "CorruptionConfig",
    "accuracy_vs_drift",
    "build_corrupted_set",
    "corruption_report",
    "detection_metrics",
    "detection_results",
    "draw_batches",
    "drift_accuracy_correlation",
    "drift_profile",
    "load_results",
    "measure_model",
    "severity_table",
    "smoke_profile",
]
