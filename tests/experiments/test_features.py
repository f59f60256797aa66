"""The one feature extraction every study reads: logits, penultimate and tap features from one forward pass."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from deepdrift import LayerTaps
from experiments.features import FeatureSet, classifier_layer, extract_features, tap_order, torch_threads
from experiments.models import build_model


@pytest.fixture(scope="module")
def net() -> nn.Module:
    torch.manual_seed(0)
    layers = [nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(8, 16, 3, padding=1),
              nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 12), nn.ReLU(),
              nn.Linear(12, 3)]  # fmt: skip
    return nn.Sequential(*layers).eval()


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.randn(40, 1, 8, 8, generator=torch.Generator().manual_seed(0))


def test_extract_features_keeps_logits_penultimate_and_taps(net: nn.Module, images: torch.Tensor) -> None:
    feats = extract_features(net, images, LayerTaps(net, layers=["1", "3", "7"]), labels=np.arange(40) % 3)
    assert feats.logits.shape == (40, 3) and feats.penultimate.shape == (40, 12)
    assert list(feats.taps) == ["1", "3", "7"] and feats.taps["3"].shape == (40, 48)  # 16 channels: mean, std, max
    assert feats.labels.dtype == torch.int64 and feats.labels.tolist()[:4] == [0, 1, 2, 0]
    with torch.no_grad():
        assert torch.allclose(net[-1](net[:-1](images)), extract_features(net, images).logits, atol=1e-6)
    assert not any(m._forward_pre_hooks or m._forward_hooks for m in net.modules())  # hooks removed


def test_tap_names_and_batch_size_do_not_change_the_features(net: nn.Module, images: torch.Tensor) -> None:
    by_names = extract_features(net, images, ["1", "3", "7"], batch_size=8)
    by_taps = extract_features(net, images, LayerTaps(net, layers=["1", "3", "7"]), batch_size=40)
    for name in by_names.taps:
        torch.testing.assert_close(by_names.taps[name], by_taps.taps[name], rtol=1e-5, atol=1e-6)


def test_subset_picks_rows_of_every_tensor_and_msp(net: nn.Module, images: torch.Tensor) -> None:
    feats = extract_features(net, images, ["1", "7"], labels=torch.arange(40))
    part = feats.subset([4, 1])
    assert len(part) == 2 and torch.equal(part.penultimate[1], feats.penultimate[1])
    assert torch.equal(part.taps["7"][0], feats.taps["7"][4]) and part.labels.tolist() == [4, 1]
    msp = FeatureSet(logits=torch.tensor([[8.0, 0.0], [0.0, 0.0]]), penultimate=torch.zeros(2, 1)).msp()
    assert msp[0] > 0.99 and msp[1] == pytest.approx(0.5)


def test_tap_order_and_classifier_layer() -> None:
    cnn = build_model("small_cnn").eval()
    assert tap_order(cnn, torch.randn(2, 1, 32, 32)) == ["2", "5", "8"]
    assert classifier_layer(cnn).out_features == 10
    vit = build_model("vit_tiny")
    assert classifier_layer(vit) is vit.get_classifier()
    with pytest.raises(ValueError, match="linear head"):
        classifier_layer(nn.Sequential(nn.Conv2d(1, 2, 3)))


def test_torch_threads_restores_the_setting() -> None:
    before = torch.get_num_threads()
    with torch_threads(before + 1):
        assert torch.get_num_threads() == before + 1
    assert torch.get_num_threads() == before
