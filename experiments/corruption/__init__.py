"""Corruption benchmark (issue 4, figures 1-3): where in the network does each corruption show, does drift track
the accuracy loss, and how well do DeepDrift and the peers' detectors tell clean from corrupted batches?

Pipeline: :func:`build_corrupted_heldout` (cached corrupted held-out set) -> :func:`measure_corruption` (per model:
batch scores of every detector, per-tap drift, accuracy) -> :func:`corruption_report` (AUROC/TPR, figures, tables).
"""

from experiments.corruption.config import CorruptionConfig
from experiments.corruption.detection import detection_metrics, draw_batches
from experiments.corruption.run import build_corrupted_heldout, corruption_report, load_results, measure_corruption
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
    "build_corrupted_heldout",
    "corruption_report",
    "detection_metrics",
    "detection_results",
    "draw_batches",
    "drift_accuracy_correlation",
    "drift_profile",
    "load_results",
    "measure_corruption",
    "severity_table",
]
