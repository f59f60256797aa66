"""Which images the classifier studies use (``config["data"]``), and the one place their images are loaded.

Training images come from the official train split; calibration and held-out images from the official test split
(:func:`experiments.data.make_splits`, sized by the dataset's official splits). Every classifier study loads its
images through :func:`load_split` or :func:`split_dataset` and normalises them with :func:`normalisation`, so the
configured dataset is the one every study sees.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from torch.utils.data import TensorDataset

from experiments.config import UnsupportedConfigError, from_mapping
from experiments.data import cifar10, fashion_mnist
from experiments.data.fashion_mnist import Split
from experiments.data.splits import DataSplits, make_splits
from experiments.data.tensors import make_tensor_dataset

Dataset = Literal["fashion_mnist", "cifar10"]


@dataclass(frozen=True)
class DataSpec:
    """The images of the classifier studies.

    Attributes:
        dataset: ``fashion_mnist`` (28x28 grey, zero-padded to 32) or ``cifar10`` (32x32 colour; see
            :func:`experiments.data.load_cifar10` for where it comes from and how it is checked).
        img_size: side length the models see (Fashion-MNIST is zero-padded to it; CIFAR-10 needs 32).
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

    def __post_init__(self) -> None:
        if self.dataset == "cifar10" and self.img_size != 32:
            raise UnsupportedConfigError(
                f"data.img_size={self.img_size} with dataset cifar10 is not implemented in this version (the studies "
                "zero-pad smaller images to img_size instead of resizing them); use img_size: 32"
            )

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | None, path: str = "data") -> DataSpec:
        return from_mapping(cls, cfg, path)

    def split_sizes(self) -> dict[str, int]:
        """Sizes of the official train and test splits of the dataset."""
        if self.dataset == "cifar10":
            return cifar10.split_sizes()
        return dict(fashion_mnist.SPLIT_SIZES)

    def splits(self) -> DataSplits:
        """The seeded train / calibration / held-out index split."""
        sizes = self.split_sizes()
        return make_splits(
            self.split_seed,
            self.n_calib,
            self.n_heldout,
            n_train=self.n_train,
            train_size=sizes["train"],
            test_size=sizes["test"],
        )


def load_split(data: DataSpec, split: Split) -> tuple[np.ndarray, np.ndarray]:
    """Raw uint8 images (``[N, 28, 28]`` grey or ``[N, 32, 32, 3]`` RGB) and int64 labels of one official split."""
    if data.dataset == "cifar10":
        return cifar10.load_cifar10(split)
    return fashion_mnist.load_fashion_mnist(split)


def split_dataset(data: DataSpec, split: Split, indices: np.ndarray, channels: int) -> TensorDataset:
    """Normalised model inputs ``[n, channels, img_size, img_size]`` and labels of ``indices`` of ``split``."""
    images, labels = load_split(data, split)
    indices = np.asarray(indices, dtype=np.int64)
    mean, std = normalisation(data)
    return make_tensor_dataset(
        images[indices], labels[indices], size=data.img_size, channels=channels, mean=mean, std=std
    )


def normalisation(data: DataSpec) -> tuple[float, float]:
    """Scalar ``(mean, std)`` of the configured dataset's training pixels (the models' input normalisation)."""
    if data.dataset == "cifar10":
        return cifar10.MEAN, cifar10.STD
    return fashion_mnist.MEAN, fashion_mnist.STD
