"""Shared fixtures for the experiments floor: small slices of the real Fashion-MNIST test split."""

from __future__ import annotations

import numpy as np
import pytest

from experiments.data import load_fashion_mnist, pad_images


@pytest.fixture(scope="session")
def fmnist_test() -> tuple[np.ndarray, np.ndarray]:
    """The official 10k test split (read-only uint8 images, int64 labels)."""
    return load_fashion_mnist("test")


@pytest.fixture(scope="session")
def images32(fmnist_test: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Three real test images zero-padded to 32x32 (the smallest size the corruptions accept)."""
    return pad_images(fmnist_test[0][:3], 32)
