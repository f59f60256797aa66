"""Memorisation ground truth: does a generated sample copy one training image (Carlini et al. 2023; Gu et al. 2023)?

A sample is memorised when its L2 distance to the nearest training image is below ``ratio`` (1/3) times its
distance to the second nearest. Distances are normalised by sqrt(H*W*C) (a per-pixel RMS), which leaves the ratio
unchanged but makes the reported distances comparable across image sizes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch


@dataclass(frozen=True)
class Neighbours:
    """Per sample: indices of (and normalised distances to) the nearest and second-nearest training image."""

    first: np.ndarray
    second: np.ndarray
    d_first: np.ndarray
    d_second: np.ndarray

    @property
    def ratio(self) -> np.ndarray:
        return self.d_first / np.maximum(self.d_second, 1e-12)

    def memorised(self, ratio: float = 1.0 / 3.0) -> np.ndarray:
        return self.ratio < ratio


def nearest_neighbours(samples: torch.Tensor, train: torch.Tensor) -> Neighbours:
    """Two nearest training images of each sample by normalised L2 distance (needs at least 2 training images)."""
    if len(train) < 2:
        raise ValueError("the memorisation criterion needs at least two training images")
    if samples.shape[1:] != train.shape[1:]:
        raise ValueError(f"samples {tuple(samples.shape[1:])} and training images {tuple(train.shape[1:])} differ")
    scale = float(np.sqrt(np.prod(train.shape[1:])))
    d = torch.cdist(samples.flatten(1).double(), train.flatten(1).double()) / scale
    vals, idx = d.topk(2, dim=1, largest=False)
    return Neighbours(
        first=idx[:, 0].numpy(), second=idx[:, 1].numpy(), d_first=vals[:, 0].numpy(), d_second=vals[:, 1].numpy()
    )


def memorisation_row(samples: torch.Tensor, train: torch.Tensor, ratio: float = 1.0 / 3.0) -> dict[str, float]:
    """Memorised fraction, median distance ratio and median nearest distance for one set of samples."""
    nb = nearest_neighbours(samples, train)
    return {
        "memorised_fraction": float(nb.memorised(ratio).mean()),
        "median_ratio": float(np.median(nb.ratio)),
        "median_nn_distance": float(np.median(nb.d_first)),
        "n_samples": len(samples),
    }


def memorisation_table(rows: list[dict]) -> pd.DataFrame:
    """Stack per-checkpoint rows (each with ``n_train``, ``seed``, ``step``) into a tidy frame."""
    return pd.DataFrame(rows).sort_values(["n_train", "seed", "step"]).reset_index(drop=True)
