"""Deterministic, disjoint index splits for training, calibration and held-out evaluation.

Drift scores are only honest if the clean reference (calibration) data is never reused to measure the
false-alarm rate, and neither was seen in training. Training indices come from the official train split;
calibration and held-out indices come from the official test split and never overlap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from experiments.data.fashion_mnist import SPLIT_SIZES


@dataclass(frozen=True)
class DataSplits:
    """Index arrays (int64, sorted) for one seed.

    Attributes:
        train: Indices into the official train split.
        calib: Indices into the official test split, for calibrating reference statistics.
        heldout: Indices into the official test split, disjoint from ``calib``, for evaluation.
        seed: The seed that produced them (recorded for provenance).
    """

    train: np.ndarray
    calib: np.ndarray
    heldout: np.ndarray
    seed: int

    def __post_init__(self) -> None:
        for arr in (self.train, self.calib, self.heldout):
            arr.flags.writeable = False  # shared between studies: nobody should shuffle them in place


def make_splits(
    seed: int,
    n_calib: int,
    n_heldout: int,
    *,
    n_train: int | None = None,
    train_size: int = SPLIT_SIZES["train"],
    test_size: int = SPLIT_SIZES["test"],
) -> DataSplits:
    """Draw calibration and held-out sets from the test split (and optionally a train subset) with ``seed``.

    The same arguments always give the same indices (numpy ``PCG64`` seeded with ``seed``), on any machine.

    Args:
        seed: Non-negative integer seed.
        n_calib: Number of calibration images.
        n_heldout: Number of held-out evaluation images; ``n_calib + n_heldout <= test_size``.
        n_train: Size of a random training subset; ``None`` keeps all of ``train_size``.
        train_size, test_size: Sizes of the official splits (defaults: Fashion-MNIST's 60,000 / 10,000).

    Returns:
        A :class:`DataSplits` with sorted int64 index arrays.
    """
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    if n_calib < 0 or n_heldout < 0 or n_calib + n_heldout > test_size:
        raise ValueError(
            f"n_calib + n_heldout = {n_calib} + {n_heldout} must be within 0..{test_size} (the test split); "
            "lower one of them"
        )
    if n_train is not None and not 0 <= n_train <= train_size:
        raise ValueError(f"n_train must be within 0..{train_size} or None (all), got {n_train}")
    rng = np.random.default_rng(seed)
    perm = rng.permutation(test_size)
    calib = np.sort(perm[:n_calib])
    heldout = np.sort(perm[n_calib : n_calib + n_heldout])
    train = np.arange(train_size) if n_train is None else np.sort(rng.permutation(train_size)[:n_train])
    return DataSplits(
        train=train.astype(np.int64),
        calib=calib.astype(np.int64),
        heldout=heldout.astype(np.int64),
        seed=seed,
    )
