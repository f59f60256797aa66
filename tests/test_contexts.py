"""Per-context calibration on a real diffusers U-Net: its features at different timesteps are different
distributions, so one reference for all timesteps makes clean batches look drifted."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from diffusers import UNet2DModel
from library_fixtures import clean_batches

from deepdrift import DeepDriftMonitor, DeepDriftWarning

TIMESTEPS = (50, 500)


@pytest.fixture(scope="module")
def unet() -> UNet2DModel:
    torch.manual_seed(0)
    return UNet2DModel(
        sample_size=16,
        in_channels=1,
        out_channels=1,
        block_out_channels=(8, 16),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
        norm_num_groups=4,
    ).eval()


def _batches(t: int, n: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    images = [x[:, :1] for x in clean_batches(n, batch_size=16, size=16, seed=seed)]
    return [(x, torch.full((x.shape[0],), t)) for x in images]


def _drifts(monitor: DeepDriftMonitor, batches, **kwargs) -> np.ndarray:
    return np.array([[s.drift for s in monitor.score(b, **kwargs).values()] for b in batches])


def test_unet_takes_sample_and_timestep_tuples(unet):
    monitor = DeepDriftMonitor(unet, n_null_draws=500)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeepDriftWarning)
        monitor.calibrate(_batches(50, 20, seed=1))
    x, t = _batches(50, 1, seed=2)[0]
    monitor.score((x, t))
    with torch.no_grad():
        torch.testing.assert_close(monitor.last_output.sample, unet(x, t).sample)  # t reached the model


def test_per_timestep_contexts_score_clean_batches_as_null(unet):
    monitor = DeepDriftMonitor(unet, n_null_draws=1000)
    loader = [b for t in TIMESTEPS for b in _batches(t, 20, seed=1)]
    monitor.calibrate(loader, context=lambda batch: int(batch[1][0]))  # 320 samples per timestep
    assert sorted(monitor.contexts) == list(TIMESTEPS)
    for t in TIMESTEPS:
        clean = _drifts(monitor, _batches(t, 12, seed=3), context=t)
        assert abs(clean.mean()) < 1.0 and clean.max() < 4.5, (t, clean.mean(), clean.max())
    # the same clean batches against the other timestep's reference are far off: contexts matter
    crossed = _drifts(monitor, _batches(500, 12, seed=3), context=50)
    assert np.median(crossed.max(axis=1)) > 4.0


def test_saved_context_loads_into_another_monitor(unet, tmp_path):
    monitor = DeepDriftMonitor(unet, n_null_draws=500)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeepDriftWarning)
        monitor.calibrate(_batches(500, 20, seed=1), context=500)
    path = monitor.save_calibration(tmp_path / "t500.safetensors", context=500)
    other = DeepDriftMonitor(unet, n_null_draws=500).load_calibration(path, context=500)
    batch = _batches(500, 1, seed=4)[0]
    np.testing.assert_allclose(_drifts(other, [batch], context=500), _drifts(monitor, [batch], context=500))
