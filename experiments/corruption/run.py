"""The corruption benchmark's workflow entries, one per rule: corrupt the held-out set, measure a model, report.

Each entry takes the checked config set, the rule's named inputs and its named outputs, and checks those names
against the tuples declared beside it (:mod:`experiments.rule_io`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from deepdrift import CalibrationConfig
from experiments.atomic import atomic_path, write_csv
from experiments.corruption.config import CorruptionConfig
from experiments.corruption.figures import detection_figure, footing_figure, mri_figure, severity_figure
from experiments.corruption.footing import STATISTIC_LABELS, footing_markdown_frame, footing_table
from experiments.corruption.images import build_corrupted_set, load_entry, load_manifest, test_split_images
from experiments.corruption.measure import measure_model
from experiments.corruption.summary import (
    accuracy_vs_drift,
    clean_accuracy_table,
    detection_results,
    drift_accuracy_correlation,
    drift_profile,
    drop_cells,
    identity_cells,
    identity_note,
    method_scores,
    severity_table,
    tap_scores,
)
from experiments.data import normalisation, to_model_input
from experiments.figures import save_figure, write_table
from experiments.models.zoo import load_model
from experiments.rule_io import Files, by_model, checked, output_paths

if TYPE_CHECKING:
    from experiments.workflow_config import WorkflowConfig

logger = logging.getLogger(__name__)

IMAGES_INPUTS: tuple[str, ...] = ()
IMAGES_OUTPUTS = ("manifest",)
MEASURE_INPUTS = ("weights", "manifest")
MEASURE_OUTPUTS = ("scores", "accuracy", "taps")
REPORT_INPUTS = ("scores", "accuracy", "taps", "metrics")
REPORT_OUTPUTS = (
    "detection", "detection_layers", "drift_profile", "mri", "severity", "detection_figure", "clean_accuracy",
    "auroc", "tpr", "layer_auroc", "drift_accuracy", "footing", "footing_versus", "footing_figure",
)  # fmt: skip


def images(
    cfg: WorkflowConfig, inputs: Mapping[str, Files], outputs: Mapping[str, Files], *, cache_dir: str | Path
) -> dict[str, Any]:
    """Rule ``corruption_images``: the cached corrupted held-out set and its manifest."""
    checked(inputs, IMAGES_INPUTS, "input", "corruption_images")
    out = output_paths(outputs, IMAGES_OUTPUTS, "corruption_images")
    return build_corrupted_set(cfg.data, cfg.corruption, cache_dir, out["manifest"])


def measure(cfg: WorkflowConfig, inputs: Mapping[str, Files], outputs: Mapping[str, Files], *, model: str) -> None:
    """Rule ``corruption_measure``: batch scores of every detector and accuracy of one trained model."""
    where = f"corruption_measure[{model}]"
    given = checked(inputs, MEASURE_INPUTS, "input", where)
    out = output_paths(outputs, MEASURE_OUTPUTS, where)
    spec, data = cfg.models[model], cfg.data
    net = load_model(spec, data, given["weights"])
    mean, std = normalisation(data)

    def to_input(images: np.ndarray) -> Any:
        return to_model_input(images, size=data.img_size, channels=spec.in_chans, mean=mean, std=std)

    splits = data.splits()
    info = load_manifest(given["manifest"])
    indices = np.asarray(info["indices"])
    if np.intersect1d(indices, splits.calib).size:
        raise RuntimeError("the corrupted pool overlaps the calibration split; rebuild the manifest")
    corrupted = [(entry, load_entry(entry)) for entry in info["entries"]]
    scores, accuracy, taps = measure_model(
        net, to_input, test_split_images(data, splits.calib), test_split_images(data, indices), corrupted,
        cfg.corruption,
    )  # fmt: skip
    write_csv(scores, out["scores"])
    write_csv(accuracy.assign(model=model), out["accuracy"])
    write_csv(taps.assign(model=model), out["taps"])


def load_results(
    scores: Mapping[str, str | Path], accuracy: Mapping[str, str | Path], taps: Mapping[str, str | Path]
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The per-model CSVs of :func:`measure`, concatenated: ``(methods long, taps long, accuracy)``."""
    methods, tap_frames = [], []
    for model, path in scores.items():
        wide = pd.read_csv(path).assign(model=model)
        methods.append(method_scores(wide))
        tap_frames.append(tap_scores(wide, pd.read_csv(taps[model], dtype={"tap": str, "label": str})))
    acc = pd.concat([pd.read_csv(p) for p in accuracy.values()], ignore_index=True)
    return pd.concat(methods, ignore_index=True), pd.concat(tap_frames, ignore_index=True), acc


def raw_scores(scores: Mapping[str, str | Path]) -> dict[str, pd.DataFrame]:
    """Each model's wide per-batch scores (what the equal-footing table reads)."""
    return {model: pd.read_csv(path) for model, path in scores.items()}


def report(cfg: WorkflowConfig, inputs: Mapping[str, Files], outputs: Mapping[str, Files]) -> pd.DataFrame:
    """Rule ``corruption_report``: detection metrics, figures and tables from every model's measurements."""
    given = checked(inputs, REPORT_INPUTS, "input", "corruption_report")
    out = output_paths(outputs, REPORT_OUTPUTS, "corruption_report")
    models = cfg.corruption.models
    per_model = {name: by_model(given[name], models, f"corruption_report input {name!r}") for name in REPORT_INPUTS}
    return corruption_report(cfg.corruption, *(per_model[name] for name in REPORT_INPUTS), out)


