"""The replicate study's workflow entry (rule ``replicates``)."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

import pandas as pd

from experiments.atomic import write_csv
from experiments.corruption.summary import identity_cells
from experiments.figures import save_figure, write_table
from experiments.null_grid import grid_counts
from experiments.replicates.detection import detection_tables, seed_detection
from experiments.replicates.figures import detection_figure, replicate_figure
from experiments.replicates.measure import measure_model
from experiments.replicates.summary import Subject, replicate_tables
from experiments.rule_io import Files, by_model, checked, output_paths

if TYPE_CHECKING:
    from experiments.workflow_config import WorkflowConfig

logger = logging.getLogger(__name__)

INPUTS = ("weights", "metrics")
OUTPUTS = ("counts", "verdicts", "per_seed", "summary", "figure")
DETECTION_INPUTS = ("scores", "accuracy")
DETECTION_OUTPUTS = ("per_seed", "summary", "figure")


def run(cfg: WorkflowConfig, inputs: Mapping[str, Files], outputs: Mapping[str, Files]) -> pd.DataFrame:
    """Rule ``replicates``: every replicate model through the sigma check and the held-out fault set; raw counts and
    verdicts, the per-seed and summary tables and the figure.

    Args:
        cfg: the config set (``replicates``, ``faults``, ``models`` and ``data`` are read).
        inputs: ``weights`` and ``metrics`` (the training record), one file per model of ``replicates.models``.
        outputs: every name of :data:`OUTPUTS`.
    """
    given = checked(inputs, INPUTS, "input", "replicates")
    out = output_paths(outputs, OUTPUTS, "replicates")
    study = cfg.replicates
    weights = by_model(given["weights"], study.models, "replicates input 'weights'")
    metrics = by_model(given["metrics"], study.models, "replicates input 'metrics'")
    subjects, taps = [], {}
    for architecture, keys in study.groups.items():
        for key in keys:
            spec = cfg.models[key]
            measured = measure_model(spec, weights[key], cfg.data, cfg.faults, study)
            taps[key] = measured.taps
            accuracy = float(json.loads(metrics[key].read_text())["heldout_accuracy"])
            subjects.append(Subject(architecture, key, spec.train.seed, accuracy, measured.cells, measured.verdicts))
    write_csv(grid_counts([c for s in subjects for c in s.cells], taps), out["counts"])
    write_csv(pd.concat([s.verdicts for s in subjects], ignore_index=True), out["verdicts"])
    min_drop = cfg.faults.min_accuracy_change
    per_seed, summary = replicate_tables(
        subjects, {"sigma": study.batch_sizes, "faults": cfg.faults.batch_sizes}, min_drop
    )
    seeds = ", ".join(f"{a}: {len(k)} models" for a, k in study.groups.items())
    write_table(
        per_seed,
        out["per_seed"],
        float_format="%.4f",
        caption=f"Headline numbers per independently trained model ({seeds}; the same recipe, another training "
        f"seed): clean exceedance of 3 sigma as a multiple of the normal tail over {study.splits} fresh "
        "calibration splits (interval: splits, then batches), and the doctor on the held-out fault set and clean "
        "control (interval: faults, then batches). clusters: splits or faults.",
    )
    write_table(
        summary,
        out["summary"],
        float_format="%.4f",
        caption="Mean over training seeds of each headline number with a 95% nested bootstrap interval (seeds, "
        "then each seed's splits or faults, then batches), the seeds' values, sd and range. With three seeds the "
        "interval is coarse.",
    )
    save_figure(replicate_figure(per_seed, summary, min_drop), out["figure"])
    return summary


def detection(cfg: WorkflowConfig, inputs: Mapping[str, Files], outputs: Mapping[str, Files]) -> pd.DataFrame:
    """Rule ``replicates_detection``: claim 4 per training seed, for every replicate group whose study model is in
    the corruption benchmark; the per-seed rows, the summary table and the figure.

    Args:
        cfg: the config set (``replicates``, ``corruption`` and ``models`` are read).
        inputs: ``scores`` and ``accuracy`` of ``corruption_measure``, one file per model of those groups.
        outputs: every name of :data:`DETECTION_OUTPUTS`.
    """
    given = checked(inputs, DETECTION_INPUTS, "input", "replicates_detection")
    out = output_paths(outputs, DETECTION_OUTPUTS, "replicates_detection")
    groups = cfg.replicates.detection_groups(cfg.corruption.models)
    models = [key for keys in groups.values() for key in keys]
    if not models:
        raise ValueError(
            "replicates_detection: no replicate group's first model is in corruption.models; add the group's study "
            "model to the corruption benchmark or leave this rule out of the targets"
        )
    scores = by_model(given["scores"], models, "replicates_detection input 'scores'")
    accuracy = by_model(given["accuracy"], models, "replicates_detection input 'accuracy'")
    identity = identity_cells(pd.concat([pd.read_csv(accuracy[m]) for m in models], ignore_index=True))
    measured = {m: seed_detection(pd.read_csv(scores[m]), identity.get(m, [])) for m in models}
    members = {label: [(key, cfg.models[key].train.seed) for key in keys] for label, keys in groups.items()}
    per_seed, summary = detection_tables(members, measured, cfg.replicates.seed)
    write_csv(per_seed, out["per_seed"])
    write_table(
        summary,
        out["summary"],
        float_format="%.4f",
        caption="Corruption detection per training seed (claim 4): mean AUROC over corrupted cells (identity cells "
        "left out) of DeepDrift on all taps (max), of the best peer statistic on the same layers (chosen per seed), "
        "their difference, and DeepDrift's difference to the best peer on the penultimate features (the peers as "
        "shipped). Per seed: 95% bootstrap interval over clean and corrupted batches (paired across statistics). "
        "mean, low, high: mean over seeds with a nested bootstrap interval (seeds, then batches).",
    )
    save_figure(detection_figure(per_seed, summary), out["figure"])
    return summary
