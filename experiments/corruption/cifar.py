"""CIFAR-10-C for the corruption study's ``source: cifar10c`` (the paper config set).

The loaders live in the shared data floor (:mod:`experiments.data.cifar10`, :mod:`experiments.data.cifar10c`); this
adapter says where the study looks for the release: the folder the workflow gives it, then the data cache folder
(``$DEEPDRIFT_DATA`` or ``~/.cache/deepdrift``), where it downloads the release if neither has it. Without the
release (no network), the images are generated with the project's corruptions, with a warning.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from experiments.data.cifar10 import MEAN as CIFAR_MEAN
from experiments.data.cifar10 import STD as CIFAR_STD
from experiments.data.cifar10c import cifar10c_images as _cifar10c_images
from experiments.data.fashion_mnist import default_root

__all__ = ["CIFAR_MEAN", "CIFAR_STD", "cifar10c_images"]


def cifar10c_images(root: str | Path, name: str, severity: int, indices: np.ndarray, seed: int = 0) -> np.ndarray:
    """Rows of CIFAR-10-C ``name`` at ``severity`` for CIFAR-10 test ``indices`` (uint8 ``[n, 32, 32, 3]``).

    Reads ``root/CIFAR-10-C`` or the data cache's copy, downloads the release into the data cache if neither
    exists, and generates the images (``seed``) if that fails.
    """
    cache = default_root()
    return _cifar10c_images(name, severity, indices, roots=(root, cache), download_root=cache, seed=seed)
