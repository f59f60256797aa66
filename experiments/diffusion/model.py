"""The small diffusers U-Net, its noise schedule, and an exponential moving average of its weights."""

from __future__ import annotations

import torch
from diffusers import DDIMScheduler, DDPMScheduler, UNet2DModel
from torch import nn

from experiments.diffusion.config import TrainSpec, UNetSpec


def build_unet(spec: UNetSpec, img_size: int, channels: int = 1) -> UNet2DModel:
    """``UNet2DModel`` with plain down/up blocks; ``attention`` adds self-attention in the mid block only."""
    n = len(spec.block_out_channels)
    return UNet2DModel(
        sample_size=img_size,
        in_channels=channels,
        out_channels=channels,
        layers_per_block=spec.layers_per_block,
        block_out_channels=tuple(spec.block_out_channels),
        down_block_types=("DownBlock2D",) * n,
        up_block_types=("UpBlock2D",) * n,
        add_attention=spec.attention,
        norm_num_groups=spec.norm_num_groups,
    )


def initial_unet(spec: UNetSpec, img_size: int, channels: int, seed: int) -> UNet2DModel:
    """The exact initial weights of the run with this seed (training starts from them; evaluation rebuilds them
    as step 0, the control where no gap may exist yet)."""
    torch.manual_seed(seed)
    return build_unet(spec, img_size, channels)


def build_scheduler(spec: TrainSpec) -> DDPMScheduler:
    """Linear-beta DDPM schedule predicting the noise (diffusers defaults)."""
    return DDPMScheduler(num_train_timesteps=spec.num_train_timesteps)


def ddim_from(scheduler: DDPMScheduler) -> DDIMScheduler:
    """A deterministic DDIM sampler sharing the training schedule."""
    return DDIMScheduler.from_config(scheduler.config)


class EMA:
    """Exponential moving average of parameters (buffers copied): the weights that sample and get scored.

    Memorisation shows far more clearly in EMA weights than in the raw ones, so the study evaluates the EMA model
    at every checkpoint, as DDPM practice does.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"ema decay must lie in [0, 1), got {decay}")
        self.decay = decay
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for key, value in model.state_dict().items():
            if value.dtype.is_floating_point:
                self.shadow[key].lerp_(value, 1.0 - self.decay)
            else:
                self.shadow[key].copy_(value)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.clone() for k, v in self.shadow.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        missing = set(self.shadow) - set(state)
        if missing:
            raise KeyError(f"EMA state lacks {sorted(missing)[:5]}; the checkpoint belongs to another architecture")
        for key in self.shadow:
            self.shadow[key].copy_(state[key])
