"""The train/validation denoising-loss gap and a paired bootstrap test of it.

Each image gets ``draws`` (timestep, noise) pairs; the k-th training image and the k-th held-out image share them,
so the gap is not confounded by which timesteps happened to be drawn. The bootstrap resamples images (independently
in the two sets) and draws (jointly, keeping the pairing), and the gap counts as significant when fewer than
``alpha`` of the resampled gaps are <= 0 (one-sided: held-out loss above training loss).
"""

from __future__ import annotations

import numpy as np
import torch
from diffusers import DDPMScheduler, UNet2DModel


@torch.no_grad()
def per_image_losses(
    model: UNet2DModel, scheduler: DDPMScheduler, x: torch.Tensor, draws: int, seed: int
) -> np.ndarray:
    """Noise-prediction MSE ``[n_images, draws]``; draw d uses timesteps and noise seeded by (seed, d)."""
    n_steps = scheduler.config.num_train_timesteps
    out = np.empty((len(x), draws))
    for d in range(draws):
        gen = torch.Generator().manual_seed(seed * 7_919 + d)
        t = torch.randint(0, n_steps, (len(x),), generator=gen)
        noise = torch.randn(x.shape, generator=gen)
        pred = model(scheduler.add_noise(x, noise, t), t).sample
        out[:, d] = (pred - noise).square().flatten(1).mean(1).numpy()
    return out


def loss_gap_test(train: np.ndarray, heldout: np.ndarray, n_bootstrap: int, seed: int) -> dict[str, float]:
    """Held-out minus training loss, its 95% bootstrap interval and one-sided bootstrap p-value.

    Args:
        train, heldout: ``[images, draws]`` losses with the same number of draws (columns are paired).
    """
    if train.shape[1] != heldout.shape[1]:
        raise ValueError("train and held-out losses need the same (paired) draws")
    rng = np.random.default_rng(seed)
    gap = float(heldout.mean() - train.mean())
    n_tr, n_ho, n_draws = train.shape[0], heldout.shape[0], train.shape[1]
    boot = np.empty(n_bootstrap)
    for b in range(n_bootstrap):
        cols = rng.integers(0, n_draws, n_draws)
        boot[b] = (
            heldout[rng.integers(0, n_ho, n_ho)][:, cols].mean() - train[rng.integers(0, n_tr, n_tr)][:, cols].mean()
        )
    p_value = (1 + np.count_nonzero(boot <= 0)) / (n_bootstrap + 1)
    lo, hi = np.quantile(boot, [0.025, 0.975])
    return {
        "train_loss": float(train.mean()),
        "heldout_loss": float(heldout.mean()),
        "loss_gap": gap,
        "gap_lo": float(lo),
        "gap_hi": float(hi),
        "gap_p": float(p_value),
    }
