from collections import OrderedDict

import pytest
import torch

from deepdrift.errors import UnsupportedOutputError
from deepdrift.pooling import PoolingConfig, extract_tensor, pool_output


def test_conv_maps_are_global_average_pooled():
    x = torch.randn(4, 5, 6, 7)
    torch.testing.assert_close(pool_output(x), x.mean(dim=(2, 3)))


def test_tokens_mean_or_cls():
    x = torch.randn(4, 10, 8)
    torch.testing.assert_close(pool_output(x), x.mean(dim=1))
    torch.testing.assert_close(pool_output(x, PoolingConfig(token_pool="cls")), x[:, 0])


def test_nhwc_layout():
    x = torch.randn(2, 3, 4, 6)
    torch.testing.assert_close(pool_output(x, PoolingConfig(layout="NHWC")), x.mean(dim=(1, 2)))


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
    torch.testing.assert_close(pool_output(x), x.float().mean(dim=(2, 3)))
