"""Batch sampling and detection metrics: AUROC and TPR at 5% FPR of clean vs shifted batch scores.

Convention, fixed for every method: the positive class is "shifted" and a higher score means "more shifted".
AUROCs below 0.5 are reported as measured (a method that scores corrupted batches as *less* shifted than clean
ones is worse than chance on that corruption; flipping its sign after seeing the data would be cheating).
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve


def draw_batches(pool_size: int, batch_size: int, n_batches: int, rng: np.random.Generator) -> np.ndarray:
    """``[n_batches, batch_size]`` row indices; no repeats within a batch, batches may overlap.

    Raises:
        ValueError: the pool is smaller than one batch.
    """
    if batch_size > pool_size:
        raise ValueError(f"batch size {batch_size} exceeds the pool of {pool_size} images")
    return np.stack([rng.choice(pool_size, size=batch_size, replace=False) for _ in range(n_batches)])


def detection_metrics(clean: np.ndarray, shifted: np.ndarray, fpr: float = 0.05) -> tuple[float, float]:
    """AUROC and true-positive rate at ``fpr`` false-positive rate of ``shifted`` (positives) vs ``clean``.

    The TPR is the largest one reachable with a threshold whose false-positive rate on ``clean`` is at most
    ``fpr`` (from sklearn's ROC curve, no interpolation). Non-finite scores give ``(nan, nan)``: a method that
    is undefined for this batch size is reported as missing, never as chance.

    Returns:
        ``(auroc, tpr_at_fpr)``.
    """
    clean, shifted = np.asarray(clean, dtype=np.float64), np.asarray(shifted, dtype=np.float64)
    if clean.size == 0 or shifted.size == 0:
        raise ValueError("need at least one clean and one shifted score")
    if not (np.isfinite(clean).all() and np.isfinite(shifted).all()):
        return float("nan"), float("nan")
    y_true = np.r_[np.zeros(clean.size), np.ones(shifted.size)]
    y_score = np.r_[clean, shifted]
    auroc = float(roc_auc_score(y_true, y_score))
    fprs, tprs, _ = roc_curve(y_true, y_score)
    tpr = float(tprs[fprs <= fpr + 1e-12].max())
    return auroc, tpr
