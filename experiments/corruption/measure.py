"""Per-model measurements: accuracy and batch scores of every detector on clean and corrupted pools.

One forward pass per pool (:func:`experiments.features.extract_features`) feeds DeepDrift's taps and every
baseline. Every detector comes from the registry; DeepDrift's rules share one scorer, fitted once per model, whose
per-tap drift is also stored for every batch. The same batch indices are used for every corruption and severity
(common random numbers), and clean batches come from the same images uncorrupted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from deepdrift import LayerTaps
from experiments.baselines import BatchDetector, DeepDriftDetector, make_detectors, option_source
from experiments.baselines.layerwise import LayerwiseScorer
from experiments.corruption.config import CorruptionConfig
from experiments.corruption.detection import draw_batches
from experiments.features import FeatureSet, extract_features

logger = logging.getLogger(__name__)

TAP_PREFIX = "tap:"
"""Column prefix of per-tap drift in the scores table."""
FOOTING_PREFIX = "footing:"
"""Column prefix of the equal-footing per-layer sigma: ``footing:<statistic>:<layer>``."""
CHANGED_COLUMN = "pool:changed_share"
"""Share of the pool's pixels the corruption changed (0: the corruption is the identity on these images)."""
TAP_DRIFT = "deepdrift_max"
"""The DeepDrift detector whose shared per-tap drift fills the tap columns (every rule shares it)."""


def tap_table(taps: LayerTaps) -> pd.DataFrame:
    """Name, label, relative depth and zone of each tap, in depth order."""
    return pd.DataFrame([{"tap": t.name, "label": t.label, "depth": t.depth, "zone": t.zone} for t in taps.taps])


def fit_detectors(
    model: nn.Module,
    calib: FeatureSet,
    cfg: CorruptionConfig,
) -> tuple[DeepDriftDetector, dict[str, BatchDetector]]:
    """The configured detectors, built by the registry and fitted on ``calib``, and the per-tap DeepDrift one."""
    names = list(dict.fromkeys((TAP_DRIFT, *cfg.methods)))
    sources = {option_source(name) for name in names}
    options = {source: given for source, given in cfg.method_options.items() if source in sources}
    detectors = make_detectors(names, model, options)
    for name, detector in detectors.items():
        start = time.perf_counter()
        detector.fit(calib)
        logger.info("fitted %s in %.1f s", name, time.perf_counter() - start)
    return detectors[TAP_DRIFT], {name: detectors[name] for name in cfg.methods}


def fit_footing(calib: FeatureSet, cfg: CorruptionConfig) -> LayerwiseScorer | None:
    """The equal-footing scorer fitted on ``calib`` (None when no statistic is configured)."""
    if not cfg.footing.statistics:
        return None
    start = time.perf_counter()
    scorer = LayerwiseScorer(cfg.footing.statistics, null_draws=cfg.footing.null_draws, knn_k=cfg.footing.knn_k)
    scorer.fit(calib)
    logger.info(
        "equal footing: %d statistics x %d layers, %d reference / %d null samples each (%.1f s)",
        len(scorer.statistics), len(scorer.layers), scorer.n_reference, scorer.n_null, time.perf_counter() - start,
    )  # fmt: skip
    return scorer


def score_pool(
    pool: FeatureSet,
    batches: Mapping[int, np.ndarray],
    deepdrift: DeepDriftDetector,
    detectors: Mapping[str, BatchDetector],
    footing: LayerwiseScorer | None = None,
) -> pd.DataFrame:
    """One row per batch: batch size, index, every method's score (NaN where it is undefined or degenerate at that
    batch size), every tap's drift and, with ``footing``, every statistic's sigma on every layer."""
    frames = []
    layered = footing.score(pool, batches) if footing is not None else {}
    for batch_size, index in batches.items():
        drift = deepdrift.layer_drifts(pool, index)
        columns: dict[str, Any] = {"batch_size": batch_size, "batch": np.arange(len(index))}
        for method, detector in detectors.items():
            if detector.status(batch_size) == "ok":
                columns[method] = detector.batch_scores(pool, index)
            else:
                columns[method] = np.full(len(index), np.nan)
        for k, name in enumerate(deepdrift.tap_names):
            columns[TAP_PREFIX + name] = drift[:, k]
        for statistic, sigma in layered.get(batch_size, {}).items():
            for k, layer in enumerate(footing.layers if footing is not None else ()):
                columns[f"{FOOTING_PREFIX}{statistic}:{layer}"] = sigma[:, k]
        frames.append(pd.DataFrame(columns))
    return pd.concat(frames, ignore_index=True)


