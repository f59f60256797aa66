"""Layer-wise drift of training images against held-out ones, per U-Net block, with a held-out-vs-held-out null.

At a checkpoint and noise level t, a ``DeepDriftMonitor`` (automatic diffusers taps: down_blocks.i, mid_block,
up_blocks.i) is calibrated on held-out images noised to t with fixed noise. The scored sets are the training images
and several disjoint held-out sets of the same size, all noised with the *same* fixed noise tensors (paired noise),
so the only difference between them is whether the model saw the images. Drift is the library's calibrated statistic
(sigma units against each block's own clean-data null), which already standardises for a block's width and the
correlation of its features; the held-out sets add the second null this study needs: how far a set of unseen images
of this size drifts by chance.

The same forward pass that scores a set also yields, on equal footing with the drift (same t, same paired noise,
same sets), three other measurements per set and block (:mod:`experiments.diffusion.probe`): the set's denoising
loss (the loss gap at the drift's own t), the stable rank of its channel-mean features (a representation diagnostic
from the memorisation literature) and a mean-shift statistic on an equal-width channel subset (a width control).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import pandas as pd
import torch
from diffusers import DDPMScheduler, UNet2DModel

from deepdrift import CalibrationConfig, DeepDriftMonitor, LayerTaps
from experiments.diffusion.probe import FeatureProbe

logger = logging.getLogger(__name__)


def unet_forward(model: UNet2DModel, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """How the monitor calls the U-Net on ``{'sample': x_t, 'timestep': t}`` batches."""
    return model(batch["sample"], batch["timestep"]).sample


def fixed_noise(shape: tuple[int, ...], seed: int, t: int, draw: int) -> torch.Tensor:
    """Noise that depends only on (seed, t, draw): shared by every set scored at that t and draw."""
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed * 1_000_003 + t * 1_009 + draw))


def noised_batches(
    x: torch.Tensor, scheduler: DDPMScheduler, t: int, noise: torch.Tensor, chunk: int = 256
) -> list[dict[str, torch.Tensor]]:
    """``x`` noised to timestep t, as monitor-ready dict batches of at most ``chunk`` images."""
    timesteps = torch.full((len(x),), t, dtype=torch.long)
    x_t = scheduler.add_noise(x, noise, timesteps)
    return [{"sample": s, "timestep": ts} for s, ts in zip(x_t.split(chunk), timesteps.split(chunk), strict=True)]


def calibrated_unet_monitor(
    model: UNet2DModel,
    scheduler: DDPMScheduler,
    calib: torch.Tensor,
    t: int,
    noise_seed: int,
    n_null_draws: int = 2000,
    layers: Sequence[str] | None = None,
) -> DeepDriftMonitor:
    """Monitor on the U-Net's blocks, calibrated on held-out images noised to ``t`` (fixed calibration noise).

    ``layers`` overrides the automatic block taps (e.g. individual resnets, for a finer anatomy).
    """
    monitor = DeepDriftMonitor(
        model,
        arch_name="UNet2DModel",
        forward_fn=unet_forward,
        layers=layers,
        calibration_config=CalibrationConfig(seed=noise_seed),
        n_null_draws=n_null_draws,
    )
    noise = fixed_noise(tuple(calib.shape), noise_seed + 1, t, 0)
    monitor.calibrate(noised_batches(calib, scheduler, t, noise), progress=False)
    return monitor


@torch.no_grad()
def score_sets(
    monitor: DeepDriftMonitor,
    scheduler: DDPMScheduler,
    sets: Mapping[str, torch.Tensor],
    t: int,
    noise_seed: int,
    draws: int,
    probe: FeatureProbe | None = None,
) -> pd.DataFrame:
    """Drift per block for each named set (one batch = the whole set) and noise draw, in long format.

    With a ``probe`` the same forward pass also gives each set's denoising loss (``loss``, equal for every block
    of a set), the stable rank of its channel-mean features (``stable_rank``) and the equal-width mean shift
    (``mean_shift_k``).
    """
    sizes = {len(x) for x in sets.values()}
    if len(sizes) != 1:
        raise ValueError(f"scored sets must have one size (the null needs it), got {sorted(sizes)}")
    rows = []
    for draw in range(draws):
        noise = fixed_noise(tuple(next(iter(sets.values())).shape), noise_seed, t, draw)
        for name, x in sets.items():
            batch = noised_batches(x, scheduler, t, noise, chunk=len(x))[0]
            if probe is None:
                scores, extra = monitor.score(batch), {}
            else:
                with probe.taps.capture(batch_size=len(x)) as captured:
                    scores = monitor.score(batch)
                extra = probe.measure(captured.features, monitor.last_output, noise)
            for tap, score in zip(monitor.taps, scores.values(), strict=True):
                probed = extra.get(tap.name, {})
                rows.append((name, tap.name, tap.index, draw, score.drift, score.statistic, *_probe_values(probed)))
    return pd.DataFrame(rows, columns=["set", "block", "block_index", "draw", "drift", "statistic", *PROBE_COLUMNS])


PROBE_COLUMNS = ("loss", "stable_rank", "mean_shift_k")
PROBE_REFERENCE = 128
"""Calibration images (the first, with their calibration noise) behind the equal-width statistic's mean and sd: 128
estimate 32 channel means well, and a quarter of the 512 keeps the probe's extra forward pass inside the budget."""


def _probe_values(probed: Mapping[str, float]) -> tuple[float, ...]:
    return tuple(float(probed.get(c, float("nan"))) for c in PROBE_COLUMNS)


def drift_vs_null(
    model: UNet2DModel,
    scheduler: DDPMScheduler,
    calib: torch.Tensor,
    scored: torch.Tensor,
    null_sets: Sequence[torch.Tensor],
    t: int,
    noise_seed: int,
    draws: int,
    layers: Sequence[str] | None = None,
    probe: bool = True,
) -> pd.DataFrame:
    """Calibrate at ``t`` and score the training set (``'train'``) and each null set (``'null<j>'``) per block.

    ``probe`` adds the loss, stable-rank and equal-width columns (one extra forward pass over the first
    ``PROBE_REFERENCE`` calibration images).
    """
    monitor = calibrated_unet_monitor(model, scheduler, calib, t, noise_seed, layers=layers)
    sets = {"train": scored} | {f"null{j}": x for j, x in enumerate(null_sets)}
    feature_probe = None
    if probe:
        calib_noise = fixed_noise(tuple(calib.shape), noise_seed + 1, t, 0)[:PROBE_REFERENCE]
        reference = noised_batches(calib[:PROBE_REFERENCE], scheduler, t, calib_noise)
        feature_probe = FeatureProbe.fit(model, monitor.layer_names, reference, unet_forward, noise_seed)
    return score_sets(monitor, scheduler, sets, t, noise_seed, draws, feature_probe).assign(t=t)


@torch.no_grad()
def block_geometry(model: UNet2DModel, example: torch.Tensor) -> pd.DataFrame:
    """Channels, spatial size and pooled feature count (as the monitor scores it) of each tapped block's output:
    what "the bottleneck" is compared against. The taps record both on one forward pass of two examples."""
    taps = LayerTaps(model)
    batch = {"sample": example[:2], "timestep": torch.zeros(2, dtype=torch.long)}
    taps.run(lambda: unet_forward(model, batch), batch_size=2)
    rows = [(t.name, t.index, *t.raw_shape, t.n_features) for t in taps.taps]
    frame = pd.DataFrame(rows, columns=["block", "block_index", "channels", "height", "width", "pooled_features"])
    return frame.sort_values("block_index").reset_index(drop=True)
