"""The sigma contract on a diffusion U-Net: stored block features score what a U-Net monitor scores."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepdrift import DeepDriftMonitor
from experiments.diffusion.config import DiffusionData, DiffusionStudyConfig, TrainSpec, UNetSpec
from experiments.diffusion.contract_pool import (
    UNET_ARCH,
    heldout_images,
    last_checkpoint,
    noised_pool,
    unet_label,
    unet_tap_features,
)
from experiments.diffusion.drift import unet_forward
from experiments.diffusion.model import build_scheduler, initial_unet
from experiments.null_grid import calibrated_scorer, clean_drift, split_pool

TINY = UNetSpec(block_out_channels=(8, 16, 16), norm_num_groups=4)


def _images(n: int, seed: int) -> torch.Tensor:
    """Smooth images in [-1, 1] (blurred noise), like downsampled photographs rather than white noise."""
    x = torch.randn(n, 1, 16, 16, generator=torch.Generator().manual_seed(seed))
    x = torch.nn.functional.avg_pool2d(x, 3, stride=1, padding=1)
    return (x / x.abs().amax()).clamp(-1, 1)


def test_stored_unet_features_score_what_the_unet_monitor_scores() -> None:
    model = initial_unet(TINY, 16, 1, seed=0).eval()
    scheduler = build_scheduler(TrainSpec())
    images, t = _images(400, seed=1), 200
    taps = unet_tap_features(model, scheduler, images, t, seed=3, batch_size=64)
    calib, heldout = split_pool(len(images), 320, seed=1)
    scorer = calibrated_scorer(taps, calib)
    x_t = noised_pool(images, scheduler, t, seed=3)

    def batch(rows: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"sample": x_t[rows], "timestep": torch.full((len(rows),), t, dtype=torch.long)}

    monitor = DeepDriftMonitor(model, arch_name=UNET_ARCH, forward_fn=unet_forward)
    monitor.calibrate([batch(calib[s : s + 128]) for s in range(0, len(calib), 128)], progress=False)
    assert list(taps.features) == monitor.layer_names
    assert any(name.startswith("mid_block") for name in taps.features)
    rng = np.random.default_rng(0)
    for batch_size in (1, 16):
        pick = heldout[torch.as_tensor(rng.choice(len(heldout), batch_size, replace=False))]
        from_features = scorer.score_features(taps.rows(pick))
        from_monitor = monitor.score(batch(pick))
        # the U-Net's convolutions round differently at different batch sizes: agreement to float precision
        np.testing.assert_allclose(
            [s.drift for s in from_features.values()], [s.drift for s in from_monitor.values()], rtol=1e-4, atol=1e-4
        )
    drift = clean_drift(scorer, taps, heldout, 16, 4, seed=2)
    assert drift.shape == (4, len(taps.features)) and np.isfinite(drift).all()


def test_each_image_gets_its_own_noise_and_the_draw_is_seeded() -> None:
    scheduler = build_scheduler(TrainSpec())
    images = torch.zeros(3, 1, 4, 4)  # noised zeros are the scaled noise itself
    first, again = noised_pool(images, scheduler, 500, seed=0), noised_pool(images, scheduler, 500, seed=0)
    assert torch.equal(first, again)
    assert not torch.allclose(first[0], first[1])
    assert not torch.equal(first, noised_pool(images, scheduler, 500, seed=1))


def test_last_checkpoint_takes_the_latest_step_and_names_the_fix_when_there_is_none() -> None:
    manifest = {"checkpoints": {"500": "a.safetensors", "4000": "c.safetensors", "1000": "b.safetensors"}}
    assert last_checkpoint(manifest) == "c.safetensors"
    with pytest.raises(ValueError, match="diffusion_train"):
        last_checkpoint({"checkpoints": {}})
    assert unet_label(50) == "unet t=50"


def test_the_pool_must_fit_in_the_reserved_heldout_images() -> None:
    study = DiffusionStudyConfig(sizes=(4,), seeds=(0,), threads=1, data=DiffusionData(n_reserved=40))
    with pytest.raises(ValueError, match="n_reserved"):
        heldout_images(study, 41)
