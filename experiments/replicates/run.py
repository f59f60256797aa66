"""The replicate study's workflow entry (rule ``replicates``)."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

import pandas as pd

from experiments.atomic import write_csv
from experiments.figures import save_figure, write_table
from experiments.null_grid import grid_counts
from experiments.replicates.figures import replicate_figure
from experiments.replicates.measure import measure_model
from experiments.replicates.summary import Subject, replicate_tables
from experiments.rule_io import Files, by_model, checked, output_paths

if TYPE_CHECKING:
    from experiments.workflow_config import WorkflowConfig

logger = logging.getLogger(__name__)

INPUTS = ("weights", "metrics")
OUTPUTS = ("counts", "verdicts", "per_seed", "summary", "figure")


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
