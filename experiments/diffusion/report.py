"""The diffusion study's figures and tables, from every run's frames (memorisation, loss, drift, geometry)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from experiments.atomic import atomic_path
from experiments.diffusion.config import EvalSpec
from experiments.diffusion.figures import anatomy_heatmap, bottleneck_figure, memorisation_figure, sample_grid
from experiments.diffusion.findings import bottleneck_finding, earlier_finding, findings_page, tracking_finding
from experiments.diffusion.onset import bottleneck_table, drift_gaps, onset_table, summarise_onsets
from experiments.figures import save_figure, write_table


def write_report(
    evaluation: EvalSpec,
    frames: Mapping[str, pd.DataFrame],
    finals: Mapping[int, dict[str, torch.Tensor]],
    out: Mapping[str, Path],
) -> pd.DataFrame:
    """Write every figure and table to its stem in ``out``; returns the onset summary.

    Args:
        evaluation: the study's measurement settings (significance level, onset rules).
        frames: every run's tables per frame name (:func:`experiments.results.read_frames`).
        finals: final samples per N for the sample grid.
        out: a stem per figure or table.
    """
    gaps = drift_gaps(frames["drift"], evaluation.alpha)
    onsets = onset_table(
        gaps,
        frames["loss"],
        frames["memorisation"],
        evaluation.alpha,
        evaluation.onset_fraction,
        evaluation.consecutive,
    )
    summary = summarise_onsets(onsets)
    save_figure(anatomy_heatmap(gaps), out["anatomy"])
    save_figure(
        memorisation_figure(frames["memorisation"], frames["loss"], evaluation.onset_fraction), out["memorisation"]
    )
    save_figure(bottleneck_figure(gaps, onsets), out["bottleneck"])
    save_figure(sample_grid(dict(finals)), out["samples"])
    write_table(
        onsets,
        out["onsets"],
        float_format="%.2f",
        caption="Onset steps (first of consecutive significant checkpoints) per block, loss gap and "
        "memorised fraction; ratio = loss (or memorisation) onset / earliest drift onset.",
    )
    write_table(
        summary,
        out["onset_summary"],
        float_format="%.2f",
        caption="Median onsets and ratios over seeds per N and t (ratio > 1: drift flags first).",
    )
    write_table(
        bottleneck_table(gaps, onsets, frames["geometry"]),
        out["bottleneck_blocks"],
        float_format="%.2f",
        caption="Block separating most (largest null-corrected gap z, last checkpoint) and first, per N, t.",
    )
    _write_run_tables(frames, out)
    _write_findings(evaluation, frames, gaps, onsets, out["findings"])
    return summary


def _write_findings(
    evaluation: EvalSpec, frames: Mapping[str, pd.DataFrame], gaps: pd.DataFrame, onsets: pd.DataFrame, path: Path
) -> None:
    steps = np.unique(frames["memorisation"]["step"])
    trained = steps[steps > 0]
    first_checkpoint = int(trained.min())
    spacing = int(np.diff(trained).min()) if trained.size > 1 else first_checkpoint
    findings = [
        bottleneck_finding(gaps, onsets),
        earlier_finding(onsets, first_checkpoint),
        tracking_finding(gaps, onsets, frames["memorisation"], evaluation.onset_fraction),
    ]
    runs = frames["memorisation"].drop_duplicates(["n_train", "seed"])
    settings = (
        f"N in {sorted(int(n) for n in runs['n_train'].unique())}, seeds per N "
        f"{sorted({int(c) for c in runs.groupby('n_train')['seed'].nunique()})}, checkpoints every "
        f"{spacing} steps from "
        f"step {first_checkpoint}, timesteps {sorted(int(t) for t in gaps['t'].unique())}, alpha {evaluation.alpha:g} "
        f"(Bonferroni over blocks), an onset needs {evaluation.consecutive} consecutive significant checkpoints."
    )
    with atomic_path(path.with_suffix(".md")) as tmp:
        tmp.write_text(findings_page(findings, settings))


def memorised_table(memorisation: pd.DataFrame) -> pd.DataFrame:
    """Memorised fraction at each run's last checkpoint, per training-set size N (over seeds)."""
    last = memorisation.groupby(["n_train", "seed"])["step"].transform("max")
    final = memorisation[memorisation["step"] == last]
    table = final.groupby("n_train").agg(
        seeds=("seed", "nunique"),
        memorised_mean=("memorised_fraction", "mean"),
        memorised_min=("memorised_fraction", "min"),
        memorised_max=("memorised_fraction", "max"),
        median_ratio=("median_ratio", "median"),
        step=("step", "max"),
    )
    return table.reset_index()


def _write_run_tables(frames: Mapping[str, pd.DataFrame], out: Mapping[str, Path]) -> None:
    write_table(
        memorised_table(frames["memorisation"]),
        out["memorised"],
        caption="Memorised fraction of DDIM samples at the last checkpoint (NN ratio < 1/3), per training-set size N.",
    )
    geometry = frames["geometry"].drop_duplicates("block").drop(columns=["n_train", "seed"])
    write_table(
        geometry,
        out["blocks"],
        float_format="%.0f",
        caption="Tapped U-Net blocks: output channels, spatial size and pooled features (mean, std and max "
        "of each channel). Drift is in sigma units against each block's own clean-data null at the scored "
        "batch size, so width and feature correlation are standardised per block; compare blocks of equal "
        "resolution before naming a bottleneck.",
    )
