"""The calibration study's clean-drift grid: stored features score exactly what a monitor scores, and the tail
summaries pool and bound correctly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from library_fixtures import clean_batches, make_small_cnn
from scipy import stats
from torch.utils.data import DataLoader, TensorDataset

from deepdrift import DeepDriftMonitor
from experiments.null_grid import (
    GridCell,
    TapFeatures,
    calibrated_scorer,
    clean_drift,
    grid_counts,
    split_pool,
    summarise_counts,
    tap_features,
)
from experiments.null_tail import nominal, tail_table, two_stage_rate


def test_stored_features_score_what_the_monitor_scores_bit_for_bit():
    torch.manual_seed(0)
    model = make_small_cnn().eval()
    images = torch.cat(clean_batches(12, batch_size=32, seed=3))
    taps = tap_features(model, images, batch_size=64)
    calib, heldout = split_pool(len(images), 256, seed=1)
    scorer = calibrated_scorer(taps, calib)
    monitor = DeepDriftMonitor(model)
    monitor.calibrate(DataLoader(TensorDataset(images[calib]), batch_size=128))
    assert list(taps.features) == monitor.layer_names
    rng = np.random.default_rng(0)
    for batch_size in (1, 16):
        pick = heldout[torch.as_tensor(rng.choice(len(heldout), batch_size, replace=False))]
        from_features = scorer.score_features(taps.rows(pick))
        from_monitor = monitor.score(images[pick])
        assert [s.drift for s in from_features.values()] == [s.drift for s in from_monitor.values()]
    drift = clean_drift(scorer, taps, heldout, 16, 5, seed=2)
    assert drift.shape == (5, len(taps.features)) and np.isfinite(drift).all()


def test_split_pool_partitions_and_is_seeded():
    calib, heldout = split_pool(100, 30, seed=4)
    assert len(calib) == 30 and len(heldout) == 70
    assert sorted(torch.cat([calib, heldout]).tolist()) == list(range(100))
    assert torch.equal(split_pool(100, 30, seed=4)[0], calib)
    assert not torch.equal(split_pool(100, 30, seed=5)[0], calib)
    with pytest.raises(ValueError, match="n_calib"):
        split_pool(10, 10, seed=0)


def _cell(drift: np.ndarray, split: int = 0, batch_size: int = 16) -> GridCell:
    return GridCell("m", split, 100, batch_size, drift)


def test_two_stage_rate_pools_hits_and_its_interval_covers_the_normal_tail_on_normal_draws():
    rng = np.random.default_rng(0)
    cells = [_cell(rng.standard_normal((20000, 3)), split=s) for s in range(4)]
    rate, low, high, hits, trials = two_stage_rate(cells, 2.0)
    assert trials == 4 * 20000 * 3
    assert hits == sum(int((c.drift > 2.0).sum()) for c in cells)
    assert rate == hits / trials
    assert low <= nominal(2.0) <= high
    assert low < rate < high


def test_an_offset_calibration_split_widens_the_interval():
    rng = np.random.default_rng(1)
    even = [_cell(rng.standard_normal((5000, 2)), split=s) for s in range(4)]
    shifted = [*even[:3], _cell(rng.standard_normal((5000, 2)) + 1.0, split=3)]
    _, low_e, high_e, _, _ = two_stage_rate(even, 2.0)
    _, low_s, high_s, _, _ = two_stage_rate(shifted, 2.0)
    assert high_s - low_s > 2 * (high_e - low_e)


def test_zero_hits_are_bounded_by_the_batches_not_by_a_degenerate_bootstrap():
    cells = [_cell(np.zeros((50, 4)), split=s) for s in range(2)]
    rate, low, high, hits, _ = two_stage_rate(cells, 3.0)
    assert (rate, low, hits) == (0.0, 0.0, 0)
    assert high == pytest.approx(stats.beta.ppf(0.975, 1, 100))
    table = tail_table(cells)
    assert not table["passes"].item()  # 100 batches cannot show a 0.135% tail within 2x


def test_summarise_counts_pools_splits_like_the_concatenated_draws():
    rng = np.random.default_rng(2)
    taps = TapFeatures(
        features={"a": torch.zeros(1, 1), "b": torch.zeros(1, 1)},
        depth={"a": 0.0, "b": 1.0},
        zone={"a": "UV", "b": "IR"},
    )
    cells = [_cell(rng.standard_normal((n, 2)) * (1 + s), split=s) for s, n in enumerate((300, 500))]
    table = summarise_counts(grid_counts(cells, {"m": taps})).set_index("tap")
    for j, tap in enumerate(("a", "b")):
        pooled = np.concatenate([c.drift[:, j] for c in cells])
        assert table.loc[tap, "batches"] == 800
        assert table.loc[tap, "mean"] == pytest.approx(pooled.mean())
        assert table.loc[tap, "sd"] == pytest.approx(pooled.std(ddof=1))
        assert table.loc[tap, "share_above_2"] == pytest.approx((pooled > 2).mean())
    assert isinstance(table, pd.DataFrame)
