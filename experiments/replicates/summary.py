"""Per-seed headline numbers with their intervals, and their mean over seeds with a nested bootstrap interval."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from experiments.localisation.evaluate import CONTROL, HELDOUT
from experiments.localisation.peers import DOCTOR, FIRST_TAP
from experiments.null_grid import GridCell, batch_exceedances
from experiments.null_tail import nominal
from experiments.replicates.intervals import Cluster, across_seeds, seed_estimate

SIGMA = "clean exceedance of 3 sigma (x nominal)"
ONSET_ALL = "held-out onset exact: all faults"
ONSET_HARMFUL = "held-out onset exact: faults costing >= {drop:g} pts"
FIRST_TAP_HARMFUL = "always-first-tap onset exact: faults costing >= {drop:g} pts"
DETECTED_HARMFUL = "held-out detected: faults costing >= {drop:g} pts"
FALSE_DIAGNOSES = "clean control: false diagnoses"
ACCURACY = "test accuracy"
"""Metric labels of the tables (the ``>= x pts`` ones carry the fault study's ``min_accuracy_change``)."""


@dataclass(frozen=True)
class Subject:
    """One replicate model: its group, key, training seed, held-out accuracy, clean cells and verdicts."""

    architecture: str
    model: str
    seed: int
    accuracy: float
    cells: list[GridCell]
    verdicts: pd.DataFrame


def sigma_clusters(cells: Sequence[GridCell], batch_size: int) -> list[Cluster]:
    """One cluster per calibration split: taps above 3 sigma per batch, out of the batch's taps."""
    clusters = []
    for cell in cells:
        if cell.batch_size != batch_size:
            continue
        counts = batch_exceedances(cell, 3.0).astype(float)
        clusters.append(Cluster(counts, np.full(counts.size, float(cell.drift.shape[1]))))
    return clusters


def fault_clusters(
    verdicts: pd.DataFrame, batch_size: int, localiser: str, column: str, fault_set: str, min_drop: float | None
) -> list[Cluster]:
    """One cluster per fault (its batches share the fault's draw): ``column`` per batch, out of one."""
    part = verdicts[
        (verdicts["batch_size"] == batch_size)
        & (verdicts["localiser"] == localiser)
        & (verdicts["fault_set"] == fault_set)
    ]
    if fault_set != CONTROL:
        part = part[part["kind"] != "none"]
    if min_drop is not None:
        part = part[part["accuracy_drop"].abs() >= min_drop]
    return [
        Cluster(group[column].to_numpy(dtype=float), np.ones(len(group)))
        for _, group in part.groupby("fault_id", sort=True)
    ]


def metric_clusters(min_drop: float) -> dict[str, Callable[[Subject, int], list[Cluster]]]:
    """Each interval metric's clusters for one subject at one batch size."""
    return {
        SIGMA: lambda s, b: sigma_clusters(s.cells, b),
        ONSET_ALL: lambda s, b: fault_clusters(s.verdicts, b, DOCTOR, "onset_exact", HELDOUT, None),
        ONSET_HARMFUL.format(drop=min_drop): lambda s, b: fault_clusters(
            s.verdicts, b, DOCTOR, "onset_exact", HELDOUT, min_drop
        ),
        FIRST_TAP_HARMFUL.format(drop=min_drop): lambda s, b: fault_clusters(
            s.verdicts, b, FIRST_TAP, "onset_exact", HELDOUT, min_drop
        ),
        DETECTED_HARMFUL.format(drop=min_drop): lambda s, b: fault_clusters(
            s.verdicts, b, DOCTOR, "detected", HELDOUT, min_drop
        ),
        FALSE_DIAGNOSES: lambda s, b: fault_clusters(s.verdicts, b, DOCTOR, "detected", CONTROL, None),
    }


def replicate_tables(
    subjects: Sequence[Subject], batch_sizes: Mapping[str, Sequence[int]], min_drop: float, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(per_seed, summary)``: every metric per subject and batch size with its interval, then per architecture
    the mean over seeds with a nested (seeds, clusters, units) bootstrap interval, the seeds' sd and range.

    Args:
        subjects: the replicate models, grouped by ``architecture``.
        batch_sizes: per metric family ``"sigma"`` / ``"faults"``, the batch sizes to report.
        min_drop: the fault study's ``min_accuracy_change`` (the harmful subset).
    """
    per_seed: list[dict[str, object]] = []
    summary: list[dict[str, object]] = []
    for architecture in dict.fromkeys(s.architecture for s in subjects):
        rng = np.random.default_rng(seed)  # per group: a group's intervals do not depend on the groups beside it
        group = [s for s in subjects if s.architecture == architecture]
        for metric, clusters_of in metric_clusters(min_drop).items():
            scale = 1.0 / nominal(3.0) if metric == SIGMA else 1.0
            for batch_size in batch_sizes["sigma" if metric == SIGMA else "faults"]:
                estimates = [seed_estimate(clusters_of(s, batch_size), rng) for s in group]
                per_seed += [
                    _seed_row(s, metric, batch_size, scale * e.value, scale * e.low, scale * e.high, e.clusters)
                    for s, e in zip(group, estimates, strict=True)
                ]
                mean, low, high = (scale * v for v in across_seeds(estimates, rng))
                values = [scale * e.value for e in estimates]
                summary.append(_summary_row(architecture, metric, batch_size, group, values, mean, low, high))
        values = [s.accuracy for s in group]
        per_seed += [_seed_row(s, ACCURACY, None, s.accuracy, np.nan, np.nan, 0) for s in group]
        summary.append(
            _summary_row(architecture, ACCURACY, None, group, values, float(np.mean(values)), np.nan, np.nan)
        )
    return _frame(per_seed), _frame(summary)


def _seed_row(
    s: Subject, metric: str, batch_size: int | None, value: float, low: float, high: float, clusters: int
) -> dict[str, object]:
    return {
        "architecture": s.architecture,
        "model": s.model,
        "seed": s.seed,
        "metric": metric,
        "batch_size": batch_size,
        "value": value,
        "low": low,
        "high": high,
        "clusters": clusters,
    }


def _summary_row(
    architecture: str,
    metric: str,
    batch_size: int | None,
    group: Sequence[Subject],
    values: Sequence[float],
    mean: float,
    low: float,
    high: float,
) -> dict[str, object]:
    finite = np.asarray(values, dtype=float)
    return {
        "architecture": architecture,
        "metric": metric,
        "batch_size": batch_size,
        "seeds": len(group),
        "per_seed": " / ".join("n/a" if not np.isfinite(v) else f"{v:.3f}" for v in finite),
        "mean": mean,
        "low": low,
        "high": high,
        "seed_sd": float(np.std(finite, ddof=1)) if len(finite) > 1 else np.nan,
        "min": float(np.min(finite)),
        "max": float(np.max(finite)),
    }


def _frame(rows: list[dict[str, object]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    frame["batch_size"] = frame["batch_size"].astype("Int64")
    return frame
