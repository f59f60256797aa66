"""Deterministic DDIM sampling (eta = 0) from fixed starting noise, so checkpoints are compared on the same draws."""

from __future__ import annotations

import torch
from diffusers import DDPMScheduler, UNet2DModel

from experiments.diffusion.model import ddim_from


@torch.no_grad()
def ddim_sample(
    model: UNet2DModel, scheduler: DDPMScheduler, n: int, steps: int, seed: int, batch_size: int = 256
) -> torch.Tensor:
    """``n`` samples ``[n, C, S, S]`` in [-1, 1] after ``steps`` DDIM steps, starting from noise seeded by ``seed``."""
    channels, size = model.config.in_channels, model.config.sample_size
    ddim = ddim_from(scheduler)
    ddim.set_timesteps(steps)
    x = torch.randn(n, channels, size, size, generator=torch.Generator().manual_seed(seed))
    was_training = model.training
    model.eval()
    out = []
    for chunk in x.split(batch_size):
        for t in ddim.timesteps:
            eps = model(chunk, t).sample
            chunk = ddim.step(eps, t, chunk).prev_sample
        out.append(chunk.clamp(-1.0, 1.0))
    model.train(was_training)
    return torch.cat(out)
