"""Shared data floor: the data spec, Fashion-MNIST / CIFAR-10 / CIFAR-10-C loading, tensors, splits, corruptions."""

from experiments.data.checksums import Checksum, ChecksumError
from experiments.data.cifar10 import Cifar10Release, load_cifar10
from experiments.data.cifar10c import cifar10c_images
from experiments.data.corruptions import (
    cached_corruption,
    corrupt_images,
    corruption_family,
    corruption_names,
)
from experiments.data.fashion_mnist import (
    CLASSES,
    MEAN,
    STD,
    DatasetUnavailableError,
    fashion_mnist_dataset,
    load_fashion_mnist,
)
from experiments.data.spec import DataSpec, load_split, normalisation, split_dataset
from experiments.data.splits import DataSplits, make_splits
from experiments.data.tensors import make_tensor_dataset, pad_images, to_model_input

__all__ = [
    "CLASSES",
    "MEAN",
    "STD",
    "Checksum",
    "ChecksumError",
    "Cifar10Release",
    "DataSpec",
    "DataSplits",
    "DatasetUnavailableError",
    "cached_corruption",
    "cifar10c_images",
    "corrupt_images",
    "corruption_family",
    "corruption_names",
    "fashion_mnist_dataset",
    "load_cifar10",
    "load_fashion_mnist",
    "load_split",
    "make_splits",
    "make_tensor_dataset",
    "normalisation",
    "pad_images",
    "split_dataset",
    "to_model_input",
]
