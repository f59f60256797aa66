"""One model through the study: features once, every perturbation instance and clean control batch diagnosed.

Clean images are the model's *seen* classes only (all classes for a 10-class model; ``classes`` for a model trained
on a subset), for the calibration and for every clean batch, so a held-out class is new to the monitor as well.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from deepdrift import DriftScorer, LayerTaps, Tap, log_level
from experiments.data import DataSpec
from experiments.data.spec import split_dataset
from experiments.data.study_images import StudyImages, study_images
from experiments.features import FeatureSet, extract_features, tap_order, torch_threads
from experiments.localisation.evaluate import diagnose_batches, fit_scorer
from experiments.mode_truth.config import ModeTruthConfig
from experiments.mode_truth.mechanism import mechanism_rows
from experiments.mode_truth.perturbations import (
    CLEAN,
    Perturbation,
    class_rows,
    class_shifts,
    perturbed_features,
    weight_perturbations,
)
from experiments.models.zoo import ModelSpec, load_model, restrict_classes

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prepared:
    """A model with its taps, scorer and clean features (everything later steps reuse)."""

    model: nn.Module
    taps: list[Tap]
    scorer: DriftScorer
    images: StudyImages
    pool: FeatureSet
    labels: np.ndarray
    seen: tuple[int, ...]
    unseen: tuple[int, ...]
    calib: torch.Tensor

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.taps]

    def seen_rows(self) -> np.ndarray:
        return class_rows(self.labels, self.seen, len(self.labels))


def prepare(spec: ModelSpec, weights: str, data: DataSpec, cfg: ModeTruthConfig) -> Prepared:
    """Load the model, calibrate a scorer on its seen classes, extract the pool's features once."""
    model = load_model(spec, data, weights)
    images = study_images(data, spec.in_chans, cfg.n_pool, cfg.seed)
    labels = images.labels.numpy()
    present = tuple(int(c) for c in np.unique(labels))
    seen = tuple(spec.classes) if spec.classes is not None else present
    calib_set = split_dataset(data, "test", data.splits().calib, spec.in_chans)
    calib = restrict_classes(calib_set, seen).tensors[0]
    names = tap_order(model, calib[:8])
    taps = LayerTaps(model, layers=names).taps
    scorer = fit_scorer(extract_features(model, calib, names))
    pool = extract_features(model, images.heldout, names)
    unseen = tuple(c for c in present if c not in seen)
    logger.info("%s: %d taps, seen classes %s, unseen %s", spec.key, len(taps), seen, unseen)
    return Prepared(model, list(taps), scorer, images, pool, labels, seen, unseen, calib)


def batch_rows(
    key: dict[str, object], prep: Prepared, feats: FeatureSet, batch_sizes: Sequence[int], n_batches: Sequence[int]
) -> list[dict]:
    """The doctor's verdict on consecutive batches, with the monitor's batch score (the largest tap drift)."""
    rows = []
    with torch_threads(1):
        for b, n in zip(batch_sizes, n_batches, strict=True):
            for row in diagnose_batches(prep.scorer, prep.taps, feats, b, n):
                drift = np.array([float(v) for v in row.pop("profile").split(";")])
                row.pop("p_values")
                row["score"] = float(np.nanmax(np.where(np.isnan(drift), np.inf, drift)))
                rows.append({**key, **row})
    return rows


def instance_row(model_key: str, p: Perturbation, n_images: int) -> dict:
    return {
        "model": model_key, "instance_id": p.instance_id, "family": p.family, "mechanism": p.mechanism,
        "kind": p.kind, "strength": p.strength, "site": p.site, "draw": p.draw, "n_images": n_images,
    }  # fmt: skip


@dataclass(frozen=True)
class ModelResult:
    """A model's tables (``instances``, ``batches``, ``mechanism``, ``mechanism_taps``, ``tap_labels``) and its
    prepared state (the stream reuses the model, its calibration images and its pool)."""

    frames: dict[str, pd.DataFrame]
    prepared: Prepared


def run_model(spec: ModelSpec, weights: str, data: DataSpec, cfg: ModeTruthConfig) -> ModelResult:
    """Every instance and the clean control on one model: instances, batch verdicts and the mechanism check."""
    prep = prepare(spec, weights, data, cfg)
    seen_rows = prep.seen_rows()
    clean_rows = seen_rows[: cfg.n_images]
    clean_images = prep.images.heldout[clean_rows]
    clean = prep.pool.subset(clean_rows)
    instances, batches, summary, per_tap = [], [], [], []
    control = Perturbation(CLEAN, CLEAN, "control", 0.0)
    n_control = [min(cfg.control_batches, len(seen_rows) // b) for b in cfg.batch_sizes]
    instances.append(instance_row(spec.key, control, len(seen_rows)))
    key = {"model": spec.key, "instance_id": control.instance_id}
    batches += batch_rows(key, prep, prep.pool.subset(seen_rows), cfg.batch_sizes, n_control)
    perturbations = weight_perturbations(cfg, prep.model, prep.taps, prep.calib[:8], spec.in_chans)
    with log_level("ERROR"):
        for p in tqdm(perturbations, desc=f"mode truth {spec.key}", disable=None, leave=False):
            feats = perturbed_features(prep.model, p, clean_images, prep.names, prep.images.mean, prep.images.std)
            key = {"model": spec.key, "instance_id": p.instance_id}
            instances.append(instance_row(spec.key, p, len(clean_rows)))
            batches += batch_rows(key, prep, feats, cfg.batch_sizes, cfg.n_batches)
            row, taps = mechanism_rows({**key, "mechanism": p.mechanism}, clean, feats, prep.taps)
            summary.append(row)
            per_tap += taps
    for p in class_shifts(cfg, prep.seen, prep.unseen):
        rows = class_rows(prep.labels, p.classes, cfg.n_images)
        key = {"model": spec.key, "instance_id": p.instance_id}
        instances.append(instance_row(spec.key, p, len(rows)))
        counts = [min(n, len(rows) // b) for b, n in zip(cfg.batch_sizes, cfg.n_batches, strict=True)]
        batches += batch_rows(key, prep, prep.pool.subset(rows), cfg.batch_sizes, counts)
    logger.info("%s: %d instances, %d batches", spec.key, len(instances), len(batches))
    frames = {
        "instances": pd.DataFrame(instances),
        "batches": pd.DataFrame(batches),
        "mechanism": pd.DataFrame(summary),
        "mechanism_taps": pd.DataFrame(per_tap),
        "tap_labels": pd.DataFrame([{"model": spec.key, "tap": t.index, "label": t.label} for t in prep.taps]),
    }
    return ModelResult(frames, prep)
