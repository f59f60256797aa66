"""The vectorised scoring path gives the numbers of the layer-by-layer definitions it replaces."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from deepdrift.calibration import CalibrationAccumulator, CalibrationConfig
from deepdrift.null_model import combined_sigma_and_pvalue, sigma_and_pvalue
from deepdrift.pooling import PoolingConfig, pool_tensor
from deepdrift.scores import DriftScorer, shift_statistics
from deepdrift.stacked_reference import StackedReference

WIDTHS = {"a": 6, "b": 40, "c": 3}


def _features(n: int, seed: int, shift: float = 0.0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    base = torch.randn(n, 4, generator=gen)
    out = {}
    for i, (name, width) in enumerate(WIDTHS.items()):
        mix = torch.randn(4, width, generator=torch.Generator().manual_seed(100 + i))
        out[name] = base @ mix + 0.5 * torch.randn(n, width, generator=gen) + shift
    return out


@pytest.fixture(scope="module")
def scorer() -> DriftScorer:
    acc = CalibrationAccumulator(CalibrationConfig(seed=3))
    for seed in range(8):
        acc.update(_features(128, seed))
    return DriftScorer(n_null_draws=500).set_calibration(acc.finalize(list(WIDTHS)))


def _per_layer_statistics(scorer: DriftScorer, features: dict[str, torch.Tensor]) -> torch.Tensor:
    rows = []
    for name, x in features.items():
        ref = scorer.calibration.layers[name]
        principal = None if ref.principal is None else ref.principal.double()
        rows.append(shift_statistics(x, ref.mean.double(), ref.var.double().rsqrt(), principal))
    return torch.stack(rows)


@pytest.mark.parametrize("batch_size", [1, 7, 64])
@pytest.mark.parametrize("shift", [0.0, 0.4])
def test_stacked_statistics_equal_the_per_layer_definition(scorer, batch_size, shift):
    features = _features(batch_size, 99, shift)
    assert scorer.calibration.layers["b"].principal is not None
    stacked = scorer.statistics(features)
    torch.testing.assert_close(stacked, _per_layer_statistics(scorer, features), rtol=1e-12, atol=1e-12)


def test_the_device_path_equals_the_cpu_path(scorer):
    """The torch code that runs on accelerators, exercised on the CPU against the numpy code."""
    names = scorer.calibration.names
    layers = [scorer.calibration.layers[n] for n in names]
    cpu = StackedReference.build(layers, torch.device("cpu"))
    device = StackedReference.build(layers, torch.device("meta"))  # built the accelerator way ...
    device = dataclasses.replace(  # ... with its tensors moved back to the CPU to run here
        device,
        mean=torch.from_numpy(cpu.mean),
        inv_std=torch.from_numpy(cpu.inv_std),
        principal=tuple(None if p is None else torch.from_numpy(p) for p in cpu.principal),
        pad_index=device.pad_index.new_empty(device.pad_index.shape, device="cpu").copy_(
            torch.cat([i * int(cpu.widths.max()) + torch.arange(int(w)) for i, w in enumerate(cpu.widths)])
        ),
        device_widths=torch.as_tensor(cpu.widths, dtype=torch.float64),
    )
    for batch in (_features(1, 3), _features(9, 4, 0.3)):
        means = torch.cat([batch[n] for n in names], dim=1).mean(dim=0, dtype=torch.float64)
        torch.testing.assert_close(
            device.statistics(device.shift(means), 9), cpu.statistics(cpu.shift(means), 9), rtol=1e-12, atol=1e-12
        )
    nan_batch = _features(4, 8)
    nan_batch["b"][0, 0] = float("nan")
    means = torch.cat([nan_batch[n] for n in names], dim=1).mean(dim=0, dtype=torch.float64)
    stats = device.statistics(device.shift(means), 4)
    assert stats[1].isnan().all() and stats[[0, 2]].isfinite().all()


def test_a_nan_stays_inside_its_own_layer(scorer):
    features = _features(8, 11)
    features["b"][2, 5] = float("nan")
    stats = scorer.statistics(features).numpy()
    assert np.isnan(stats[1]).any()
    assert np.isfinite(stats[0]).all() and np.isfinite(stats[2]).all()
    scores = scorer.score_features(features)
    assert scores["b"].nonfinite and np.isnan(scores["b"].drift)
    assert not scores["a"].nonfinite and np.isfinite(scores["a"].drift)


@pytest.mark.parametrize("batch_size", [1, 16])
def test_null_table_equals_the_per_fit_functions(scorer, batch_size):
    nulls = scorer.null_fits(batch_size)
    table = scorer.null_table(batch_size)
    rng = np.random.default_rng(0)
    # body, junction region and far tail, plus a non-finite row
    statistics = np.abs(rng.standard_normal((200, len(WIDTHS), 3))) * rng.choice([0.5, 2.0, 40.0], (200, 1, 1))
    statistics[3, 1, 2] = np.nan
    for row in statistics:
        expected = combined_sigma_and_pvalue(row, nulls)
        got = table.sigma_and_pvalue(row)
        np.testing.assert_allclose(got[0], expected[0], rtol=1e-12, atol=1e-12, equal_nan=True)
        np.testing.assert_allclose(got[1], expected[1], rtol=1e-12, atol=0, equal_nan=True)
        for k in range(3):
            single = sigma_and_pvalue(row[:, k], [null.fits[k] for null in nulls])
            np.testing.assert_allclose(table.sigma_and_pvalue(row, k)[0], single[0], rtol=1e-12, equal_nan=True)
    batched = table.sigma_and_pvalue(statistics)[0]  # (samples, layers) in one call
    rowwise = np.stack([table.sigma_and_pvalue(row)[0] for row in statistics])
    np.testing.assert_allclose(batched, rowwise, rtol=1e-12, equal_nan=True)


def test_score_samples_equal_scoring_each_sample_alone(scorer):
    features = _features(5, 21, 0.3)
    samples = scorer.score_samples(features)
    for i in range(5):
        alone = scorer.score_features({n: x[i : i + 1] for n, x in features.items()})
        np.testing.assert_allclose(samples.drift[i], [alone[n].drift for n in WIDTHS], rtol=1e-10)


def test_stacked_reference_of_one_layer():
    acc = CalibrationAccumulator(CalibrationConfig())
    for seed in range(4):
        acc.update({"a": _features(128, seed)["a"]})
    calibration = acc.finalize(["a"])
    stacked = StackedReference.build([calibration.layers["a"]], torch.device("cpu"))
    assert stacked.n_layers == 1 and stacked.widths.tolist() == [WIDTHS["a"]]


@pytest.mark.parametrize(
    "shape,layout",
    [((3, 8, 40, 40), "NCHW"), ((64, 64, 56, 56), "NCHW"), ((2, 16, 16, 8), "NHWC"), ((5, 300, 240), "NLC")],
)
def test_pooling_in_chunks_is_bitwise_the_one_pass_result(shape, layout, monkeypatch):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0)).relu() + 2.0
    chunked = pool_tensor(x, layout, PoolingConfig())
    monkeypatch.setattr("deepdrift.pooling.CHUNK_ELEMENTS", 1 << 40)
    assert torch.equal(chunked, pool_tensor(x, layout, PoolingConfig()))
    positions = x.flatten(2) if layout == "NCHW" else x.flatten(1, -2)
    dim = 2 if layout == "NCHW" else 1
    mean = positions.mean(dim=dim)
    expected = torch.cat([mean, positions.std(dim=dim, correction=0), positions.amax(dim=dim)], dim=1)
    torch.testing.assert_close(chunked, expected, rtol=2e-6, atol=2e-6)
    if layout == "NCHW":  # channels first: the norm kernel of the unchunked definition, bit for bit
        spread = torch.linalg.vector_norm(positions - mean[..., None], dim=dim) / positions.shape[dim] ** 0.5
        assert torch.equal(chunked[:, shape[1] : 2 * shape[1]], spread)


def test_leading_axes_by_subspace_iteration_match_the_full_eigendecomposition(monkeypatch):
    from deepdrift import principal as calibration_module

    gen = torch.Generator().manual_seed(0)
    n_features = 1100
    loadings = torch.randn(n_features, 40, generator=gen, dtype=torch.float64) * torch.linspace(3, 0.1, 40).double()
    x = torch.randn(1500, 40, generator=gen, dtype=torch.float64) @ loadings.T
    x = x + 0.3 * torch.randn(1500, n_features, generator=gen, dtype=torch.float64)
    covariance = torch.cov(x.T)
    var = covariance.diagonal().clone()
    fast = calibration_module.principal_axes(covariance, var, 0.99, max_axes=16)
    monkeypatch.setattr(calibration_module, "LOW_RANK_MIN_FEATURES", 10**9)
    full = calibration_module.principal_axes(covariance, var, 0.99, max_axes=16)
    assert fast.shape == full.shape == (n_features, 16)
    cosines = ((fast / fast.norm(dim=0)) * (full / full.norm(dim=0))).sum(dim=0).abs()
    assert cosines.min() > 0.9999
    torch.testing.assert_close(fast.norm(dim=0), full.norm(dim=0), rtol=1e-4, atol=0)
