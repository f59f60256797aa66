"""The mode-truth study's workflow entry (rule ``mode_truth``)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import torch

from experiments.atomic import write_csv
from experiments.figures import save_figure, write_table
from experiments.mode_truth.evaluate import run_model
from experiments.mode_truth.figures import confusion_figure, mechanism_figure
from experiments.mode_truth.stream import run_streams
from experiments.mode_truth.summary import (
    confusion,
    mechanism_table,
    natural_table,
    onset_table,
    recall_table,
    stream_table,
    verdicts,
)
from experiments.rule_io import Files, by_model, checked, output_paths

if TYPE_CHECKING:
    from experiments.workflow_config import WorkflowConfig

logger = logging.getLogger(__name__)

INPUTS = ("weights",)
OUTPUTS = (
    "verdicts", "mechanism_taps", "streams", "confusion", "recall", "natural", "onsets", "mechanism",
    "stream_summary", "modes_figure", "depth_figure",
)  # fmt: skip
STREAM_COLUMNS = ["model", "stream", "pre", "post", "batch_size", "delay", "false_alerts", "alert_at_change"]


def run(cfg: WorkflowConfig, inputs: Mapping[str, Files], outputs: Mapping[str, Files]) -> pd.DataFrame:
    """Rule ``mode_truth``: every configured model's perturbation instances, natural shifts and streams.

    Args:
        cfg: the config set (``mode_truth``, ``models`` and ``data`` are read).
        inputs: ``weights``, one file per model of ``mode_truth.models``.
        outputs: every name of :data:`OUTPUTS`.

    Returns:
        The recall table.
    """
    given = checked(inputs, INPUTS, "input", "mode_truth")
    out = output_paths(outputs, OUTPUTS, "mode_truth")
    study = cfg.mode_truth
    weights = by_model(given["weights"], study.models, "mode_truth input 'weights'")
    torch.manual_seed(study.seed)
    frames: dict[str, list[pd.DataFrame]] = {}
    streams = []
    for key, path in weights.items():
        result = run_model(cfg.models[key], str(path), cfg.data, study)
        for name, frame in result.frames.items():
            frames.setdefault(name, []).append(frame)
        if key in study.stream_models:
            streams.append(run_streams(key, result.prepared, study))
    merged = {name: pd.concat(parts, ignore_index=True) for name, parts in frames.items()}
    df = verdicts(merged["batches"], merged["instances"], merged["tap_labels"])
    runs = pd.concat(streams, ignore_index=True) if streams else pd.DataFrame(columns=STREAM_COLUMNS)
    write_csv(df, out["verdicts"])
    write_csv(merged["mechanism_taps"], out["mechanism_taps"])
    write_csv(runs, out["streams"])
    recall = recall_table(df)
    _write_tables(out, df, recall, merged["mechanism"], runs)
    save_figure(confusion_figure(df), out["modes_figure"])
    save_figure(mechanism_figure(merged["mechanism_taps"]), out["depth_figure"])
    return recall


def _write_tables(
    out: Mapping[str, Path], df: pd.DataFrame, recall: pd.DataFrame, mechanism: pd.DataFrame, runs: pd.DataFrame
) -> None:
    write_table(
        confusion(df),
        out["confusion"],
        float_format="%.0f",
        caption="Batches per perturbation family and mechanism (rows; the family fixes the true mode) and the "
        "doctor's diagnosed mode (columns), per model and batch size.",
    )
    write_table(
        recall,
        out["recall"],
        caption="Per-mode recall: share of a family's batches diagnosed as its mechanism's mode (undetected batches "
        "count as wrong), 95% bootstrap interval over perturbation instances; the clean row's false diagnoses "
        "carry a Clopper-Pearson interval over batches.",
    )
    write_table(
        natural_table(df),
        out["natural"],
        caption="Natural shifts (class prior; classes the model never saw): AUROC of the largest tap drift against "
        "clean batches of the seen classes (95% bootstrap over batches), share flagged, most frequent onset tap "
        "and diagnosed mode.",
    )
    write_table(
        onset_table(df),
        out["onsets"],
        caption="Natural shifts: share of flagged batches per onset tap (where the doctor says the drift starts).",
    )
    write_table(
        mechanism_table(mechanism),
        out["mechanism"],
        caption="Mechanism check without the drift statistic: relative L2 change of pooled tap features (perturbed "
        "against clean model, same images) at the first reached and the last tap, their ratio, and the share of "
        "instances whose change grows with depth.",
    )
    write_table(
        stream_table(runs) if len(runs) else pd.DataFrame(columns=["model"]),
        out["stream_summary"],
        caption="Streams of clean seen-class batches then unseen-class batches through DeepDriftMonitor.step: "
        "batches to the first ALERT after the change and ALERT entries before it (Clopper-Pearson per clean batch).",
    )
