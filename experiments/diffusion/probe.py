"""Measurements taken on the drift's own forward pass: the loss at t, stable rank, and an equal-width mean shift.

Scoring a set for drift runs the U-Net once on it, noised to t with the paired noise. The same pass gives:

* ``loss``: the set's noise-prediction MSE at that t and noise, so the loss gap is measured at the drift's
  timesteps, with its paired noise and against the same held-out null sets (equal footing).
* ``stable_rank``: ``||X||_F^2 / ||X||_2^2`` of the set's centred channel-mean features per block, a
  representation diagnostic from the memorisation literature (memorised inputs tend to collapse onto fewer
  directions, or spread onto more); all sets have the same size, so the ranks are comparable.
* ``mean_shift_k``: ``n / k * sum_d ((mean_d - mu_d) / sigma_d)^2`` over a fixed, seeded subset of ``k`` channels
  per block, ``k`` the narrowest block's channel count, ``mu`` and ``sigma`` from the calibration images: every block
  scored on the same number of features, so a wide block cannot win by width alone (mean 1 on unseen images).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from deepdrift import LayerTaps, PoolingConfig

_SD_FLOOR = 1e-6


def stable_rank(x: np.ndarray) -> float:
    """``||X||_F^2 / ||X||_2^2`` of the column-centred matrix ``x`` [samples, features] (NaN when X is 0)."""
    centred = np.asarray(x, dtype=np.float64) - np.asarray(x, dtype=np.float64).mean(axis=0)
    singular = np.linalg.svd(centred, compute_uv=False)
    top = float(singular[0]) if singular.size else 0.0
    return float(np.square(singular).sum() / top**2) if top > 0 else float("nan")


def mean_shift(x: np.ndarray, mu: np.ndarray, sigma: np.ndarray) -> float:
    """``n / k * sum_d ((mean_d - mu_d) / sigma_d)^2`` for ``x`` [n, k]: mean 1 when x is drawn like the reference."""
    z = (np.asarray(x, dtype=np.float64).mean(axis=0) - mu) / sigma
    return float(len(x) * np.square(z).mean())


def channel_subsets(widths: Mapping[str, int], seed: int) -> dict[str, np.ndarray]:
    """A fixed, seeded subset of ``min(widths)`` channels per block (sorted indices)."""
    k = min(widths.values())
    rng = np.random.default_rng(seed)
    return {name: np.sort(rng.choice(width, size=k, replace=False)) for name, width in widths.items()}


@dataclass(frozen=True)
class FeatureProbe:
    """Channel-mean taps on the monitored blocks, with the calibration images' reference on the equal-width subset.

    Attributes:
        taps: channel-mean taps on the same modules the monitor watches (hooks sit beside the monitor's).
        subsets: per block, the equal-width channel subset.
        mu, sigma: per block, mean and sd of the subset's channel means over the calibration images.
    """

    taps: LayerTaps
    subsets: dict[str, np.ndarray]
    mu: dict[str, np.ndarray]
    sigma: dict[str, np.ndarray]

    @classmethod
    @torch.no_grad()
    def fit(
        cls,
        model: nn.Module,
        layers: Sequence[str],
        calibration: Sequence[Mapping[str, torch.Tensor]],
        forward: Callable[[nn.Module, Mapping[str, torch.Tensor]], torch.Tensor],
        seed: int,
    ) -> FeatureProbe:
        """One forward pass over the calibration batches fixes the subsets and their reference moments."""
        taps = LayerTaps(model, layers=list(layers), pooling=PoolingConfig(summary="mean"))
        chunks: dict[str, list[torch.Tensor]] = {name: [] for name in layers}
        for batch in calibration:
            _, features = taps.run(lambda b=batch: forward(model, b), batch_size=len(batch["sample"]))
            for name, f in features.items():
                chunks[name].append(f.double())
        reference = {name: torch.cat(parts).numpy() for name, parts in chunks.items()}
        subsets = channel_subsets({name: f.shape[1] for name, f in reference.items()}, seed)
        mu = {name: reference[name][:, subsets[name]].mean(axis=0) for name in reference}
        sigma = {
            name: np.maximum(reference[name][:, subsets[name]].std(axis=0, ddof=1), _SD_FLOOR) for name in reference
        }
        return cls(taps=taps, subsets=subsets, mu=mu, sigma=sigma)

    def measure(
        self, features: Mapping[str, torch.Tensor], output: torch.Tensor, noise: torch.Tensor
    ) -> dict[str, dict[str, float]]:
        """Per block: the set's loss (same for every block), stable rank and equal-width mean shift."""
        loss = float((output - noise).square().flatten(1).mean(1).mean())
        out = {}
        for name, f in features.items():
            x = f.double().numpy()
            out[name] = {
                "loss": loss,
                "stable_rank": stable_rank(x),
                "mean_shift_k": mean_shift(x[:, self.subsets[name]], self.mu[name], self.sigma[name]),
            }
        return out
