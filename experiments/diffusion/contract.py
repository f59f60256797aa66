"""The diffusion study's workflow entry for the sigma contract on its U-Net blocks (rule calibration_contract_unet).

The U-Net at fixed timesteps is one more subject of the library's clean-drift contract: the same grid of calibration
splits and clean batches as the classifiers' (:mod:`experiments.null_grid`), on the pooled block features of
:mod:`experiments.diffusion.contract_pool`; the settings are the ``calibration`` section's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from experiments.atomic import write_csv
from experiments.diffusion.contract_pool import (
    heldout_images,
    last_checkpoint,
    trained_unet,
    unet_label,
    unet_tap_features,
)
from experiments.features import torch_threads
from experiments.figures import write_table
from experiments.null_grid import grid_counts, null_grid, summarise_counts
from experiments.null_tail import ACCEPTANCE_FACTOR, tail_table
from experiments.rule_io import Files, checked, output_paths

if TYPE_CHECKING:
    from experiments.workflow_config import WorkflowConfig

UNET_CONTRACT_INPUTS = ("manifest",)
UNET_CONTRACT_OUTPUTS = ("counts", "contract", "tail")


def unet_contract(cfg: WorkflowConfig, inputs: Mapping[str, Files], outputs: Mapping[str, Files]) -> pd.DataFrame:
    """Rule ``calibration_contract_unet``: the clean-drift grid of a trained U-Net's blocks at fixed timesteps,
    each timestep a row of the contract like a model (same splits, batch sizes and batch counts)."""
    given = checked(inputs, UNET_CONTRACT_INPUTS, "input", "calibration_contract_unet")
    out = output_paths(outputs, UNET_CONTRACT_OUTPUTS, "calibration_contract_unet")
    settings, unet = cfg.calibration.contract, cfg.calibration.unet_contract
    manifest = json.loads(Path(given["manifest"]).read_text())
    model, scheduler = trained_unet(cfg.diffusion, last_checkpoint(manifest))
    images = heldout_images(cfg.diffusion, unet.n_pool)
    cells, taps_by_label = [], {}
    for t in unet.timesteps:
        label = unet_label(t)
        taps = taps_by_label[label] = unet_tap_features(model, scheduler, images, t, settings.seed)
        with torch_threads(1):  # many tiny scoring calls: a second thread costs more than it saves
            cells += null_grid(
                taps,
                label,
                n_calib=unet.n_calib,
                splits=settings.splits,
                batch_sizes=settings.batch_sizes,
                n_batches=settings.n_batches,
                seed=settings.seed,
            )
    counts = grid_counts(cells, taps_by_label)
    write_csv(counts, out["counts"])
    run = f"N{unet.n_train}_s{unet.seed}"
    write_table(
        summarise_counts(counts),
        out["contract"],
        caption=f"Clean held-out drift per U-Net block, timestep and batch size (run {run}, last EMA checkpoint), "
        f"pooled over {settings.splits} calibration split(s) of {unet.n_calib} images (contract: |mean| <= 0.5, "
        "0.6 <= sd <= 1.6, at most 1% above 3; share_above_* are shares of batches).",
    )
    tail = tail_table(cells)
    write_table(
        tail,
        out["tail"],
        caption=f"Clean exceedance of 2, 3 and 3.5 sigma on the diffusion U-Net's blocks (run {run}, last EMA "
        f"checkpoint; held-out images noised to each timestep t), all blocks pooled, as a multiple of the normal tail "
        f"over {settings.splits} calibration split(s) of {unet.n_calib} images; 95% intervals from a two-stage "
        f"bootstrap (splits, then batches). passes: the upper end at 3 sigma is within {ACCEPTANCE_FACTOR:g}x nominal.",
    )
    return tail
