"""Splits are deterministic and disjoint; tensor conversion pads, resizes and normalises."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from experiments.data import make_splits, pad_images, to_model_input


def test_splits_are_disjoint_and_deterministic() -> None:
    a = make_splits(seed=3, n_calib=2000, n_heldout=5000, n_train=1000)
    b = make_splits(seed=3, n_calib=2000, n_heldout=5000, n_train=1000)
    for name in ("train", "calib", "heldout"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert (len(a.train), len(a.calib), len(a.heldout)) == (1000, 2000, 5000)
    assert len(np.intersect1d(a.calib, a.heldout)) == 0
    assert len(np.unique(a.calib)) == 2000 and a.heldout.max() < 10_000 and a.train.max() < 60_000
    c = make_splits(seed=4, n_calib=2000, n_heldout=5000)
    assert not np.array_equal(a.calib, c.calib)
    assert len(c.train) == 60_000
    with pytest.raises(ValueError):
        a.calib[0] = 1  # read-only: shared between studies


def test_splits_reject_oversized_requests() -> None:
    with pytest.raises(ValueError, match="lower one of them"):
        make_splits(seed=0, n_calib=6000, n_heldout=5000)


def test_pad_and_convert_shapes() -> None:
    grey = np.full((2, 28, 28), 255, dtype=np.uint8)
    padded = pad_images(grey, 32)
    assert padded.shape == (2, 32, 32) and padded[:, :2].max() == 0 and padded[:, 2:30, 2:30].min() == 255
    x = to_model_input(grey, size=32, channels=3, mean=0.5, std=0.5)
    assert x.shape == (2, 3, 32, 32) and x.max().item() == pytest.approx(1.0) and x.min().item() == -1.0
    rgb = np.zeros((2, 64, 64, 3), dtype=np.uint8)
    assert to_model_input(rgb, size=32, channels=1).shape == (2, 1, 32, 32)
    with pytest.raises(ValueError, match="uint8"):
        to_model_input(grey.astype(np.float32))
    assert isinstance(x, torch.Tensor)
