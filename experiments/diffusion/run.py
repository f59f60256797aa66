"""The diffusion study's workflow entries, one per rule: train one (N, seed) run, evaluate it, report on all runs.

Each entry takes the checked config set, the rule's named inputs and its named outputs, and checks those names
against the tuples declared beside it (:mod:`experiments.rule_io`). A run is named ``N<n>_s<seed>``
(:func:`experiments.results.diffusion_run`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import torch
from safetensors.torch import load_file, save_file

from experiments.atomic import atomic_path, write_csv
from experiments.diffusion.config import DiffusionStudyConfig
from experiments.diffusion.data import images_of, study_split
from experiments.diffusion.evaluate import evaluate_run
from experiments.diffusion.report import write_report
from experiments.diffusion.train import train_diffusion
from experiments.results import DIFFUSION_FRAMES, parse_diffusion_run, read_frames
from experiments.rule_io import Files, checked, output_paths

if TYPE_CHECKING:
    from experiments.workflow_config import WorkflowConfig

logger = logging.getLogger(__name__)

TRAIN_INPUTS: tuple[str, ...] = ()
TRAIN_OUTPUTS = ("manifest",)
EVALUATE_INPUTS = ("manifest",)
EVALUATE_OUTPUTS = (*DIFFUSION_FRAMES, "samples")
REPORT_INPUTS = (*DIFFUSION_FRAMES, "samples")
REPORT_OUTPUTS = (
    "anatomy", "memorisation", "bottleneck", "samples", "detectors", "onsets", "onset_summary", "bottleneck_blocks",
    "memorised", "blocks", "findings",
)  # fmt: skip


def train(
    cfg: WorkflowConfig, inputs: Mapping[str, Files], outputs: Mapping[str, Files], *, run: str, folder: str | Path
) -> dict:
    """Rule ``diffusion_train``: train run ``run`` (``N<n>_s<seed>``), resuming from ``folder`` after a killed job."""
    checked(inputs, TRAIN_INPUTS, "input", f"diffusion_train[{run}]")
    out = output_paths(outputs, TRAIN_OUTPUTS, f"diffusion_train[{run}]")
    n_train, seed = parse_diffusion_run(run)
    return train_run(cfg.diffusion, n_train, seed, folder, out["manifest"])


def train_run(study: DiffusionStudyConfig, n_train: int, seed: int, folder: str | Path, manifest: str | Path) -> dict:
    """Train one (N, seed) run into ``folder`` and write its manifest (checkpoint steps and files)."""
    split = study_split(study.data, study.eval, n_train, seed)
    return train_diffusion(images_of(study.data, split.train), study.unet, study.train, seed, folder, manifest)


def evaluate(cfg: WorkflowConfig, inputs: Mapping[str, Files], outputs: Mapping[str, Files], *, run: str) -> None:
    """Rule ``diffusion_evaluate``: measure every checkpoint of one run; one CSV per frame and the final samples."""
    given = checked(inputs, EVALUATE_INPUTS, "input", f"diffusion_evaluate[{run}]")
    out = output_paths(outputs, EVALUATE_OUTPUTS, f"diffusion_evaluate[{run}]")
    study = cfg.diffusion
    n_train, seed = parse_diffusion_run(run)
    info = json.loads(Path(given["manifest"]).read_text())
    checkpoints = {int(step): path for step, path in info["checkpoints"].items()}
    split = study_split(study.data, study.eval, n_train, seed)
    results = evaluate_run(checkpoints, study.data, study.unet, study.train, study.eval, split, seed)
    for name in DIFFUSION_FRAMES:
        write_csv(getattr(results, name), out[name])
    with atomic_path(out["samples"]) as tmp:
        save_file({k: v.contiguous() for k, v in results.samples.items()}, str(tmp))


def report(cfg: WorkflowConfig, inputs: Mapping[str, Files], outputs: Mapping[str, Files]) -> pd.DataFrame:
    """Rule ``diffusion_report``: every figure and table of the study from the per-run results."""
    given = checked(inputs, REPORT_INPUTS, "input", "diffusion_report")
    out = output_paths(outputs, REPORT_OUTPUTS, "diffusion_report")
    frames = read_frames({name: list(given[name]) for name in DIFFUSION_FRAMES})
    finals = final_samples(list(given["samples"]), frames["memorisation"])
    return write_report(cfg.diffusion.eval, frames, finals, out)


def final_samples(sample_paths: list[str], memorisation: pd.DataFrame) -> dict[int, dict[str, torch.Tensor]]:
    """Final samples of the lowest seed for the smallest and largest N (files in their runs' folders)."""
    runs = memorisation.drop_duplicates(["n_train", "seed"]).sort_values(["n_train", "seed"])
    runs = runs.groupby("n_train").first().reset_index()
    wanted = {runs["n_train"].min(), runs["n_train"].max()}
    by_key = {(int(r.n_train), int(r.seed)) for r in runs.itertuples()}
    finals = {}
    for path in sample_paths:
        n, seed = parse_diffusion_run(Path(path).parent.name)
        if n in wanted and (n, seed) in by_key:
            finals[n] = load_file(path)
    return finals
