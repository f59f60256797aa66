"""The diffusion study's figures and tables, from every run's frames (memorisation, loss, drift, geometry)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from experiments.atomic import atomic_path
from experiments.diffusion.comparisons import head_to_head, lead_lag_table, onset_ratios, specificity_table
from experiments.diffusion.config import EvalSpec
from experiments.diffusion.detectors import (
    ANY,
    BEST,
    DETECTORS,
    LOSS,
    POOLED,
    RANK,
    block_tests,
    detector_flags,
    detector_onsets,
    memorisation_onsets,
    set_values,
)
from experiments.diffusion.figures import (
    anatomy_heatmap,
    bottleneck_figure,
    detector_onset_figure,
    memorisation_figure,
    sample_grid,
)
from experiments.diffusion.findings import (
    bottleneck_finding,
    earlier_finding,
    external_finding,
    findings_page,
    markdown_table,
    tracking_finding,
)
from experiments.diffusion.onset import bottleneck_table, drift_gaps, onset_table
from experiments.figures import save_figure, write_table


def write_report(
    evaluation: EvalSpec,
    frames: Mapping[str, pd.DataFrame],
    finals: Mapping[int, dict[str, torch.Tensor]],
    out: Mapping[str, Path],
) -> pd.DataFrame:
    """Write every figure and table to its stem in ``out``; returns the onset ratios.

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
    flags, _ = detector_flags(frames["drift"], frames["loss"], evaluation.alpha)
    detected = detector_onsets(flags, evaluation.consecutive)
    mem_onsets = memorisation_onsets(frames["memorisation"], evaluation.onset_fraction, evaluation.consecutive)
    steps = np.unique(frames["memorisation"]["step"])
    trained = steps[steps > 0]
    first_checkpoint = int(trained.min())
    spacing = int(np.diff(trained).min()) if trained.size > 1 else first_checkpoint
    horizon = float(trained.max() + spacing)
    ratios = onset_ratios(detected, (POOLED, BEST, ANY, RANK), horizon, first_checkpoint)
    save_figure(anatomy_heatmap(gaps), out["anatomy"])
    save_figure(
        memorisation_figure(frames["memorisation"], frames["loss"], evaluation.onset_fraction), out["memorisation"]
    )
    save_figure(bottleneck_figure(gaps, onsets), out["bottleneck"])
    save_figure(sample_grid(dict(finals)), out["samples"])
    save_figure(detector_onset_figure(detected, mem_onsets, list(DETECTORS), horizon), out["detectors"])
    write_table(
        detector_onset_table(detected, onsets, mem_onsets),
        out["onsets"],
        float_format="%.0f",
        caption="Onset steps (first of consecutive significant checkpoints, same null-set test for all) per N, seed "
        "and t: each detector, each block's drift (Bonferroni over blocks) and the memorised fraction.",
    )
    write_table(
        ratios,
        out["onset_summary"],
        float_format="%.2f",
        caption="Loss-gap onset / detector onset per N and t (> 1: the detector is earlier): median over seeds with "
        "a bootstrap interval; censored seeds counted (loss_missing: lower bound; detector_missing: upper bound).",
    )
    write_table(
        bottleneck_table(gaps, onsets, frames["geometry"]),
        out["bottleneck_blocks"],
        float_format="%.2f",
        caption="Block separating most (largest null-corrected gap z, last checkpoint) and first, per N, t.",
    )
    _write_run_tables(frames, out)
    equal_width = block_tests(set_values(frames["drift"]), "mean_shift_k", evaluation.alpha)
    specificity = specificity_table(gaps, flags, frames["memorisation"], (LOSS, POOLED, BEST, RANK))
    findings = [
        bottleneck_finding(gaps, onsets, equal_width),
        earlier_finding(ratios, first_checkpoint),
        tracking_finding(specificity, lead_lag_table(detected, mem_onsets, DETECTORS)),
        external_finding(head_to_head(detected, POOLED, RANK), specificity),
    ]
    runs = frames["memorisation"].drop_duplicates(["n_train", "seed"])
    settings = (
        f"N in {sorted(int(n) for n in runs['n_train'].unique())}, seeds per N "
        f"{sorted({int(c) for c in runs.groupby('n_train')['seed'].nunique()})}, checkpoints every "
        f"{spacing} steps from step {first_checkpoint} (plus step 0, the untrained control), timesteps "
        f"{sorted(int(t) for t in gaps['t'].unique())}, alpha {evaluation.alpha:g} per test (Bonferroni over "
        f"blocks where the earliest block is taken), an onset needs {evaluation.consecutive} consecutive "
        f"significant checkpoints, memorisation onset: memorised fraction >= {evaluation.onset_fraction:g}."
    )
    with atomic_path(out["findings"].with_suffix(".md")) as tmp:
        tmp.write_text(findings_page(findings, settings, _lead_lag_section(detected, mem_onsets)))
    return ratios


def detector_onset_table(detected: pd.DataFrame, block_onsets: pd.DataFrame, mem_onsets: pd.DataFrame) -> pd.DataFrame:
    """Wide onsets per (N, seed, t): every detector, every block and memorisation."""
    wide = detected.pivot_table(index=["n_train", "seed", "t"], columns="detector", values="onset", dropna=False)
    wide = wide[[d for d in DETECTORS if d in wide.columns]].reset_index()
    wide.columns.name = None
    blocks = block_onsets[["n_train", "seed", "t", *[c for c in block_onsets.columns if c.startswith("onset[")]]]
    return wide.merge(blocks, on=["n_train", "seed", "t"], how="left").merge(mem_onsets, on=["n_train", "seed"])


def _lead_lag_section(detected: pd.DataFrame, mem_onsets: pd.DataFrame) -> str:
    table = lead_lag_table(detected, mem_onsets, DETECTORS)
    return (
        "## Onsets against memorisation onset, per detector and t\n\n"
        "early: onset at or before the memorisation onset; late: after it; false_onset: an onset in a run that "
        "never memorises; missed: memorisation without an onset; quiet: neither. median_lead: memorisation onset "
        "minus detector onset (steps).\n\n" + markdown_table(table)
    )


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