def corruption_report(
    study: CorruptionConfig,
    scores: Mapping[str, Path],
    accuracy: Mapping[str, Path],
    taps: Mapping[str, Path],
    metrics: Mapping[str, Path],
    out: Mapping[str, Path],
) -> pd.DataFrame:
    """Detection metrics, figures and tables from every model's measurements (``{model: path}`` inputs).

    ``out`` maps every name of :data:`REPORT_OUTPUTS` to a CSV path (raw tables) or a figure/table stem.
    """
    methods, taps_long, acc = load_results(scores, accuracy, taps)
    identity = identity_cells(acc)  # corruptions that leave these images unchanged measure nothing: left out
    methods, taps_long, acc = (drop_cells(frame, identity) for frame in (methods, taps_long, acc))
    note = identity_note(identity)
    results = detection_results(methods, by="method")
    layers = detection_results(taps_long.drop(columns="label"), by="tap", value="drift")
    layers = layers.merge(taps_long[["model", "tap", "label", "depth", "zone"]].drop_duplicates(), on=["model", "tap"])
    profile = drift_profile(taps_long, study.profile_batch_size)
    cells = accuracy_vs_drift(profile, acc)
    correlation = drift_accuracy_correlation(cells)
    for key, frame in (("detection", results), ("detection_layers", layers), ("drift_profile", profile)):
        write_csv(frame, out[key])
    save_figure(mri_figure(profile, study.mri_severity, study.corruptions, study.profile_batch_size), out["mri"])
    save_figure(severity_figure(profile, cells, correlation), out["severity"])
    save_figure(detection_figure(results), out["detection_figure"])
    model_metrics = {m: json.loads(Path(p).read_text()) for m, p in metrics.items()}
    _write_tables(out, results, layers, correlation, clean_accuracy_table(model_metrics, acc),
                  len(study.corruptions), study.profile_batch_size, note + _reference_note(study))  # fmt: skip
    _write_footing(out, raw_scores(scores), identity, note)
    logger.info("report written for models %s", list(scores))
    return results


def _write_tables(
    out: Mapping[str, Path],
    results: pd.DataFrame,
    layers: pd.DataFrame,
    correlation: pd.DataFrame,
    clean_accuracy: pd.DataFrame,
    n_corruptions: int,
    batch_size: int,
    note: str = "",
) -> None:
    write_table(
        clean_accuracy,
        out["clean_accuracy"],
        float_format="%.4f",
        caption="Clean accuracy: whole held-out split (training run) and the benchmark's image pool.",
    )
    unscored = (
        " NaN cells are not scored: status 'undefined' (MMD needs two samples) or 'degenerate' (a one-sample KS"
        " statistic takes a handful of values)."
    )
    write_table(
        severity_table(results, "auroc"),
        out["auroc"],
        caption=f"Mean AUROC over {n_corruptions} corruptions of clean vs corrupted batches (positive = corrupted)."
        + unscored
        + note,
    )
    write_table(
        severity_table(results, "tpr_at_5fpr"),
        out["tpr"],
        caption=f"Mean TPR at 5% FPR over {n_corruptions} corruptions." + unscored + note,
    )
    write_table(
        severity_table(layers, "auroc", by="tap"),
        out["layer_auroc"],
        caption="Mean AUROC of each DeepDrift tap alone (not used to pick a tap: reported for insight)." + note,
    )
    write_table(
        correlation,
        out["drift_accuracy"],
        caption=f"Spearman correlation of accuracy drop with mean drift at batch {batch_size}.",
    )


def _reference_note(study: CorruptionConfig) -> str:
    """Which reference each shipped detector is fitted on (they differ; corruption_footing equalises them)."""
    bounded = [
        f"{name.upper()} {options['reference_size']}"
        for name, options in study.method_options.items()
        if name in study.methods and "reference_size" in options
    ]
    return (
        " Detectors as shipped, on unequal references: pytorch-ood's on every calibration image, DeepDrift on"
        f" {1 - CalibrationConfig().holdout_fraction:.0%} of them (the rest is its null)"
        + (f", torchdrift's on a bounded subset ({', '.join(bounded)} images)" if bounded else "")
        + "; corruption_footing compares every statistic on the same layers and reference rows."
    )


def _write_footing(
    out: Mapping[str, Path], scores: Mapping[str, pd.DataFrame], identity: Mapping[str, Any], note: str
) -> None:
    """The equal-footing table (long CSV for code, wide Markdown for reading), DeepDrift against the best peer
    statistic per layer set, and their figure."""
    table, versus = footing_table(scores, identity)
    if table.empty:
        logger.warning("no equal-footing columns in the scores (footing.statistics is empty): tables left empty")
    caption = (
        "Equal footing: mean AUROC over corrupted cells [95% bootstrap interval over clean and corrupted batches] of"
        " each statistic on each layer set. Every statistic is fitted on the same reference samples (DeepDrift's own"
        " calibration rows) and turned into sigma by its own clean null from the same held-out rows; 'all taps'"
        " combines DeepDrift's taps by the largest sigma or by Stouffer's sum, for every statistic alike."
        " 'undefined' / 'degenerate' cells are not scored." + note
    )
    write_table(table, out["footing"], caption=caption)
    with atomic_path(Path(out["footing"]).with_suffix(".md")) as tmp:  # Markdown for reading: one column per layer set
        wide = footing_markdown_frame(table).to_markdown(index=False) if not table.empty else ""
        tmp.write_text(wide, encoding="utf-8", newline="\n")
    if not versus.empty:
        versus = versus.assign(**{"best peer": versus["best peer"].map(lambda s: STATISTIC_LABELS.get(s, s))})
    write_table(
        versus,
        out["footing_versus"],
        caption="DeepDrift (min-p) against the best peer statistic on the same layers (best chosen on these data),"
        " difference with a paired 95% bootstrap interval." + note,
    )
    save_figure(footing_figure(table), out["footing_figure"])
