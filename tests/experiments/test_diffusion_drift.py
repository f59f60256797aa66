"""Null-corrected per-block drift of a diffusers U-Net, onset logic, and the class-balanced splits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from experiments.diffusion.config import DiffusionData, EvalSpec, TrainSpec, UNetSpec
from experiments.diffusion.data import balanced_pick, study_split
from experiments.diffusion.drift import block_geometry, calibrated_unet_monitor, score_sets
from experiments.diffusion.model import build_scheduler, build_unet
from experiments.diffusion.onset import drift_gaps, onset_step, onset_table

TINY = UNetSpec(block_out_channels=(8, 16, 16), norm_num_groups=4)


def _smooth(n: int, seed: int, shift: float = 0.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    low = torch.randn(n, 1, 2, 2, generator=g)
    x = torch.nn.functional.interpolate(low, size=(8, 8), mode="bilinear", align_corners=False)
    return (0.5 * x + 0.1 * torch.randn(n, 1, 8, 8, generator=g) + shift).clamp(-1, 1)


def _gaps(shift: float) -> pd.DataFrame:
    torch.manual_seed(0)
    model = build_unet(TINY, 8).eval()
    scheduler = build_scheduler(TrainSpec())
    monitor = calibrated_unet_monitor(model, scheduler, _smooth(320, 0), t=50, noise_seed=1, n_null_draws=500)
    sets = {"train": _smooth(24, 1, shift)} | {f"null{j}": _smooth(24, 10 + j) for j in range(6)}
    frame = score_sets(monitor, scheduler, sets, t=50, noise_seed=2, draws=1)
    return drift_gaps(frame.assign(n_train=24, seed=0, step=100, t=50), alpha=0.01)


def test_training_set_from_the_null_distribution_has_no_significant_gap() -> None:
    gaps = _gaps(shift=0.0)
    assert list(gaps["block"]) == [
        "down_blocks.0",
        "down_blocks.1",
        "down_blocks.2",
        "mid_block",
        "up_blocks.0",
        "up_blocks.1",
        "up_blocks.2",
    ]
    assert not gaps["significant"].any()


def test_a_shifted_training_set_is_flagged_above_the_null() -> None:
    gaps = _gaps(shift=0.6)
    assert gaps["significant"].any()
    assert (gaps["gap"] > 0).mean() > 0.5


def test_block_geometry_reports_width_and_resolution() -> None:
    geo = block_geometry(build_unet(TINY, 8).eval(), torch.zeros(2, 1, 8, 8))
    mid = geo.set_index("block").loc["mid_block"]
    assert (int(mid["channels"]), int(mid["height"])) == (16, 2)
    assert int(mid["pooled_features"]) == 48  # the monitor scores each channel's mean, std and max
    assert geo.set_index("block").loc["up_blocks.2", "height"] == 8


def test_onset_needs_consecutive_significant_checkpoints() -> None:
    steps = [100, 200, 300, 400, 500]
    assert onset_step(steps, [False, True, False, True, True], 2) == 400
    assert onset_step(steps, [False, True, False, True, True], 1) == 200
    assert np.isnan(onset_step(steps, [False, False, False, False, True], 2))  # one significant last checkpoint
    assert np.isnan(onset_step(steps, [True, False, True, False, False], 2))


def test_onset_table_ratio_is_loss_onset_over_first_drift_onset() -> None:
    steps = [100, 200, 300, 400]
    rows = []
    for block, index, first in (("down", 0, 300), ("mid", 1, 100)):
        for step in steps:
            rows.append(
                {
                    "n_train": 10,
                    "seed": 0,
                    "t": 50,
                    "block": block,
                    "block_index": index,
                    "step": step,
                    "significant": step >= first,
                    "gap_z": 1.0,
                }
            )
    gaps = pd.DataFrame(rows)
    loss = pd.DataFrame({"n_train": 10, "seed": 0, "step": steps, "gap_p": [0.5, 0.5, 0.001, 0.001]})
    mem = pd.DataFrame({"n_train": 10, "seed": 0, "step": steps, "memorised_fraction": [0, 0, 0.5, 0.5]})
    table = onset_table(gaps, loss, mem, alpha=0.01, onset_fraction=0.1, consecutive=2)
    row = table.iloc[0]
    assert row["first_block"] == "mid" and row["drift_onset"] == 100 and row["onset[down]"] == 300
    assert row["loss_onset"] == 300 and row["ratio_loss_drift"] == pytest.approx(3.0)
    assert row["memorisation_onset"] == 300 and row["ratio_mem_drift"] == pytest.approx(3.0)


def test_balanced_pick_balances_classes() -> None:
    labels = np.repeat(np.arange(10), 20)
    picked = balanced_pick(labels, np.arange(200), 23, np.random.default_rng(0))
    counts = np.bincount(labels[picked], minlength=10)
    assert len(set(picked)) == 23 and counts.min() == 2 and counts.max() == 3


def test_study_split_keeps_training_and_heldout_images_apart() -> None:
    spec = EvalSpec(n_calib=100, n_null_sets=3, score_batch_max=16)
    split = study_split(DiffusionData(n_reserved=400), spec, n_train=40, seed=0)
    held = [split.calib, *split.null_sets]
    assert len(split.train) == 40 and len(split.scored_train) == 16
    assert set(split.scored_train) <= set(split.train)
    everything = np.concatenate([split.train, *held])
    assert len(np.unique(everything)) == len(everything)  # all disjoint
    assert all(len(s) == 16 for s in split.null_sets)
    with pytest.raises(ValueError, match="n_reserved"):
        study_split(DiffusionData(n_reserved=100), spec, n_train=40, seed=0)
