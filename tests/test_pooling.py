from collections import OrderedDict

import pytest
import torch
from library_fixtures import mean_std_max

from deepdrift.errors import UnsupportedOutputError
from deepdrift.pooling import PoolingConfig, extract_tensor, pool_output

MEAN_ONLY = PoolingConfig(summary="mean")


def test_conv_maps_are_global_average_pooled_with_spatial_std():
    x = torch.randn(4, 5, 6, 7)
    torch.testing.assert_close(pool_output(x), mean_std_max(x, (2, 3)))
    torch.testing.assert_close(pool_output(x, MEAN_ONLY), x.mean(dim=(2, 3)))


def test_zero_mean_noise_moves_the_std_features_not_the_means():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 3, 16, 16, generator=g)
    noisy = x + 0.5 * torch.randn(x.shape, generator=g)
    clean, shifted = pool_output(x), pool_output(noisy)
    assert (shifted[:, :3] - clean[:, :3]).abs().max() < 0.1  # means: noise averages out over 256 positions
    assert (shifted[:, 3:6] / clean[:, 3:6]).mean() > 1.08  # std: sqrt(1 + 0.25) = 1.118


def test_a_few_changed_positions_move_the_max_far_more_than_mean_and_std():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(256, 4, 16, 16, generator=g)  # clean maps: maxima pile up just below 1
    stuck = x.clone()
    stuck[:, :, 3, 5] = 1.5  # one stuck position out of 256
    clean, faulty = pool_output(x), pool_output(stuck)
    spread = clean.std(dim=0)  # natural spread of each feature across samples
    moved = ((faulty - clean).mean(dim=0) / spread).abs()
    assert moved[:8].max() < 1.0  # mean and std: well inside their natural spread
    assert moved[8:].min() > 50.0  # max: far outside it
    assert pool_output(x, PoolingConfig(summary="mean_std")).shape == (256, 8)


def test_tokens_mean_or_cls():
    x = torch.randn(4, 10, 8)
    torch.testing.assert_close(pool_output(x), mean_std_max(x, 1))
    torch.testing.assert_close(pool_output(x, MEAN_ONLY), x.mean(dim=1))
    torch.testing.assert_close(pool_output(x, PoolingConfig(token_pool="cls", summary="mean")), x[:, 0])
    torch.testing.assert_close(pool_output(x, PoolingConfig(token_pool="cls"))[:, :8], x[:, 0])
    torch.testing.assert_close(pool_output(x, PoolingConfig(token_pool="cls"))[:, 16:], x.amax(dim=1))


def test_nhwc_layout():
    x = torch.randn(2, 3, 4, 6)
    torch.testing.assert_close(pool_output(x, PoolingConfig(layout="NHWC")), mean_std_max(x, (1, 2)))


def test_vectors_and_scalars_per_sample():
    assert pool_output(torch.randn(3, 9)).shape == (3, 9)
    assert pool_output(torch.randn(3)).shape == (3, 1)


def test_containers_yield_the_hidden_state():
    h = torch.randn(2, 4, 3, 3)
    assert extract_tensor((h, (torch.zeros(1),))) is h
    assert extract_tensor({"last_hidden_state": h, "pooler": torch.zeros(2)}) is h
    assert extract_tensor(OrderedDict(sample=h)) is h

    class Out:
        sample = h

    assert extract_tensor(Out()) is h


def test_unsupported_output_says_what_to_do():
    with pytest.raises(UnsupportedOutputError, match="layers="):
        extract_tensor(None)


def test_pooled_values_are_detached_float32():
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    out = pool_output(x)
    assert out.dtype == torch.float32 and not out.requires_grad


def test_half_precision_outputs_are_averaged_in_float32():
    x = torch.full((1, 1, 8, 8), 100.0, dtype=torch.bfloat16)
    x[0, 0, 0, :4] = 101.75  # bf16 cannot hold the exact mean 100.109375
    torch.testing.assert_close(pool_output(x, MEAN_ONLY), x.float().mean(dim=(2, 3)))


def test_unknown_pooling_options_are_refused():
    with pytest.raises(ValueError, match="summary"):
        PoolingConfig(summary="median")
    with pytest.raises(ValueError, match="token_pool"):
        PoolingConfig(token_pool="first")
