"""The fault-localisation benchmark's workflow entry (rule ``fault_localisation``)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from deepdrift import DriftScorer, LayerTaps, Tap
from experiments.atomic import write_csv, write_npz
from experiments.data import DataSpec
from experiments.data.spec import split_dataset
from experiments.data.study_images import StudyImages, study_images
from experiments.features import FeatureSet, extract_features, tap_order, torch_threads
from experiments.figures import save_figure, write_table
from experiments.localisation.config import FaultStudyConfig
from experiments.localisation.corruption_modes import corruption_mode_table, corruption_modes
from experiments.localisation.evaluate import (
    CONTROL,
    DEVELOPMENT,
    HELDOUT,
    Fault,
    evaluate_faults,
    fit_scorer,
    score_batches,
)
from experiments.localisation.faults import GREY_ONLY, RGB_ONLY, fault_seed
from experiments.localisation.figures import confusion_figure, detection_figure, localiser_figure
from experiments.localisation.peers import PeerLocaliser, fit_peer
from experiments.localisation.sites import FaultSite, find_sites, heldout_sites
from experiments.localisation.summary import accuracy_table, fault_table, mode_confusion
from experiments.models.zoo import ModelSpec, load_model
from experiments.rule_io import Files, by_model, checked, output_paths

if TYPE_CHECKING:
    from experiments.workflow_config import WorkflowConfig

logger = logging.getLogger(__name__)

INPUTS = ("weights",)
OUTPUTS = (
    "verdicts", "faulted_outputs", "accuracy", "mode_confusion", "faults", "corruption_modes", "onset_confusion",
    "detection", "localisers",
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
        **{f"{k}_{part}": r[part] for k, r in results.items() for part in ("predictions", "heldout_predictions")},
        **{f"{k}_{part}": r[part] for k, r in results.items() for part in ("fault_ids", "heldout_fault_ids")},
    )
    accuracy = accuracy_table(scored, study.min_accuracy_change)
    corruptions = pd.concat([r["corruptions"] for r in results.values()], ignore_index=True)
    _write_tables(out, scored, accuracy, corruptions, study.corruption_severity)
    save_figure(confusion_figure(scored, {k: r["labels"] for k, r in results.items()}), out["onset_confusion"])
    save_figure(detection_figure(scored), out["detection"])
    save_figure(localiser_figure(scored, study.min_accuracy_change), out["localisers"])
    return accuracy


def build_faults(
    cfg: FaultStudyConfig, sites: list[FaultSite], in_chans: int, fault_set: str = DEVELOPMENT, salt: int = 0
) -> list[Fault]:
    """Every input fault that fits the input's channels and every internal fault at every site; the development
    set also carries its original clean fault (the held-out set's clean batches are the control)."""
    skip = RGB_ONLY if in_chans == 1 else GREY_ONLY
    faults = [Fault("none", "clean", 0.0)] if fault_set == DEVELOPMENT else []
    faults += [
        Fault("input", fam, float(s), fault_set=fault_set, salt=salt)
        for fam, strengths in cfg.input.items()
        if fam not in skip
        for s in strengths
    ]
    faults += [
        Fault("internal", fam, float(s), site, fault_set=fault_set, salt=salt)
        for site in sites
        for fam, strengths in cfg.internal.items()
        for s in strengths
    ]
    return faults


def run_model(
    spec: ModelSpec, weights: str | Path, data: DataSpec, cfg: FaultStudyConfig, cache_dir: str | Path | None
) -> dict[str, Any]:
    """All faults and corruptions on one trained model."""
    prepared = prepare_model(spec, weights, data, cfg)
    model, images, taps, scorer = prepared.model, prepared.images, prepared.taps, prepared.scorer
    # the peers draw nothing from torch's global generator (make sure of it) and fit on one thread, so their
    # float64 fits are the same bytes whatever the rule's thread grant
    with torch.random.fork_rng(), torch_threads(1):
        calib_labels = split_dataset(data, "test", data.splits().calib, spec.in_chans).tensors[1]
        peers = _fit_peers(cfg, prepared.calib, calib_labels, spec.key)
    sites = find_sites(model, prepared.names, images.calib[:8], cfg.n_depths, cfg.per_segment)
    faults = build_faults(cfg, sites, spec.in_chans)
    logger.info("%s: %d taps, %d fault sites, %d faults", spec.key, len(taps), len(sites), len(faults))
    dev = slice(0, cfg.n_eval)
    batches, fault_rows, predictions = evaluate_faults(
        model, spec.key, faults, scorer, taps, images.heldout[dev], images.labels[dev], cfg.batch_sizes,
        cfg.n_batches, images.mean, images.std, images.calib[:64], peers,
    )  # fmt: skip
    corr = corruption_modes(
        model, spec.key, scorer, taps, images, cfg.corruptions, cfg.corruption_severity,
        min(cfg.corruption_images, cfg.n_eval), 16, cfg.seed, cache_dir,
    )  # fmt: skip
    with torch.random.fork_rng():  # the development set above stays exactly as it was; nothing below may move it
        torch.manual_seed(cfg.heldout_seed)
        held = evaluate_heldout(prepared, peers, sites, cfg)
        control = evaluate_control(prepared, peers, cfg)
    return {
        "batches": pd.concat([batches, held[0], control[0]], ignore_index=True),
        "faults": pd.concat([fault_rows, held[1], control[1]], ignore_index=True),
        "predictions": predictions,
        "heldout_predictions": held[2],
        "fault_ids": fault_rows["fault_id"].to_numpy(dtype=str),
        "heldout_fault_ids": held[1]["fault_id"].to_numpy(dtype=str),
        "corruptions": corr,
        "labels": [t.label for t in taps],
    }


def _fit_peers(cfg: FaultStudyConfig, calib: FeatureSet, labels: torch.Tensor, model_key: str) -> list[PeerLocaliser]:
    labelled = FeatureSet(calib.logits, calib.penultimate, calib.taps, labels, calib.tap_means)
    return [
        fit_peer(
            method,
            labelled,
            cfg.batch_sizes,
            reference_size=cfg.peer_reference_size,
            null_draws=cfg.peer_null_draws,
            seed=fault_seed("peers", method, model_key),
        )
        for method in cfg.peers
    ]


@dataclass(frozen=True)
class PreparedModel:
    """One trained model ready for faults: its images, taps (in depth order), clean calibration features and the
    drift scorer calibrated on them."""

    model: torch.nn.Module
    spec: ModelSpec
    images: StudyImages
    names: list[str]
    taps: list[Tap]
    calib: FeatureSet
    scorer: DriftScorer


def prepare_model(spec: ModelSpec, weights: str | Path, data: DataSpec, cfg: FaultStudyConfig) -> PreparedModel:
    """Load a trained model, its study images (the whole shuffled pool; the development set is its first
    ``n_eval``), its taps, clean calibration features and a scorer fitted on them."""
    model = load_model(spec, data, weights)
    images = study_images(data, spec.in_chans, None, cfg.seed)
    names = tap_order(model, images.calib[:8])
    taps = LayerTaps(model, layers=names).taps
    calib = extract_features(model, images.calib, names)
    return PreparedModel(model, spec, images, names, taps, calib, fit_scorer(calib))


def heldout_verdicts(spec: ModelSpec, weights: str | Path, data: DataSpec, cfg: FaultStudyConfig) -> pd.DataFrame:
    """Scored verdicts of the held-out fault set and the clean control on one model, by the doctor and the
    always-first-tap localiser (no peers, no development set, no corruptions): what a replicate model is judged on.

    The held-out set is drawn under its own seed exactly as in :func:`run_model`, so for the same model, weights
    and global seed the rows are the ones the benchmark writes for those two localisers.
    """
    prepared = prepare_model(spec, weights, data, cfg)
    sites = find_sites(prepared.model, prepared.names, prepared.images.calib[:8], cfg.n_depths, cfg.per_segment)
    with torch.random.fork_rng():
        torch.manual_seed(cfg.heldout_seed)
        held = evaluate_heldout(prepared, [], sites, cfg)
        control = evaluate_control(prepared, [], cfg)
    return score_batches(
        pd.concat([held[0], control[0]], ignore_index=True), pd.concat([held[1], control[1]], ignore_index=True)
    )


def evaluate_heldout(
    prepared: PreparedModel, peers: list[PeerLocaliser], development: list[FaultSite], cfg: FaultStudyConfig
) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """The held-out fault set: one new site per segment, salted draws, the next ``n_eval`` images of the pool."""
    model, spec, images = prepared.model, prepared.spec, prepared.images
    part = slice(cfg.heldout_offset, cfg.heldout_offset + cfg.n_eval)
    if len(images.heldout[part]) < cfg.n_eval:
        raise ValueError(
            f"the held-out fault set needs images [{part.start}, {part.stop}) but the pool has {len(images.heldout)};"
            " lower faults.heldout_offset or n_eval, or raise data.n_heldout"
        )
    seed = fault_seed("sites", cfg.heldout_seed, spec.key)
    sites = heldout_sites(model, prepared.names, images.calib[:8], development, seed)
    faults = build_faults(cfg, sites, spec.in_chans, HELDOUT, cfg.heldout_seed)
    logger.info("%s held-out: %d fault sites, %d faults", spec.key, len(sites), len(faults))
    return evaluate_faults(
        model, spec.key, faults, prepared.scorer, prepared.taps, images.heldout[part], images.labels[part],
        cfg.batch_sizes, cfg.n_batches, images.mean, images.std, images.calib[:64], peers,
    )  # fmt: skip


def evaluate_control(
    prepared: PreparedModel, peers: list[PeerLocaliser], cfg: FaultStudyConfig
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``control_batches`` clean batches per batch size on the unfaulted model, from the start of the pool."""
    images = prepared.images
    needed = cfg.control_batches * max(cfg.batch_sizes)
    if len(images.heldout) < needed:
        raise ValueError(
            f"{cfg.control_batches} control batches of {max(cfg.batch_sizes)} need {needed} pool images, the pool "
            f"has {len(images.heldout)}; lower faults.control_batches or raise data.n_heldout"
        )
    batches, fault_rows, _ = evaluate_faults(
        prepared.model, prepared.spec.key, [Fault("none", "control", 0.0, fault_set=CONTROL)], prepared.scorer,
        prepared.taps, images.heldout[:needed], images.labels[:needed], cfg.batch_sizes,
        [cfg.control_batches] * len(cfg.batch_sizes), images.mean, images.std, images.calib[:64], peers,
    )  # fmt: skip
    return batches, fault_rows


def _write_tables(
    out: Mapping[str, Path], scored: pd.DataFrame, accuracy: pd.DataFrame, corruptions: pd.DataFrame, severity: int
) -> None:
    write_table(
        accuracy,
        out["accuracy"],
        caption="Fault localisation: detection, onset-tap and failure-mode accuracy per batch (undetected batches "
        "count as wrong), per fault set and localiser; 'detected' on clean batches is the false-diagnosis rate.",
    )
    write_table(
        mode_confusion(scored),
        out["mode_confusion"],
        float_format="%.0f",
        caption="Doctor's failure mode (columns) against the expected mode (rows), per fault set, batches of 16.",
    )
    write_table(
        fault_table(scored), out["faults"], caption="Every injected fault (development and held-out) at batch 16."
    )
    write_table(
        corruption_mode_table(corruptions),
        out["corruption_modes"],
        float_format="%.2f",
        caption=f"Share of batches (16 images) per diagnosed mode, corruptions at severity {severity}.",
    )
