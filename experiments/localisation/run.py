"""The fault-localisation benchmark's workflow entry (rule ``fault_localisation``)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import torch

from deepdrift import LayerTaps
from experiments.atomic import write_csv, write_npz
from experiments.data import DataSpec
from experiments.data.study_images import study_images
from experiments.features import extract_features, tap_order
from experiments.figures import save_figure, write_table
from experiments.localisation.config import FaultStudyConfig
from experiments.localisation.corruption_modes import corruption_mode_table, corruption_modes
from experiments.localisation.evaluate import Fault, evaluate_faults, fit_scorer, score_batches
from experiments.localisation.faults import GREY_ONLY, RGB_ONLY
from experiments.localisation.figures import confusion_figure, detection_figure
from experiments.localisation.sites import FaultSite, find_sites
from experiments.localisation.summary import accuracy_table, fault_table, mode_confusion
from experiments.models.zoo import ModelSpec, load_model
from experiments.rule_io import Files, by_model, checked, output_paths

if TYPE_CHECKING:
    from experiments.workflow_config import WorkflowConfig

logger = logging.getLogger(__name__)

INPUTS = ("weights",)
OUTPUTS = (
    "verdicts", "faulted_outputs", "accuracy", "mode_confusion", "faults", "corruption_modes", "onset_confusion",
    "detection",
)  # fmt: skip


def run(
    cfg: WorkflowConfig, inputs: Mapping[str, Files], outputs: Mapping[str, Files], *, cache_dir: str | None = None
) -> pd.DataFrame:
    """Rule ``fault_localisation``: every configured model's faults and corruptions; raw verdicts, tables, figures.

    Args:
        cfg: the config set (``faults``, ``models`` and ``data`` are read).
        inputs: ``weights``, one file per model of ``faults.models``.
        outputs: every name of :data:`OUTPUTS`.
        cache_dir: where corrupted images are cached (None: corrupt again).
    """
    given = checked(inputs, INPUTS, "input", "fault_localisation")
    out = output_paths(outputs, OUTPUTS, "fault_localisation")
    study = cfg.faults
    weights = by_model(given["weights"], study.models, "fault_localisation input 'weights'")
    torch.manual_seed(0)
    results = {key: run_model(cfg.models[key], path, cfg.data, study, cache_dir) for key, path in weights.items()}
    scored = score_batches(
        pd.concat([r["batches"] for r in results.values()], ignore_index=True),
        pd.concat([r["faults"] for r in results.values()], ignore_index=True),
    )
    write_csv(scored, out["verdicts"])
    write_npz(
        out["faulted_outputs"],
        **{f"{k}_predictions": r["predictions"] for k, r in results.items()},
        **{f"{k}_fault_ids": r["faults"]["fault_id"].to_numpy(dtype=str) for k, r in results.items()},
    )
    accuracy = accuracy_table(scored, study.min_accuracy_change)
    corruptions = pd.concat([r["corruptions"] for r in results.values()], ignore_index=True)
    _write_tables(out, scored, accuracy, corruptions, study.corruption_severity)
    save_figure(confusion_figure(scored, {k: r["labels"] for k, r in results.items()}), out["onset_confusion"])
    save_figure(detection_figure(scored), out["detection"])
    return accuracy


def build_faults(cfg: FaultStudyConfig, sites: list[FaultSite], in_chans: int) -> list[Fault]:
    """The clean control, every input fault that fits the input's channels, and every internal fault at every site."""
    skip = RGB_ONLY if in_chans == 1 else GREY_ONLY
    faults = [Fault("none", "clean", 0.0)]
    faults += [
        Fault("input", fam, float(s)) for fam, strengths in cfg.input.items() if fam not in skip for s in strengths
    ]
    faults += [
        Fault("internal", fam, float(s), site)
        for site in sites
        for fam, strengths in cfg.internal.items()
        for s in strengths
    ]
    return faults


def run_model(
    spec: ModelSpec, weights: str | Path, data: DataSpec, cfg: FaultStudyConfig, cache_dir: str | Path | None
) -> dict[str, Any]:
    """All faults and corruptions on one trained model."""
    model = load_model(spec, data, weights)
    images = study_images(data, spec.in_chans, cfg.n_eval, cfg.seed)
    names = tap_order(model, images.calib[:8])
    taps = LayerTaps(model, layers=names).taps
    scorer = fit_scorer(extract_features(model, images.calib, names))
    sites = find_sites(model, names, images.calib[:8], cfg.n_depths, cfg.per_segment)
    faults = build_faults(cfg, sites, spec.in_chans)
    logger.info("%s: %d taps, %d fault sites, %d faults", spec.key, len(taps), len(sites), len(faults))
    batches, fault_rows, predictions = evaluate_faults(
        model, spec.key, faults, scorer, taps, images.heldout, images.labels, cfg.batch_sizes, cfg.n_batches,
        images.mean, images.std, images.calib[:64],
    )  # fmt: skip
    corr = corruption_modes(
        model, spec.key, scorer, taps, images, cfg.corruptions, cfg.corruption_severity,
        min(cfg.corruption_images, cfg.n_eval), 16, cfg.seed, cache_dir,
    )  # fmt: skip
    return {
        "batches": batches,
        "faults": fault_rows,
        "predictions": predictions,
        "corruptions": corr,
        "labels": [t.label for t in taps],
    }


def _write_tables(
    out: Mapping[str, Path], scored: pd.DataFrame, accuracy: pd.DataFrame, corruptions: pd.DataFrame, severity: int
) -> None:
    write_table(
        accuracy,
        out["accuracy"],
        caption="Fault localisation: detection, onset-tap and failure-mode "
        "accuracy per batch (undetected batches count as wrong).",
    )
    write_table(
        mode_confusion(scored),
        out["mode_confusion"],
        float_format="%.0f",
        caption="Doctor's failure mode (columns) against the expected mode (rows), batches of 16.",
    )
    write_table(fault_table(scored), out["faults"], caption="Every injected fault at batch 16.")
    write_table(
        corruption_mode_table(corruptions),
        out["corruption_modes"],
        float_format="%.2f",
        caption=f"Share of batches (16 images) per diagnosed mode, corruptions at severity {severity}.",
    )
