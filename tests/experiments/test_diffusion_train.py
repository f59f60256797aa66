"""DDPM training: EMA arithmetic, checkpoints, and exact resumption of a killed run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from experiments.diffusion.config import TrainSpec, UNetSpec
from experiments.diffusion.model import EMA, build_scheduler, build_unet
from experiments.diffusion.sampling import ddim_sample
from experiments.diffusion.train import checkpoint_path, load_checkpoint_weights, train_diffusion

TINY = UNetSpec(block_out_channels=(8, 16, 16), norm_num_groups=4)


@pytest.fixture
def images() -> torch.Tensor:
    return torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(1)) * 2 - 1


def test_ema_is_a_moving_average_and_copies_buffers() -> None:
    model = nn.BatchNorm1d(2)
    ema = EMA(model, decay=0.75)
    with torch.no_grad():
        model.weight.fill_(3.0)  # starts at 1
        model.num_batches_tracked.fill_(7)  # integer buffer: copied, not averaged
    ema.update(model)
    assert torch.allclose(ema.shadow["weight"], torch.full((2,), 1.5))  # 0.75 * 1 + 0.25 * 3
    ema.update(model)
    assert torch.allclose(ema.shadow["weight"], torch.full((2,), 1.875))
    assert int(ema.shadow["num_batches_tracked"]) == 7
    with pytest.raises(ValueError, match="decay"):
        EMA(model, decay=1.0)


def test_checkpoint_steps_include_the_last_step() -> None:
    assert TrainSpec(steps=10, checkpoint_every=4).checkpoint_steps == (4, 8, 10)
    assert TrainSpec(steps=8, checkpoint_every=4).checkpoint_steps == (4, 8)


def test_training_writes_checkpoints_and_manifest(tmp_path: Path, images: torch.Tensor) -> None:
    spec = TrainSpec(steps=4, batch_size=4, checkpoint_every=2, ema_decay=0.5)
    info = train_diffusion(images, TINY, spec, seed=0, folder=tmp_path / "ck", manifest=tmp_path / "m.json")
    assert json.loads((tmp_path / "m.json").read_text())["checkpoints"] == info["checkpoints"]
    assert set(info["checkpoints"]) == {"2", "4"}
    model = load_checkpoint_weights(checkpoint_path(tmp_path / "ck", 4), build_unet(TINY, 8))
    samples = ddim_sample(model, build_scheduler(spec), n=3, steps=3, seed=0)
    assert samples.shape == (3, 1, 8, 8) and samples.abs().max() <= 1.0


def test_a_resumed_run_equals_an_uninterrupted_one(tmp_path: Path, images: torch.Tensor) -> None:
    full = TrainSpec(steps=6, batch_size=4, checkpoint_every=3, ema_decay=0.5)
    train_diffusion(images, TINY, full, seed=3, folder=tmp_path / "a")
    # a job "killed" after step 3: only the first half ran, then the full job starts again in the same folder
    train_diffusion(
        images, TINY, TrainSpec(steps=3, batch_size=4, checkpoint_every=3, ema_decay=0.5), seed=3, folder=tmp_path / "b"
    )
    info = train_diffusion(images, TINY, full, seed=3, folder=tmp_path / "b")
    assert info["resumed_from"] == 3
    from safetensors.torch import load_file

    a, b = load_file(checkpoint_path(tmp_path / "a", 6)), load_file(checkpoint_path(tmp_path / "b", 6))
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    # and training actually moved the weights (the comparison above could not pass vacuously)
    first = load_file(checkpoint_path(tmp_path / "a", 3))
    assert any(not torch.allclose(a[k], first[k]) for k in a if a[k].dtype.is_floating_point)


def test_a_changed_recipe_does_not_resume_the_old_run(tmp_path: Path, images: torch.Tensor) -> None:
    train_diffusion(images, TINY, TrainSpec(steps=3, batch_size=4, checkpoint_every=3), seed=0, folder=tmp_path)
    info = train_diffusion(
        images, TINY, TrainSpec(steps=3, batch_size=4, checkpoint_every=3, lr=0.01), seed=0, folder=tmp_path
    )
    assert info["resumed_from"] == 0
