"""The memorisation criterion (NN ratio < 1/3) on constructed cases, and the loss-gap bootstrap test."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from experiments.diffusion.loss_gap import loss_gap_test
from experiments.diffusion.memorisation import memorisation_row, nearest_neighbours


@pytest.fixture
def train() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.rand(5, 1, 8, 8, generator=g) * 2 - 1


def test_exact_copy_is_memorised(train: torch.Tensor) -> None:
    nb = nearest_neighbours(train[2:3].clone(), train)
    assert nb.first[0] == 2
    assert nb.d_first[0] == pytest.approx(0.0)
    assert nb.memorised()[0]


def test_midway_between_two_training_images_is_not_memorised(train: torch.Tensor) -> None:
    sample = 0.5 * (train[0] + train[1])
    nb = nearest_neighbours(sample[None], train)
    assert {int(nb.first[0]), int(nb.second[0])} == {0, 1}
    assert nb.ratio[0] == pytest.approx(1.0, abs=1e-9)
    assert not nb.memorised()[0]


def test_ratio_threshold_is_strict_one_third(train: torch.Tensor) -> None:
    # on the segment from image 0 to image 1: d0 = a*D and d1 = (1-a)*D, so ratio = a/(1-a)
    direction = train[1] - train[0]
    just_in = train[0] + 0.24 * direction  # ratio 0.316 -> memorised
    just_out = train[0] + 0.26 * direction  # ratio 0.351 -> not memorised
    nb = nearest_neighbours(torch.stack([just_in, just_out]), train[:2])
    assert nb.memorised().tolist() == [True, False]


def test_distances_are_normalised_by_sqrt_pixels() -> None:
    train = torch.stack([torch.zeros(1, 4, 4), torch.full((1, 4, 4), 3.0)])
    nb = nearest_neighbours(torch.ones(1, 1, 4, 4), train)
    assert nb.d_first[0] == pytest.approx(1.0)  # every pixel differs by 1: RMS distance 1
    assert nb.d_second[0] == pytest.approx(2.0)


def test_memorised_fraction_counts_copies(train: torch.Tensor) -> None:
    far = torch.full((2, 1, 8, 8), 5.0)
    row = memorisation_row(torch.cat([train[:2], far]), train)
    assert row["memorised_fraction"] == pytest.approx(0.5)
    assert row["n_samples"] == 4


def test_needs_two_training_images(train: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="at least two"):
        nearest_neighbours(train[:1], train[:1])


def test_loss_gap_bootstrap_detects_a_real_gap_and_not_a_null_one() -> None:
    rng = np.random.default_rng(0)
    train = rng.gamma(2.0, 0.05, size=(32, 4))
    assert loss_gap_test(train, train * 1.5, 500, seed=0)["gap_p"] < 0.01
    same = rng.gamma(2.0, 0.05, size=(32, 4))
    result = loss_gap_test(train, same, 500, seed=0)
    assert result["gap_p"] > 0.01
    assert result["gap_lo"] < 0 < result["gap_hi"] or abs(result["loss_gap"]) < 0.02
