from itertools import pairwise

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deepdrift.stats import JointReservoir, RunningMoments, merge_moments, reservoir_merge_plan


def test_moments_match_numpy():
    x = torch.randn(500, 7, dtype=torch.float64) * torch.arange(1, 8) + 3
    m = RunningMoments()
    for chunk in x.split(37):
        m.update(chunk)
    np.testing.assert_allclose(m.mean.numpy(), x.mean(0).numpy(), rtol=1e-12)
    np.testing.assert_allclose(m.variance.numpy(), x.var(0, unbiased=True).numpy(), rtol=1e-10)
    assert m.count == 500


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(min_value=2, max_value=60),
    cuts=st.lists(st.integers(min_value=0, max_value=60), max_size=6),
    offset=st.floats(min_value=-1e6, max_value=1e6),
    seed=st.integers(0, 2**16),
)
def test_merge_of_any_split_equals_one_pass(n, cuts, offset, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g, dtype=torch.float64) + offset
    one = RunningMoments(track_covariance=True).update(x)
    bounds = sorted({min(c, n) for c in cuts} | {0, n})
    parts = [RunningMoments(track_covariance=True).update(x[a:b]) for a, b in pairwise(bounds)]
    merged = RunningMoments(track_covariance=True)
    for p in parts:
        merged.merge(p)
    assert merged.count == one.count
    np.testing.assert_allclose(merged.mean.numpy(), one.mean.numpy(), rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(merged.variance.numpy(), one.variance.numpy(), rtol=1e-8, atol=1e-9)
    np.testing.assert_allclose(merged.covariance.numpy(), one.covariance.numpy(), rtol=1e-8, atol=1e-9)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(min_value=2, max_value=60),
    cuts=st.lists(st.integers(min_value=0, max_value=60), max_size=6),
    offset=st.floats(min_value=-1e6, max_value=1e6),
    seed=st.integers(0, 2**16),
)
def test_one_step_merge_of_many_parts_equals_one_pass(n, cuts, offset, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g, dtype=torch.float64) + offset
    one = RunningMoments(track_covariance=True).update(x)
    bounds = sorted({min(c, n) for c in cuts} | {0, n})
    parts = [RunningMoments(track_covariance=True).update(x[a:b]) for a, b in pairwise(bounds)]
    merged = merge_moments([*parts, RunningMoments(track_covariance=True)])  # an empty part changes nothing
    assert merged.count == one.count
    np.testing.assert_allclose(merged.mean.numpy(), one.mean.numpy(), rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(merged.variance.numpy(), one.variance.numpy(), rtol=1e-8, atol=1e-9)
    np.testing.assert_allclose(merged.covariance.numpy(), one.covariance.numpy(), rtol=1e-8, atol=1e-9)


def test_reservoir_merge_plan_keeps_capacity_rows_from_stored_ones():
    rng = np.random.default_rng(0)
    plan = reservoir_merge_plan(seen=[1000, 3, 0, 50], held=[64, 3, 0, 50], capacity=64, rng=rng)
    assert sum(len(p) for p in plan) == 64 and len(plan[2]) == 0
    for p, held in zip(plan, [64, 3, 0, 50], strict=True):
        assert len(set(p.tolist())) == len(p) and all(0 <= i < held for i in p)
    everything = reservoir_merge_plan(seen=[5, 7], held=[5, 7], capacity=64, rng=rng)  # room for all: keep all
    assert [p.tolist() for p in everything] == [list(range(5)), list(range(7))]


def test_covariance_matches_torch_and_needs_tracking():
    x = torch.randn(300, 4, dtype=torch.float64) @ torch.randn(4, 4, dtype=torch.float64) + 5
    m = RunningMoments(track_covariance=True)
    for chunk in x.split(41):
        m.update(chunk)
    np.testing.assert_allclose(m.covariance.numpy(), torch.cov(x.T).numpy(), rtol=1e-10)
    np.testing.assert_allclose(np.diag(m.covariance.numpy()), m.variance.numpy(), rtol=1e-10)
    with pytest.raises(ValueError, match="track_covariance"):
        _ = RunningMoments().update(x).covariance
    with pytest.raises(ValueError, match="cannot merge"):
        m.merge(RunningMoments().update(x))


def test_variance_needs_two_samples():
    with pytest.raises(ValueError, match="at least two"):
        _ = RunningMoments().update(torch.ones(1, 3)).variance


def test_reservoir_is_bounded_and_keeps_rows_aligned_across_layers():
    r = JointReservoir(capacity=50, seed=0)
    for start in range(0, 1000, 16):
        ids = torch.arange(start, start + 16, dtype=torch.float32)[:, None]
        r.add({"a": ids.repeat(1, 2), "b": -ids})
    assert len(r) == 50 and r.seen == 1008
    s = r.samples()
    assert s["a"].shape == (50, 2)
    torch.testing.assert_close(s["a"][:, 0], -s["b"][:, 0])  # same samples in every layer
    assert len(set(s["a"][:, 0].tolist())) == 50


def test_reservoir_is_uniform():
    counts = np.zeros(200)
    for seed in range(300):
        r = JointReservoir(capacity=20, seed=seed)
        for start in range(0, 200, 8):
            r.add({"a": torch.arange(start, start + 8, dtype=torch.float32)[:, None]})
        counts[r.samples()["a"][:, 0].long().numpy()] += 1
    # each item is kept with probability 20/200; early and late items alike
    expected = 300 * 20 / 200
    assert abs(counts[:100].mean() - expected) < 0.1 * expected
    assert abs(counts[100:].mean() - expected) < 0.1 * expected


def test_reservoir_merge_weights_by_stream_length():
    big, small = JointReservoir(100, seed=1), JointReservoir(100, seed=2)
    for _ in range(30):
        big.add({"a": torch.zeros(30, 1)})
    small.add({"a": torch.ones(100, 1)})
    big.merge(small)
    assert len(big) == 100 and big.seen == 1000
    share_small = float(big.samples()["a"].mean())
    assert 0.03 < share_small < 0.2  # 100 of 1000 samples came from the small stream
