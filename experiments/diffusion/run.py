"""Entry points of the diffusion study for the workflow (one function per rule) and for notebooks."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from safetensors.torch import load_file, save_file

from experiments.atomic import atomic_path, write_csv
from experiments.diffusion.config import DiffusionData, DiffusionStudyConfig, EvalSpec, TrainSpec, UNetSpec
from experiments.diffusion.data import images_of, study_split
from experiments.diffusion.evaluate import evaluate_run
from experiments.diffusion.figures import anatomy_heatmap, bottleneck_figure, memorisation_figure, sample_grid
from experiments.diffusion.onset import bottleneck_table, drift_gaps, onset_table, summarise_onsets
from experiments.diffusion.train import train_diffusion
from experiments.figures import save_figure, write_table

logger = logging.getLogger(__name__)

FRAMES = ("memorisation", "loss", "drift", "geometry")


def specs(cfg: Mapping[str, Any]) -> tuple[DiffusionData, UNetSpec, TrainSpec, EvalSpec]:
    """Frozen specs from ``config['diffusion']`` (checked strictly: an unknown key raises)."""
    study = DiffusionStudyConfig.from_config(cfg)
    return study.data, study.unet, study.train, study.eval


def train_job(cfg: Mapping[str, Any], n_train: int, seed: int, folder: str | Path, manifest: str | Path) -> dict:
    """Train one (N, seed) run, resuming from ``folder`` if an earlier job was killed."""
    data, unet, train, evaluation = specs(cfg)
    split = study_split(data, evaluation, n_train, seed)
    return train_diffusion(images_of(data, split.train), unet, train, seed, folder, manifest)


def evaluate_job(
    cfg: Mapping[str, Any], n_train: int, seed: int, manifest: str | Path, outputs: dict[str, str | Path]
) -> None:
    """Measure every checkpoint of one run; write one CSV per frame and the final samples (safetensors)."""
    data, unet, train, evaluation = specs(cfg)
    info = json.loads(Path(manifest).read_text())
    checkpoints = {int(step): path for step, path in info["checkpoints"].items()}
    results = evaluate_run(
        checkpoints, data, unet, train, evaluation, study_split(data, evaluation, n_train, seed), seed
    )
    for name in FRAMES:
        write_csv(getattr(results, name), outputs[name])
    with atomic_path(outputs["samples"]) as tmp:
        save_file({k: v.contiguous() for k, v in results.samples.items()}, str(tmp))


def load_results(paths: dict[str, list[str]]) -> dict[str, pd.DataFrame]:
    """Concatenate every run's CSVs per frame name."""
    return {name: pd.concat([pd.read_csv(p) for p in paths[name]], ignore_index=True) for name in FRAMES}


def _final_samples(sample_paths: list[str], memorisation: pd.DataFrame) -> dict[int, dict[str, torch.Tensor]]:
    """Samples of seed 0 (lowest seed) for the smallest and largest N."""
    runs = memorisation.drop_duplicates(["n_train", "seed"]).sort_values(["n_train", "seed"])
    runs = runs.groupby("n_train").first().reset_index()
    wanted = {runs["n_train"].min(), runs["n_train"].max()}
    by_key = {(int(r.n_train), int(r.seed)) for r in runs.itertuples()}
    finals = {}
    for path in sample_paths:
        n, seed = (int(v[1:]) for v in Path(path).parent.name.split("_"))
        if n in wanted and (n, seed) in by_key:
            finals[n] = load_file(path)
    return finals


def report_job(
    cfg: Mapping[str, Any], paths: dict[str, list[str]], sample_paths: list[str], stems: dict[str, str | Path]
) -> pd.DataFrame:
    """All figures and tables of the study from the per-run CSVs; returns the onset summary."""
    _, _, _, evaluation = specs(cfg)
    frames = load_results(paths)
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
    save_figure(anatomy_heatmap(gaps), stems["heatmap"])
    save_figure(
        memorisation_figure(frames["memorisation"], frames["loss"], evaluation.onset_fraction), stems["memorisation"]
    )
    save_figure(bottleneck_figure(gaps, onsets), stems["bottleneck"])
    save_figure(sample_grid(_final_samples(sample_paths, frames["memorisation"])), stems["samples"])
    write_table(
        onsets,
        stems["onsets"],
        float_format="%.2f",
        caption="Onset steps (first of consecutive significant checkpoints) per block, loss gap and "
        "memorised fraction; ratio = loss (or memorisation) onset / earliest drift onset.",
    )
    write_table(
        summary,
        stems["onset_summary"],
        float_format="%.2f",
        caption="Median onsets and ratios over seeds per N and t (ratio > 1: drift flags first).",
    )
    write_table(
        bottleneck_table(gaps, onsets, frames["geometry"]),
        stems["bottleneck_table"],
        float_format="%.2f",
        caption="Block separating most (largest null-corrected gap z, last checkpoint) and first, per N, t.",
    )
    last = frames["memorisation"].groupby(["n_train", "seed"])["step"].transform("max")
    final = frames["memorisation"][frames["memorisation"]["step"] == last]
    table = final.groupby("n_train").agg(
        seeds=("seed", "nunique"),
        memorised_mean=("memorised_fraction", "mean"),
        memorised_min=("memorised_fraction", "min"),
        memorised_max=("memorised_fraction", "max"),
        median_ratio=("median_ratio", "median"),
        step=("step", "max"),
    )
    write_table(
        table.reset_index(),
        stems["memorised"],
        caption="Memorised fraction of DDIM samples at the last checkpoint (NN ratio < 1/3), per training-set size N.",
    )
    geometry = frames["geometry"].drop_duplicates("block").drop(columns=["n_train", "seed"])
    write_table(
        geometry,
        stems["geometry"],
        float_format="%.0f",
        caption="Tapped U-Net blocks: output channels, spatial size and pooled features (mean, std and max "
        "of each channel). Drift is in sigma units against each block's own clean-data null at the scored "
        "batch size, so width and feature correlation are standardised per block; compare blocks of equal "
        "resolution before naming a bottleneck.",
    )
    return summary
