"""Merging calibration state: accumulators filled in pieces equal one pass, and anything incompatible is refused."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from library_fixtures import clean_batches

from deepdrift import CalibrationConfig, CalibrationMismatchError, DeepDriftMonitor
from deepdrift.calibration import CalibrationAccumulator
from deepdrift.merge import merge_accumulators
from deepdrift.stats import JointReservoir, merge_reservoirs


def _features(n: int, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(12, 12, generator=g, dtype=torch.float64)
    return {
        "a": torch.randn(n, 5, generator=g, dtype=torch.float64) * 3 + 100,
        "b": torch.randn(n, 12, generator=g, dtype=torch.float64) @ mix - 7,
    }


def _fill(acc: CalibrationAccumulator, features: dict[str, torch.Tensor], batch: int = 20) -> CalibrationAccumulator:
    for start in range(0, next(iter(features.values())).shape[0], batch):
        acc.update({k: v[start : start + batch] for k, v in features.items()})
    return acc


def _rows(x: torch.Tensor) -> set[tuple[float, ...]]:
    return {tuple(r) for r in x.tolist()}


def test_two_halves_merge_to_one_pass_over_all():
    config = CalibrationConfig(reservoir_size=1000)
    data = _features(400, seed=0)
    halves = [{k: v[:200] for k, v in data.items()}, {k: v[200:] for k, v in data.items()}]
    one = _fill(CalibrationAccumulator(config), data)
    parts = [_fill(CalibrationAccumulator(config, shard=i), h) for i, h in enumerate(halves)]
    merged = merge_accumulators(*parts)
    assert merged.n_seen == one.n_seen == 400 and merged.reservoir.seen == one.reservoir.seen == 80
    for name in data:
        m, o = merged.moments[name], one.moments[name]
        assert m.count == o.count == 320
        torch.testing.assert_close(m.mean, o.mean, rtol=1e-12, atol=0)
        torch.testing.assert_close(m.m2, o.m2, rtol=1e-12, atol=0)
        torch.testing.assert_close(m.comoment, o.comoment, rtol=1e-12, atol=1e-9)
        # every held-out sample fits in the reservoir, so both hold exactly the same rows
        assert _rows(merged.reservoir.samples()[name]) == _rows(one.reservoir.samples()[name])
    cal, ref = merged.finalize(), one.finalize()
    torch.testing.assert_close(cal.layers["b"].var, ref.layers["b"].var, rtol=1e-12, atol=0)
    principal, reference = cal.layers["b"].principal, ref.layers["b"].principal
    torch.testing.assert_close(principal @ principal.T, reference @ reference.T, rtol=1e-5, atol=1e-6)


def test_merge_leaves_inputs_alone_and_matches_in_place_merge():
    config = CalibrationConfig()
    parts = [_fill(CalibrationAccumulator(config, shard=i), _features(n, seed=i)) for i, n in enumerate((60, 35, 100))]
    before = [p.moments["b"].comoment.clone() for p in parts]
    merged = merge_accumulators(*parts)
    for p, b in zip(parts, before, strict=True):
        assert torch.equal(p.moments["b"].comoment, b)
    in_place = CalibrationAccumulator(config)
    for p in parts:
        in_place.merge(p)
    assert merged.n_seen == in_place.n_seen == 195 and merged.reservoir.seen == in_place.reservoir.seen
    torch.testing.assert_close(merged.moments["b"].comoment, in_place.moments["b"].comoment, rtol=1e-12, atol=1e-9)
    # an empty accumulator is neutral
    again = merge_accumulators(CalibrationAccumulator(config), *parts)
    assert torch.equal(again.moments["a"].mean, merged.moments["a"].mean)


def test_mismatched_layers_sizes_and_configs_are_refused():
    base = _fill(CalibrationAccumulator(CalibrationConfig()), _features(40, seed=0))
    renamed = _fill(CalibrationAccumulator(CalibrationConfig()), {"a": _features(40, 1)["a"], "c": torch.randn(40, 3)})
    with pytest.raises(CalibrationMismatchError, match=r"layers missing \['b'\].*extra layers \['c'\]"):
        merge_accumulators(base, renamed)
    wider = _fill(CalibrationAccumulator(), {"a": torch.randn(40, 6), "b": torch.randn(40, 12)})
    with pytest.raises(CalibrationMismatchError, match="'a' has 6 features, not 5"):
        merge_accumulators(base, wider)
    other = _fill(CalibrationAccumulator(CalibrationConfig(holdout_fraction=0.5)), _features(40, seed=2))
    with pytest.raises(CalibrationMismatchError, match=r"holdout_fraction=0\.5 instead of 0\.2"):
        merge_accumulators(base, other)
    untracked = _fill(CalibrationAccumulator(CalibrationConfig(principal_max_features=8)), _features(40, seed=3))
    with pytest.raises(CalibrationMismatchError, match="'b' does not track the covariance"):
        merge_accumulators(base, untracked)
    with pytest.raises(CalibrationMismatchError, match="extra layers"):  # the in-place merge checks too
        base.merge(renamed)
    with pytest.raises(ValueError, match="at least one"):
        merge_accumulators()


def test_merged_reservoir_is_a_uniform_sample_of_the_union():
    """Streams of 300 and 100 held-out samples into 40 slots: every sample is kept with probability 40/400."""
    counts = np.zeros(400)
    for rep in range(400):
        long, short = JointReservoir(40, seed=(rep, 1, 1)), JointReservoir(40, seed=(rep, 1, 2))
        for start in range(0, 300, 25):
            long.add({"x": torch.arange(start, start + 25, dtype=torch.float32)[:, None]})
        short.add({"x": torch.arange(300, 400, dtype=torch.float32)[:, None]})
        merged = merge_reservoirs([long, short], np.random.default_rng((rep, 2)))
        assert len(merged) == 40 and merged.seen == 400
        counts[merged.samples()["x"][:, 0].long().numpy()] += 1
    expected = 400 * 40 / 400
    assert abs(counts[:300].mean() - expected) < 0.08 * expected
    assert abs(counts[300:].mean() - expected) < 0.08 * expected
    assert abs(counts[:150].mean() - counts[150:300].mean()) < 0.1 * expected  # early and late alike


def test_shards_draw_independent_reservoir_streams():
    config = CalibrationConfig(reservoir_size=8)
    data = _features(400, seed=5)
    a, b = (_fill(CalibrationAccumulator(config, shard=i), data) for i in (0, 1))
    assert not torch.equal(a.reservoir.samples()["a"], b.reservoir.samples()["a"])
    with pytest.raises(ValueError, match="shard must be an integer >= 0"):
        CalibrationAccumulator(config, shard=-1)


def test_monitor_update_continues_the_calibration_exactly(small_cnn, tmp_path):
    batches = clean_batches(10, batch_size=20, seed=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = DeepDriftMonitor(small_cnn).calibrate(batches)
        parts = DeepDriftMonitor(small_cnn).calibrate(batches[:3], update=True).calibrate(batches[3:], update=True)
        for name, ref in full.calibration.layers.items():
            got = parts.calibration.layers[name]
            assert got.count == ref.count and parts.calibration.n_seen == 200
            assert torch.equal(got.mean, ref.mean) and torch.equal(got.var, ref.var)
            assert torch.equal(got.holdout, ref.holdout) and torch.equal(got.principal, ref.principal)
        with pytest.raises(ValueError, match="accumulator behind it was not kept"):
            full.calibrate(batches, update=True)  # calibrated without update: nothing to continue
        path = parts.save_calibration(tmp_path / "cal.safetensors")
        parts.load_calibration(path)
        with pytest.raises(ValueError, match="or loaded"):
            parts.calibrate(batches, update=True)
        parts.calibrate(batches[:5])  # a plain calibrate replaces and starts afresh
        assert parts.calibration.n_seen == 100
