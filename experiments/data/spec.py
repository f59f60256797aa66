"""Which images the classifier studies use (``config["data"]``), and the one place their images are loaded.

Training images come from the official train split; calibration and held-out images from the official test split
(:func:`experiments.data.make_splits`). Every classifier study loads its images through :func:`load_split` or
:func:`split_dataset`, so a dataset this version cannot load fails there, loudly, instead of quietly falling back
to Fashion-MNIST.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from torch.utils.data import TensorDataset

from experiments.config import UnsupportedConfigError, from_mapping
from experiments.data.fashion_mnist import MEAN, STD, Split, fashion_mnist_dataset, load_fashion_mnist
from experiments.data.splits import DataSplits, make_splits

Dataset = Literal["fashion_mnist", "cifar10"]
IMPLEMENTED_DATASETS: tuple[str, ...] = ("fashion_mnist",)


@dataclass(frozen=True)
class DataSpec:
    """The images of the classifier studies.

    Attributes:
        dataset: ``fashion_mnist``; ``cifar10`` is accepted by the loader (the ``paper`` set names it) but cannot be
            loaded by this version: loading images raises :class:`~experiments.config.UnsupportedConfigError`.
        img_size: side length the models see (Fashion-MNIST is zero-padded to 32, then resized).
        n_train: size of a random subset of the train split (None: all of it).
        n_calib: test-split images that calibrate reference statistics.
        n_heldout: test-split images, disjoint from the calibration ones, for every evaluation.
        split_seed: seeds the splits.
    """

    dataset: Dataset = "fashion_mnist"
    img_size: int = 32
    n_train: int | None = None
    n_calib: int = 2000
    n_heldout: int = 8000
    split_seed: int = 0

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | None, path: str = "data") -> DataSpec:
        return from_mapping(cls, cfg, path)

    def splits(self) -> DataSplits:
        """The seeded train / calibration / held-out index split."""
        return make_splits(self.split_seed, self.n_calib, self.n_heldout, n_train=self.n_train)


def require_implemented(data: DataSpec) -> None:
    """Raise unless this version can load ``data.dataset``.

    Raises:
        UnsupportedConfigError: for ``cifar10`` (named by the ``paper`` config set).
    """
    if data.dataset not in IMPLEMENTED_DATASETS:
        raise UnsupportedConfigError(
            f"data.dataset={data.dataset!r} is not implemented in this version (issue 14 adds CIFAR-10 and "
            "pretrained timm weights); use the default or test config set (data.dataset: fashion_mnist)"
        )


def load_split(data: DataSpec, split: Split) -> tuple[np.ndarray, np.ndarray]:
    """Raw uint8 images and int64 labels of one official split of the configured dataset."""
    require_implemented(data)
    return load_fashion_mnist(split)


def split_dataset(data: DataSpec, split: Split, indices: np.ndarray, channels: int) -> TensorDataset:
    """Normalised model inputs ``[n, channels, img_size, img_size]`` and labels of ``indices`` of ``split``."""
    require_implemented(data)
    return fashion_mnist_dataset(split, indices=indices, size=data.img_size, channels=channels)


def normalisation(data: DataSpec) -> tuple[float, float]:
    """Scalar ``(mean, std)`` of the configured dataset's training pixels (the models' input normalisation)."""
    require_implemented(data)
    return MEAN, STD
