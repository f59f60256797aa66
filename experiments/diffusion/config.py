"""Frozen configuration of the diffusion study, built from the workflow's YAML (``config['diffusion']``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from experiments.config import from_mapping


@dataclass(frozen=True)
class UNetSpec:
    """A small diffusers ``UNet2DModel``: one resnet layer per block, no attention (fast on a CPU)."""

    block_out_channels: tuple[int, ...] = (32, 64, 64)
    layers_per_block: int = 1
    attention: bool = False
    norm_num_groups: int = 8


@dataclass(frozen=True)
class TrainSpec:
    """DDPM training recipe; the same for every N so checkpoints line up on one step axis."""

    steps: int = 4000
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 0.0
    ema_decay: float = 0.998
    checkpoint_every: int = 500
    num_train_timesteps: int = 1000
    grad_clip: float = 1.0

    def __post_init__(self) -> None:
        if self.checkpoint_every < 1 or self.steps < 1:
            raise ValueError("steps and checkpoint_every must be positive")

    @property
    def checkpoint_steps(self) -> tuple[int, ...]:
        """Steps at which EMA weights are kept: every ``checkpoint_every`` steps, plus the last step."""
        steps = list(range(self.checkpoint_every, self.steps + 1, self.checkpoint_every))
        return tuple(steps if steps and steps[-1] == self.steps else [*steps, self.steps])


@dataclass(frozen=True)
class DiffusionData:
    """Which images, at which size, and how the held-out pool is reserved.

    Attributes:
        dataset: ``fashion_mnist`` (offline here) or ``cifar10`` (torchvision download; paper config).
        img_size: side length; Fashion-MNIST is zero-padded to 32 then area-downsampled (16 keeps it CPU-cheap).
        n_reserved: images of the train split set aside (class-balanced) as the held-out pool; training subsets
            are drawn from the rest, so held-out images follow exactly the training distribution.
        split_seed: seeds the reservation.
    """

    dataset: Literal["fashion_mnist", "cifar10"] = "fashion_mnist"
    img_size: int = 16
    n_reserved: int = 6000
    split_seed: int = 0

    @property
    def channels(self) -> int:
        return 3 if self.dataset == "cifar10" else 1


@dataclass(frozen=True)
class EvalSpec:
    """What is measured at every checkpoint.

    Attributes:
        n_samples, ddim_steps, sample_seed: DDIM samples for the memorisation ground truth.
        memorisation_ratio: a sample is memorised when d(nearest) < ratio * d(second nearest) (1/3: Carlini/Gu).
        onset_fraction: memorised fraction at which memorisation counts as "risen".
        timesteps: noise levels t at which drift is measured.
        n_calib: held-out images (noised to t) that calibrate the monitor at each checkpoint and t.
        score_batch_max: scored set size is min(N, this); train and null sets always have the same size.
        n_null_sets: disjoint held-out sets of that size: the held-out-vs-held-out null.
        noise_draws: fixed noise draws per scored set (drift averaged over them).
        loss_draws: (t, noise) draws per image for the denoising-loss gap.
        n_bootstrap, alpha: paired bootstrap of the loss gap; significance level (Bonferroni across blocks for drift).
        consecutive: an onset needs this many consecutive significant checkpoints.
        noise_seed: seeds every fixed noise draw.
        include_init: also evaluate the initial weights as step 0 (a control: no gap may exist before training).
    """

    n_samples: int = 64
    ddim_steps: int = 25
    sample_seed: int = 1234
    memorisation_ratio: float = 1.0 / 3.0
    onset_fraction: float = 0.1
    timesteps: tuple[int, ...] = (50, 200, 500)
    n_calib: int = 512
    score_batch_max: int = 128
    n_null_sets: int = 8
    noise_draws: int = 1
    loss_draws: int = 4
    n_bootstrap: int = 1000
    alpha: float = 0.01
    consecutive: int = 2
    noise_seed: int = 777
    include_init: bool = True


@dataclass(frozen=True)
class DiffusionStudyConfig:
    """The ``diffusion`` section: one DDPM per training-set size N and seed, trained and measured alike.

    Attributes:
        sizes: training-set sizes N (class-balanced subsets).
        seeds: seeds per N.
        threads: threads per training / evaluation job.
        data, unet, train, eval: the images, the U-Net, the training recipe and the measurements.
    """

    sizes: tuple[int, ...]
    seeds: tuple[int, ...]
    threads: int
    data: DiffusionData = field(default_factory=DiffusionData)
    unet: UNetSpec = field(default_factory=UNetSpec)
    train: TrainSpec = field(default_factory=TrainSpec)
    eval: EvalSpec = field(default_factory=EvalSpec)

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], path: str = "diffusion") -> DiffusionStudyConfig:
        return from_mapping(cls, cfg, path)
