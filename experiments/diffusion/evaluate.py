"""Everything measured at each checkpoint of one (N, seed) run: memorisation, loss gap, per-block drift vs null."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import pandas as pd
import torch
from diffusers import DDPMScheduler, UNet2DModel
from tqdm.auto import tqdm

from experiments.diffusion.config import DiffusionData, EvalSpec, TrainSpec, UNetSpec
from experiments.diffusion.data import SplitImages, StudySplit, split_images
from experiments.diffusion.drift import block_geometry, drift_vs_null
from experiments.diffusion.loss_gap import loss_gap_test, per_image_losses
from experiments.diffusion.memorisation import memorisation_row, nearest_neighbours
from experiments.diffusion.model import build_scheduler, build_unet, initial_unet
from experiments.diffusion.sampling import ddim_sample
from experiments.diffusion.train import load_checkpoint_weights

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunResults:
    """Tidy frames of one run, plus the last checkpoint's samples for the sample grid."""

    memorisation: pd.DataFrame
    loss: pd.DataFrame
    drift: pd.DataFrame
    geometry: pd.DataFrame
    samples: dict[str, torch.Tensor]


def evaluate_run(
    checkpoints: dict[int, str | None],
    data: DiffusionData,
    unet: UNetSpec,
    train_spec: TrainSpec,
    spec: EvalSpec,
    split: StudySplit,
    seed: int,
) -> RunResults:
    """Measure every checkpoint of one run (and the initial weights as step 0 when ``spec.include_init``).

    Returns:
        ``RunResults`` whose frames carry ``n_train``, ``seed`` and ``step`` columns (drift also ``t``, ``set``).
    """
    images = split_images(data, split)
    n_train = len(images.train)
    scheduler = build_scheduler(train_spec)
    model = build_unet(unet, data.img_size, data.channels)
    mem_rows, loss_rows, drift_frames = [], [], []
    samples = torch.empty(0)
    init = initial_unet(unet, data.img_size, data.channels, seed).state_dict()
    todo = ({0: None} if spec.include_init else {}) | dict(checkpoints)
    for step, path in tqdm(sorted(todo.items()), desc=f"evaluate N={n_train} seed={seed}", disable=None):
        began = time.perf_counter()
        if path is None:
            model.load_state_dict(init)
            model.eval()
        else:
            load_checkpoint_weights(path, model)
        samples, mem_row, loss_row, drift = measure_checkpoint(model, scheduler, images, spec, step)
        mem_rows.append(mem_row)
        loss_rows.append(loss_row)
        drift_frames.append(drift)
        logger.info(
            "N=%d seed=%d step %d: memorised %.2f, loss gap %.4f (%.1f s)",
            n_train,
            seed,
            step,
            mem_row["memorised_fraction"],
            loss_row["loss_gap"],
            time.perf_counter() - began,
        )
    tag = {"n_train": n_train, "seed": seed}
    return RunResults(
        memorisation=pd.DataFrame(mem_rows).assign(**tag),
        loss=pd.DataFrame(loss_rows).assign(**tag),
        drift=pd.concat(drift_frames, ignore_index=True).assign(**tag),
        geometry=block_geometry(model, images.calib).assign(**tag),
        samples=samples_with_neighbours(samples, images.train),
    )


@torch.no_grad()
def measure_checkpoint(
    model: UNet2DModel, scheduler: DDPMScheduler, images: SplitImages, spec: EvalSpec, step: int
) -> tuple[torch.Tensor, dict, dict, pd.DataFrame]:
    """One checkpoint: its DDIM samples, memorisation row, loss-gap row and per-block drift against the null."""
    samples = ddim_sample(model, scheduler, spec.n_samples, spec.ddim_steps, spec.sample_seed)
    mem_row = {"step": step, **memorisation_row(samples, images.train, spec.memorisation_ratio)}
    train_losses = per_image_losses(model, scheduler, images.scored, spec.loss_draws, spec.noise_seed)
    held_losses = per_image_losses(model, scheduler, images.null_sets[0], spec.loss_draws, spec.noise_seed)
    loss_row = {"step": step, **loss_gap_test(train_losses, held_losses, spec.n_bootstrap, spec.noise_seed + step)}
    drift = [
        drift_vs_null(
            model, scheduler, images.calib, images.scored, images.null_sets, t, spec.noise_seed, spec.noise_draws
        ).assign(step=step)
        for t in spec.timesteps
    ]
    return samples, mem_row, loss_row, pd.concat(drift, ignore_index=True)


def samples_with_neighbours(samples: torch.Tensor, train: torch.Tensor) -> dict[str, torch.Tensor]:
    """The last checkpoint's samples with their nearest training images and distance ratios (the sample grid)."""
    nb = nearest_neighbours(samples, train)
    return {
        "samples": samples,
        "nearest": train[torch.as_tensor(nb.first)],
        "ratio": torch.as_tensor(nb.ratio),
        "d_first": torch.as_tensor(nb.d_first),
    }
