"""The images of the localisation and streaming studies: calibration and held-out splits, clean and corrupted."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from experiments.data import (
    MEAN,
    STD,
    DataSpec,
    cached_corruption,
    load_split,
    pad_images,
    split_dataset,
    to_model_input,
)


@dataclass(frozen=True)
class StudyImages:
    """Calibration inputs, and a shuffled held-out subset as uint8 images (for corruptions), inputs and labels."""

    calib: torch.Tensor
    heldout_uint8: np.ndarray
    heldout: torch.Tensor
    labels: torch.Tensor
    size: int
    channels: int

    def corrupted(self, name: str, severity: int, n: int, seed: int, cache_dir: str | Path | None) -> torch.Tensor:
        """The first ``n`` held-out images with an ImageNet-C corruption, as model inputs (cached on disk)."""
        images = pad_images(self.heldout_uint8[:n], max(32, self.size))
        if cache_dir is None:
            from experiments.data import corrupt_images

            out = corrupt_images(images, name, severity, seed)
        else:
            out = cached_corruption(images, name, severity, seed, cache_dir)
        return self.to_input(out)

    def to_input(self, images: np.ndarray) -> torch.Tensor:
        return to_model_input(images, size=self.size, channels=self.channels, mean=MEAN, std=STD)


def study_images(data: DataSpec, channels: int, n_heldout: int | None, seed: int) -> StudyImages:
    """Calibration split as inputs; ``n_heldout`` held-out images in a seeded random order (None: all)."""
    splits = data.splits()
    calib = split_dataset(data, "test", splits.calib, channels).tensors[0]
    order = np.random.default_rng(seed).permutation(splits.heldout)[:n_heldout]
    images, labels = load_split(data, "test")
    heldout_uint8 = np.ascontiguousarray(images[order])
    heldout = to_model_input(heldout_uint8, size=data.img_size, channels=channels, mean=MEAN, std=STD)
    return StudyImages(
        calib=calib,
        heldout_uint8=heldout_uint8,
        heldout=heldout,
        labels=torch.as_tensor(labels[order], dtype=torch.int64),
        size=data.img_size,
        channels=channels,
    )
