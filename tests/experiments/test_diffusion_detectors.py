"""One null-set test for every diffusion detector; the probe's stable rank and equal-width statistic."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from experiments.diffusion.detectors import (
    ANY,
    BEST,
    LOSS,
    POOLED,
    RANK,
    best_blocks,
    detector_flags,
    detector_onsets,
    null_test,
)
from experiments.diffusion.probe import channel_subsets, mean_shift, stable_rank

BLOCKS = ("down_blocks.0", "mid_block", "up_blocks.0")


def test_stable_rank_counts_effective_directions():
    rng = np.random.default_rng(0)
    assert stable_rank(np.outer(rng.normal(size=50), rng.normal(size=8))) == pytest.approx(1.0)
    isotropic = stable_rank(rng.normal(size=(5000, 8)))
    assert 6.0 < isotropic <= 8.0
    assert np.isnan(stable_rank(np.ones((10, 4))))


def test_mean_shift_is_one_on_reference_draws_and_grows_with_a_shift():
    rng = np.random.default_rng(1)
    mu, sigma = np.zeros(16), np.ones(16)
    clean = [mean_shift(rng.normal(size=(32, 16)), mu, sigma) for _ in range(400)]
    assert np.mean(clean) == pytest.approx(1.0, abs=0.1)
    assert mean_shift(rng.normal(0.5, 1.0, size=(32, 16)), mu, sigma) > 5.0


def test_equal_width_subsets_are_fixed_and_as_wide_as_the_narrowest_block():
    subsets = channel_subsets({"a": 32, "b": 64, "c": 128}, seed=3)
    assert {len(v) for v in subsets.values()} == {32}
    assert np.array_equal(subsets["a"], np.arange(32))
    assert all(np.array_equal(subsets[k], channel_subsets({"a": 32, "b": 64, "c": 128}, 3)[k]) for k in subsets)


def _sets(train: float, nulls: list[float]) -> pd.DataFrame:
    rows = [{"k": 0, "set": "train", "v": train}] + [{"k": 0, "set": f"null{j}", "v": v} for j, v in enumerate(nulls)]
    return pd.DataFrame(rows)


def test_null_test_one_and_two_sided():
    nulls = [0.0, 0.3, -0.2, 0.1, -0.1, 0.2, -0.3, 0.05]
    high = null_test(_sets(3.0, nulls), ["k"], "v", alpha=0.01).iloc[0]
    assert high["significant"] and high["p_value"] < 0.01
    low_one = null_test(_sets(-3.0, nulls), ["k"], "v", alpha=0.01).iloc[0]
    assert not low_one["significant"]
    low_two = null_test(_sets(-3.0, nulls), ["k"], "v", alpha=0.01, two_sided=True).iloc[0]
    assert low_two["significant"]
    inside = null_test(_sets(0.25, nulls), ["k"], "v", alpha=0.01, two_sided=True).iloc[0]
    assert not inside["significant"]


def _drift_frame(winner: str, steps=(0, 500, 1000, 1500), seeds=(0, 1, 2)) -> pd.DataFrame:
    """Synthetic per-set rows: the training set drifts in ``winner`` from step 1000 on; its loss drops there."""
    rng = np.random.default_rng(0)
    rows = []
    for seed in seeds:
        for step in steps:
            for j in range(-1, 8):
                name = "train" if j < 0 else f"null{j}"
                trained = name == "train" and step >= 1000
                loss = 0.5 - (0.2 if trained else 0.0) + rng.normal(0, 0.001)
                for index, block in enumerate(BLOCKS):
                    drift = rng.normal(0, 1) + (12.0 if trained and block == winner else 0.0)
                    rows.append(
                        {
                            "n_train": 10,
                            "seed": seed,
                            "t": 50,
                            "step": step,
                            "set": name,
                            "block": block,
                            "block_index": index,
                            "draw": 0,
                            "drift": drift,
                            "loss": loss,
                            "stable_rank": 4.0 + rng.normal(0, 0.1),
                            "mean_shift_k": 1.0,
                        }
                    )
    return pd.DataFrame(rows)


def _loss_random_t(seeds=(0, 1, 2), steps=(0, 500, 1000, 1500)) -> pd.DataFrame:
    rows = [
        {"n_train": 10, "seed": s, "step": st, "loss_gap": 0.0, "gap_lo": -0.1, "gap_hi": 0.1, "gap_p": 0.5}
        for s in seeds
        for st in steps
    ]
    return pd.DataFrame(rows)


def test_every_detector_is_decided_by_the_same_test():
    flags, block_gaps = detector_flags(_drift_frame("mid_block"), _loss_random_t(), alpha=0.01)
    onsets = detector_onsets(flags, consecutive=2).set_index(["detector", "seed"])["onset"]
    for seed in range(3):
        assert onsets[(LOSS, seed)] == 1000.0
        assert onsets[(BEST, seed)] == 1000.0
        assert onsets[(ANY, seed)] == 1000.0
        assert np.isnan(onsets[(RANK, seed)])
    assert set(best_blocks(block_gaps)["best_block"]) == {"mid_block"}
    assert set(flags["detector"]) >= {LOSS, POOLED, BEST, ANY, RANK}


def test_best_block_is_chosen_on_the_other_seeds_only():
    flags, block_gaps = detector_flags(_drift_frame("mid_block", seeds=(0,)), _loss_random_t(seeds=(0,)), 0.01)
    assert best_blocks(block_gaps)["best_block"].isna().all()
    assert BEST not in set(flags["detector"])
