"""Entry points of the corruption benchmark for the workflow (one per rule), and for notebooks."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from experiments.atomic import write_csv
from experiments.corruption.config import CorruptionConfig
from experiments.corruption.figures import detection_figure, mri_figure, severity_figure
from experiments.corruption.images import build_corrupted_set, load_entry, load_manifest, test_split_images
from experiments.corruption.measure import measure_model
from experiments.corruption.summary import (
    accuracy_vs_drift,
    clean_accuracy_table,
    detection_results,
    drift_accuracy_correlation,
    drift_profile,
    method_scores,
    severity_table,
    tap_scores,
)
from experiments.data import DataSpec, normalisation, to_model_input
from experiments.figures import save_figure, write_table
from experiments.models.zoo import ModelSpec, load_model

logger = logging.getLogger(__name__)


def build_corrupted_heldout(
    data_cfg: Mapping[str, Any], study_cfg: Mapping[str, Any], cache_dir: str | Path, manifest_out: str | Path
) -> dict[str, Any]:
    """Rule ``corruption_images``: the cached corrupted held-out set and its manifest."""
    data = DataSpec.from_config(data_cfg)
    return build_corrupted_set(data, CorruptionConfig.from_config(study_cfg), cache_dir, manifest_out)


def measure_corruption(
    model_key: str,
    model_cfg: Mapping[str, Any],
    weights: str | Path,
    data_cfg: Mapping[str, Any],
    study_cfg: Mapping[str, Any],
    manifest: str | Path,
    out_scores: str | Path,
    out_accuracy: str | Path,
    out_taps: str | Path,
) -> None:
    """Rule ``corruption_measure``: batch scores of every detector and accuracy of one trained model."""
    cfg = CorruptionConfig.from_config(study_cfg)
    data = DataSpec.from_config(data_cfg)
    spec = ModelSpec.from_config(model_key, model_cfg)
    model = load_model(spec, data, weights)
    mean, std = normalisation(data)

    def to_input(images: np.ndarray) -> Any:
        return to_model_input(images, size=data.img_size, channels=spec.in_chans, mean=mean, std=std)

    splits = data.splits()
    info = load_manifest(manifest)
    indices = np.asarray(info["indices"])
    if np.intersect1d(indices, splits.calib).size:
        raise RuntimeError("the corrupted pool overlaps the calibration split; rebuild the manifest")
    corrupted = [(entry, load_entry(entry)) for entry in info["entries"]]
    scores, accuracy, taps = measure_model(
        model, to_input, test_split_images(data, splits.calib), test_split_images(data, indices), corrupted, cfg
    )
    write_csv(scores, out_scores)
    write_csv(accuracy.assign(model=model_key), out_accuracy)
    write_csv(taps.assign(model=model_key), out_taps)


def load_results(
    scores: Mapping[str, str | Path], accuracy: Mapping[str, str | Path], taps: Mapping[str, str | Path]
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The per-model CSVs of :func:`measure_corruption`, concatenated: ``(methods long, taps long, accuracy)``."""
    methods, tap_frames = [], []
    for model, path in scores.items():
        wide = pd.read_csv(path).assign(model=model)
        methods.append(method_scores(wide))
        tap_frames.append(tap_scores(wide, pd.read_csv(taps[model], dtype={"tap": str, "label": str})))
    acc = pd.concat([pd.read_csv(p) for p in accuracy.values()], ignore_index=True)
    return pd.concat(methods, ignore_index=True), pd.concat(tap_frames, ignore_index=True), acc


def corruption_report(
    scores: Mapping[str, str | Path],
    accuracy: Mapping[str, str | Path],
    taps: Mapping[str, str | Path],
    metrics: Mapping[str, str | Path],
    study_cfg: Mapping[str, Any],
    out: Mapping[str, str | Path],
) -> pd.DataFrame:
    """Rule ``corruption_report``: detection metrics, figures and tables from every model's measurements.

    ``out`` maps ``detection``, ``layers``, ``profile`` (CSV paths) and the figure/table stems ``mri``,
    ``severity``, ``detection_figure``, ``clean_accuracy``, ``auroc``, ``tpr``, ``layer_auroc``, ``drift_accuracy``.
    """
    cfg = CorruptionConfig.from_config(study_cfg)
    methods, taps_long, acc = load_results(scores, accuracy, taps)
    results = detection_results(methods, by="method")
    layers = detection_results(taps_long.drop(columns="label"), by="tap", value="drift")
    layers = layers.merge(taps_long[["model", "tap", "label", "depth", "zone"]].drop_duplicates(), on=["model", "tap"])
    profile = drift_profile(taps_long, cfg.profile_batch_size)
    cells = accuracy_vs_drift(profile, acc)
    correlation = drift_accuracy_correlation(cells)
    for key, frame in (("detection", results), ("layers", layers), ("profile", profile)):
        write_csv(frame, out[key])
    save_figure(mri_figure(profile, cfg.mri_severity, cfg.corruptions, cfg.profile_batch_size), out["mri"])
    save_figure(severity_figure(profile, cells, correlation), out["severity"])
    save_figure(detection_figure(results), out["detection_figure"])
    model_metrics = {m: json.loads(Path(p).read_text()) for m, p in metrics.items()}
    write_table(
        clean_accuracy_table(model_metrics, acc),
        out["clean_accuracy"],
        float_format="%.4f",
        caption="Clean accuracy: whole held-out split (training run) and the benchmark's image pool.",
    )
    n_cor = len(cfg.corruptions)
    write_table(
        severity_table(results, "auroc"),
        out["auroc"],
        caption=f"Mean AUROC over {n_cor} corruptions of clean vs corrupted batches (positive = corrupted).",
    )
    write_table(
        severity_table(results, "tpr_at_5fpr"), out["tpr"], caption=f"Mean TPR at 5% FPR over {n_cor} corruptions."
    )
    write_table(
        severity_table(layers, "auroc", by="tap"),
        out["layer_auroc"],
        caption="Mean AUROC of each DeepDrift tap alone (not used to pick a tap: reported for insight).",
    )
    write_table(
        correlation,
        out["drift_accuracy"],
        caption=f"Spearman correlation of accuracy drop with mean drift at batch {cfg.profile_batch_size}.",
    )
    logger.info("report written for models %s", list(scores))
    return results
