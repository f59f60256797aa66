"""The sigma contract's diffusion subject: a trained U-Net's block features on clean noised images at a fixed t.

A denoiser's clean input at timestep t is an unseen image noised to t. Each pool image gets its own noise (drawn
once, so a pooled feature row is as fixed as a classifier's is for its image), and the blocks the monitor taps by
default on a diffusers ``UNet2DModel`` are pooled per image; GroupNorm normalises each sample on its own, so in eval
mode the rows of a batch do not depend on each other, and the contract's grid (:mod:`null_grid`) can form clean
batches of any size from stored rows, exactly as for the classifiers.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from diffusers import DDPMScheduler, UNet2DModel
from tqdm.auto import tqdm

from deepdrift import LayerTaps
from experiments.diffusion.config import DiffusionStudyConfig
from experiments.diffusion.data import images_of, reserved_pool
from experiments.diffusion.model import build_scheduler, build_unet
from experiments.diffusion.train import load_checkpoint_weights
from experiments.null_grid import TapFeatures

UNET_ARCH = "UNet2DModel"
"""The architecture hint the diffusion study's monitors use (the automatic diffusers block taps)."""


def unet_label(t: int) -> str:
    """How tables name the U-Net at timestep ``t`` (a model row of the contract)."""
    return f"unet t={t}"


def last_checkpoint(manifest: Mapping[str, object]) -> str:
    """Path of the latest EMA checkpoint a ``diffusion_train`` manifest lists."""
    checkpoints = manifest.get("checkpoints")
    if not isinstance(checkpoints, Mapping) or not checkpoints:
        raise ValueError("the training manifest lists no checkpoints; rerun rule diffusion_train")
    return str(checkpoints[max(checkpoints, key=int)])


def trained_unet(study: DiffusionStudyConfig, checkpoint: str | Path) -> tuple[UNet2DModel, DDPMScheduler]:
    """The study's U-Net with a checkpoint's EMA weights (eval mode) and its training noise schedule."""
    model = build_unet(study.unet, study.data.img_size, study.data.channels)
    return load_checkpoint_weights(checkpoint, model), build_scheduler(study.train)


def heldout_images(study: DiffusionStudyConfig, n_pool: int) -> torch.Tensor:
    """The first ``n_pool`` images of the study's reserved held-out pool: no run of the study trains on them."""
    reserved, _ = reserved_pool(study.data)
    if n_pool > reserved.size:
        raise ValueError(
            f"n_pool={n_pool} exceeds the diffusion study's held-out pool of {reserved.size} images; lower "
            "calibration.unet_contract.n_pool or raise diffusion.data.n_reserved"
        )
    return images_of(study.data, reserved[:n_pool])


def noised_pool(images: torch.Tensor, scheduler: DDPMScheduler, t: int, seed: int) -> torch.Tensor:
    """Every image noised to ``t`` with its own noise, drawn once from ``(seed, t)``."""
    noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(seed * 1_000_003 + t))
    return scheduler.add_noise(images, noise, torch.full((len(images),), t, dtype=torch.long))


@torch.no_grad()
def unet_tap_features(
    model: UNet2DModel,
    scheduler: DDPMScheduler,
    images: torch.Tensor,
    t: int,
    seed: int,
    batch_size: int = 256,
) -> TapFeatures:
    """Pooled features of every image noised to ``t`` (its own noise) at the monitor's default U-Net taps."""
    model.eval()
    taps = LayerTaps(model, arch_name=UNET_ARCH)
    x_t = noised_pool(images, scheduler, t, seed)
    chunks: dict[str, list[torch.Tensor]] = {}
    for start in tqdm(range(0, len(x_t), batch_size), desc=f"U-Net features t={t}", disable=None, leave=False):
        xb = x_t[start : start + batch_size]
        tb = torch.full((len(xb),), t, dtype=torch.long)
        _, feats = taps.run(lambda xb=xb, tb=tb: model(xb, tb).sample, batch_size=len(xb))
        for name, value in feats.items():
            chunks.setdefault(name, []).append(value.float().cpu())
    return TapFeatures(
        features={name: torch.cat(parts) for name, parts in chunks.items()},
        depth={tap.name: float(tap.depth) for tap in taps.taps},
        zone={tap.name: str(tap.zone) for tap in taps.taps},
    )