def pixel_change(clean: np.ndarray, corrupted: np.ndarray) -> dict[str, float]:
    """How much a corruption changed the pool: mean absolute change (grey levels) and the share of changed pixels.
    Both 0 means the corruption is the identity on these images (e.g. ``saturate`` on grey images)."""
    diff = np.abs(np.asarray(corrupted, dtype=np.int16) - np.asarray(clean, dtype=np.int16))
    return {"mean_abs_change": float(diff.mean()), "changed_share": float((diff > 0).mean())}


def accuracy(pool: FeatureSet) -> float:
    """Top-1 accuracy of the stored logits against the stored labels."""
    return float((pool.logits.argmax(1) == pool.labels).double().mean())


def measure_model(
    model: nn.Module,
    to_input: Any,
    calib: tuple[np.ndarray, np.ndarray],
    clean: tuple[np.ndarray, np.ndarray],
    corrupted: list[tuple[dict[str, Any], np.ndarray]],
    cfg: CorruptionConfig,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Scores and accuracies of one model on the clean pool and every corrupted pool.

    Args:
        model: trained classifier in eval mode.
        to_input: ``to_input(uint8 images) -> model input tensor`` (the training normalisation).
        calib: calibration images and labels (fit DeepDrift and the baselines).
        clean: the held-out pool, uncorrupted (images, labels).
        corrupted: ``(manifest entry, uint8 images)`` per corruption and severity, same images as ``clean``.
        cfg: the study's settings.

    Returns:
        ``(scores, accuracy, taps)`` frames (see :func:`score_pool` and :func:`tap_table`).
    """
    taps = LayerTaps(model)
    bs = cfg.forward_batch_size
    calib_features = extract_features(
        model, to_input(calib[0]), taps, labels=calib[1], batch_size=bs, desc="calibration"
    )
    deepdrift, detectors = fit_detectors(model, calib_features, cfg)
    footing = fit_footing(calib_features, cfg)
    labels = torch.tensor(np.asarray(clean[1]), dtype=torch.long)
    clean_pool = extract_features(model, to_input(clean[0]), taps, labels=labels, batch_size=bs, desc="clean")
    rng_clean = np.random.default_rng([cfg.seed, 1])
    clean_batches = {b: draw_batches(len(clean_pool), b, cfg.n_clean_batches, rng_clean) for b in cfg.batch_sizes}
    rng_shift = np.random.default_rng([cfg.seed, 2])
    shift_batches = {b: draw_batches(len(clean_pool), b, cfg.n_batches, rng_shift) for b in cfg.batch_sizes}
    meta = {"corruption": "clean", "family": "clean", "severity": 0}
    scores = [
        score_pool(clean_pool, clean_batches, deepdrift, detectors, footing).assign(**meta, **{CHANGED_COLUMN: 0.0})
    ]
    acc = [{**meta, "accuracy": accuracy(clean_pool), "n_images": len(clean_pool), **pixel_change(clean[0], clean[0])}]
    for entry, images in corrupted:
        start = time.perf_counter()
        pool = extract_features(model, to_input(images), taps, labels=labels, batch_size=bs, desc=entry["corruption"])
        meta = {"corruption": entry["corruption"], "family": entry["family"], "severity": entry["severity"]}
        change = pixel_change(clean[0], images)
        scores.append(
            score_pool(pool, shift_batches, deepdrift, detectors, footing).assign(
                **meta, **{CHANGED_COLUMN: change["changed_share"]}
            )
        )
        acc.append({**meta, "accuracy": accuracy(pool), "n_images": len(pool), **change})
        logger.info(
            "%s s%d: accuracy %.3f (%.1f s)",
            entry["corruption"],
            entry["severity"],
            acc[-1]["accuracy"],
            time.perf_counter() - start,
        )
    front = ["corruption", "family", "severity", "batch_size", "batch"]
    frame = pd.concat(scores, ignore_index=True)
    frame = frame[front + [c for c in frame.columns if c not in front]]
    return frame, pd.DataFrame(acc), tap_table(taps)
