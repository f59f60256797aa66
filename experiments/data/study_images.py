"""The evaluation images of the classifier studies: the calibration split, and held-out images, clean and corrupted.

The held-out images come in a seeded random order, so the first ``n`` of them are a random sample for any ``n``
and consecutive batches are independent draws; they are kept as uint8 as well, since corruptions act on pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from experiments.data.corruptions import cached_corruption, corrupt_images
from experiments.data.spec import DataSpec, load_split, normalisation, split_dataset
from experiments.data.tensors import pad_images, to_model_input


@dataclass(frozen=True)
class StudyImages:
    """Calibration inputs, and shuffled held-out images as uint8 pixels, model inputs and labels.

    Attributes:
        calib: calibration split as model inputs.
        heldout_uint8: held-out images, ``[n, H, W]`` or ``[n, H, W, C]`` uint8.
        heldout: the same images as model inputs.
        labels: their int64 labels.
        size, channels: the models' input side length and channel count.
        mean, std: the models' input normalisation.
    """

    calib: torch.Tensor
    heldout_uint8: np.ndarray
    heldout: torch.Tensor
    labels: torch.Tensor
    size: int
    channels: int
    mean: float
    std: float

    def corrupted(self, name: str, severity: int, n: int, seed: int, cache_dir: str | Path | None) -> torch.Tensor:
        """The first ``n`` held-out images with an ImageNet-C corruption, as model inputs (cached when
        ``cache_dir`` is given)."""
        images = pad_images(self.heldout_uint8[:n], max(32, self.size))
        if cache_dir is None:
            out = corrupt_images(images, name, severity, seed)
        else:
            out = cached_corruption(images, name, severity, seed, cache_dir)
        return self.to_input(out)

    def to_input(self, images: np.ndarray) -> torch.Tensor:
        """uint8 images as normalised model inputs."""
        return to_model_input(images, size=self.size, channels=self.channels, mean=self.mean, std=self.std)


def study_images(data: DataSpec, channels: int, n_heldout: int | None, seed: int) -> StudyImages:
    """Calibration split as inputs; ``n_heldout`` held-out images in a seeded random order (None: all)."""
    splits = data.splits()
    mean, std = normalisation(data)
    calib = split_dataset(data, "test", splits.calib, channels).tensors[0]
    order = np.random.default_rng(seed).permutation(splits.heldout)[:n_heldout]
    images, labels = load_split(data, "test")
    heldout_uint8 = np.ascontiguousarray(images[order])
    return StudyImages(
        calib=calib,
        heldout_uint8=heldout_uint8,
        heldout=to_model_input(heldout_uint8, size=data.img_size, channels=channels, mean=mean, std=std),
        labels=torch.as_tensor(labels[order], dtype=torch.int64),
        size=data.img_size,
        channels=channels,
        mean=mean,
        std=std,
    )
