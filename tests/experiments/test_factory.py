"""Every model name builds offline and maps 32x32 images to class logits."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from experiments.models import build_model

NAMES = ["small_cnn", "resnet20", "resnet18", "tv_resnet18", "vit_tiny", "convnext_atto", "efficientnet_b0"]


@pytest.mark.parametrize("in_chans", [1, 3])
@pytest.mark.parametrize("name", NAMES)
def test_forward_shape(name: str, in_chans: int) -> None:
    torch.manual_seed(0)
    model = build_model(name, num_classes=7, in_chans=in_chans, img_size=32).eval()
    with torch.no_grad():
        out = model(torch.randn(2, in_chans, 32, 32))
    assert out.shape == (2, 7) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", ["small_cnn", "resnet20", "resnet18", "tv_resnet18", "convnext_atto"])
def test_feature_info_names_real_modules(name: str) -> None:
    model = build_model(name)
    modules = dict(model.named_modules())
    assert all(info["module"] in modules for info in model.feature_info)


def test_small_inputs_keep_spatial_resolution() -> None:
    model = build_model("resnet18").eval()
    seen: dict[str, torch.Size] = {}

    def record(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        seen["shape"] = output.shape

    model.layer4.register_forward_hook(record)
    with torch.no_grad():
        model(torch.randn(1, 1, 32, 32))
    assert seen["shape"][-2:] == (4, 4)  # 3x3/1 stem, no max-pool: reduction 8 by layer4
    assert model.feature_info[-1]["reduction"] == 8


def test_small_cnn_is_plain_sequential_with_inplace_relu() -> None:
    model = build_model("small_cnn")
    assert isinstance(model, nn.Sequential)
    assert any(isinstance(m, nn.ReLU) and m.inplace for m in model)
    assert 80_000 < sum(p.numel() for p in model.parameters()) < 150_000


def test_unknown_name_suggests_close_matches() -> None:
    with pytest.raises(ValueError, match="resnet18"):
        build_model("resnt18")
