"""Entry point of the fault-localisation benchmark for the workflow (and notebooks)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from deepdrift import LayerTaps
from experiments.atomic import atomic_path, write_csv
from experiments.data import MEAN, STD, DataSpec
from experiments.figures import save_figure, write_table
from experiments.localisation.config import FaultStudyConfig
from experiments.localisation.corruption_modes import corruption_mode_table, corruption_modes
from experiments.localisation.data import study_images
from experiments.localisation.evaluate import Fault, evaluate_faults, score_batches
from experiments.localisation.faults import GREY_ONLY, RGB_ONLY
from experiments.localisation.features import extract_features, fit_scorer, tap_order
from experiments.localisation.figures import confusion_figure, detection_figure
from experiments.localisation.sites import FaultSite, find_sites
from experiments.localisation.summary import accuracy_table, fault_table, mode_confusion
from experiments.models.zoo import ModelSpec, load_model

logger = logging.getLogger(__name__)


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
    key: str, model_cfg: Mapping[str, Any], weights: str, data: DataSpec, cfg: FaultStudyConfig, cache_dir: str | None
) -> dict[str, Any]:
    """All faults and corruptions on one trained model."""
    spec = ModelSpec.from_config(key, model_cfg)
    model = load_model(spec, data, weights)
    images = study_images(data, spec.in_chans, cfg.n_eval, cfg.seed)
    names = tap_order(model, images.calib[:8])
    taps = LayerTaps(model, layers=names).taps
    scorer = fit_scorer(extract_features(model, names, images.calib))
    sites = find_sites(model, names, images.calib[:8], cfg.n_depths, cfg.per_segment)
    faults = build_faults(cfg, sites, spec.in_chans)
    logger.info("%s: %d taps, %d fault sites, %d faults", key, len(taps), len(sites), len(faults))
    batches, fault_rows, predictions = evaluate_faults(
        model,
        key,
        faults,
        scorer,
        taps,
        images.heldout,
        images.labels,
        cfg.batch_sizes,
        cfg.n_batches,
        MEAN,
        STD,
        images.calib[:64],
    )
    corr = corruption_modes(
        model,
        key,
        scorer,
        taps,
        images,
        cfg.corruptions,
        cfg.corruption_severity,
        min(cfg.corruption_images, cfg.n_eval),
        16,
        cfg.seed,
        cache_dir,
    )
    return {
        "batches": batches,
        "faults": fault_rows,
        "predictions": predictions,
        "corruptions": corr,
        "labels": [t.label for t in taps],
    }


def localisation_benchmark(
    model_cfgs: Mapping[str, Mapping[str, Any]],
    weights: Mapping[str, str],
    data_cfg: Mapping[str, Any],
    study_cfg: Mapping[str, Any],
    out_batches: str | Path,
    out_outputs: str | Path,
    stems: Mapping[str, str | Path],
    cache_dir: str | None = None,
) -> pd.DataFrame:
    """Run the benchmark on every configured model and write raw verdicts, faulted outputs, tables and figures.

    Args:
        stems: output stems for ``accuracy``, ``modes``, ``faults``, ``corruption_modes`` (tables) and ``confusion``,
            ``detection`` (figures).
    """
    torch.manual_seed(0)
    data = DataSpec.from_config(data_cfg)
    cfg = FaultStudyConfig.from_config(study_cfg)
    results = {key: run_model(key, model_cfgs[key], path, data, cfg, cache_dir) for key, path in weights.items()}
    scored = score_batches(
        pd.concat([r["batches"] for r in results.values()], ignore_index=True),
        pd.concat([r["faults"] for r in results.values()], ignore_index=True),
    )
    write_csv(scored, out_batches)
    with atomic_path(out_outputs) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(
            fh,
            **{f"{k}_predictions": r["predictions"] for k, r in results.items()},
            **{f"{k}_fault_ids": r["faults"]["fault_id"].to_numpy(dtype=str) for k, r in results.items()},
        )
    accuracy = accuracy_table(scored, cfg.min_accuracy_change)
    write_table(
        accuracy,
        stems["accuracy"],
        caption="Fault localisation: detection, onset-tap and failure-mode "
        "accuracy per batch (undetected batches count as wrong).",
    )
    write_table(
        mode_confusion(scored),
        stems["modes"],
        float_format="%.0f",
        caption="Doctor's failure mode (columns) against the expected mode (rows), batches of 16.",
    )
    write_table(fault_table(scored), stems["faults"], caption="Every injected fault at batch 16.")
    corr = pd.concat([r["corruptions"] for r in results.values()], ignore_index=True)
    write_table(
        corruption_mode_table(corr),
        stems["corruption_modes"],
        float_format="%.2f",
        caption=f"Share of batches (16 images) per diagnosed mode, corruptions at severity {cfg.corruption_severity}.",
    )
    save_figure(confusion_figure(scored, {k: r["labels"] for k, r in results.items()}), stems["confusion"])
    save_figure(detection_figure(scored), stems["detection"])
    return accuracy
