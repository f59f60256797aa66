import pytest
import timm
import torch
import torchvision
from library_fixtures import mean_std_max
from torch import nn
from torchvision.models.feature_extraction import create_feature_extractor

from deepdrift.errors import HookNotFiredError, LayerNotFoundError
from deepdrift.layer_selection import auto_select_layers
from deepdrift.taps import ZONES, LayerTaps, build_taps, zone_of


def _hook_count(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) for m in model.modules())


def test_zones_split_positions_into_quarters():
    assert [zone_of(i, 4) for i in range(4)] == list(ZONES)
    assert [zone_of(i, 5) for i in range(5)] == ["UV", "UV", "Mid", "Deep", "IR"]
    taps = build_taps(["a", "b", "c"])
    assert [t.depth for t in taps] == [0.0, 0.5, 1.0]


def test_torchvision_resnet_taps_stem_and_stages():
    model = torchvision.models.resnet18(weights=None)
    names, rule = auto_select_layers(model, "ResNet-18")
    assert names == ["maxpool", "layer1", "layer2", "layer3", "layer4"] and rule == "torchvision-resnet"


def test_torchvision_vit_taps_real_encoder_blocks():
    model = torchvision.models.vit_b_16(weights=None)
    names, _ = auto_select_layers(model, "ViT-B/16")
    modules = dict(model.named_modules())
    assert names[0] == "conv_proj" and len(names) == 13
    assert all(n in modules for n in names)  # the original's ViT names did not exist; ours must


@pytest.mark.parametrize(
    "name",
    [
        "resnet18",
        "vit_tiny_patch16_224",
        "convnext_atto",
        "efficientnet_b0",
        "swin_tiny_patch4_window7_224",
        "mobilenetv3_small_050",
    ],
)
def test_any_timm_model_gets_taps_from_feature_info(name):
    kwargs = {"img_size": 224} if "vit" in name or "swin" in name else {}
    model = timm.create_model(name, pretrained=False, **kwargs).eval()
    taps = LayerTaps(model)
    assert taps.rule == "timm-feature-info" and len(taps.taps) >= 4
    with torch.no_grad():
        out, feats = taps.run(lambda: model(torch.randn(2, 3, 224, 224)))
    assert out.shape == (2, 1000)
    assert all(f.ndim == 2 and f.shape[0] == 2 and torch.isfinite(f).all() for f in feats.values())
    assert _hook_count(model) == 0


def test_swin_nhwc_outputs_pool_over_space_not_channels():
    model = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False).eval()
    taps = LayerTaps(model)
    with torch.no_grad():
        _, feats = taps.run(lambda: model(torch.randn(1, 3, 224, 224)))
    info = {i["module"]: i["num_chs"] for i in model.feature_info}
    for name, chs in info.items():
        assert feats[name].shape[1] == 3 * chs  # mean, std and max of each channel


def test_diffusers_unets_tap_down_mid_up_blocks():
    from diffusers import UNet2DConditionModel, UNet2DModel

    unet = UNet2DModel(
        sample_size=16,
        in_channels=1,
        out_channels=1,
        block_out_channels=(8, 16),
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
        layers_per_block=1,
        norm_num_groups=4,
    ).eval()
    taps = LayerTaps(unet)
    assert taps.names == ["down_blocks.0", "down_blocks.1", "mid_block", "up_blocks.0", "up_blocks.1"]
    with torch.no_grad():
        _, feats = taps.run(lambda: unet(torch.randn(3, 1, 16, 16), 10).sample)
    assert [f.shape for f in feats.values()] == [(3, 24), (3, 48), (3, 48), (3, 48), (3, 24)]  # mean, std, max

    cond = UNet2DConditionModel(
        sample_size=8,
        in_channels=2,
        out_channels=2,
        block_out_channels=(8, 16),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        layers_per_block=1,
        cross_attention_dim=12,
        norm_num_groups=4,
        attention_head_dim=4,
    ).eval()
    taps = LayerTaps(cond)
    with torch.no_grad():
        _, feats = taps.run(lambda: cond(torch.randn(2, 2, 8, 8), 5, encoder_hidden_states=torch.randn(2, 3, 12)))
    assert list(feats) == ["down_blocks.0", "down_blocks.1", "mid_block", "up_blocks.0", "up_blocks.1"]


def test_generic_sequential_taps_after_activations_and_skips_head(small_cnn):
    taps = LayerTaps(small_cnn)
    assert taps.rule == "generic"
    assert taps.names == ["2", "6", "9"]  # after pool, after bn-relu-pool, after relu-avgpool; not the Linear head


def test_captured_values_match_timm_forward_intermediates():
    model = timm.create_model("resnet18", pretrained=False).eval()
    x = torch.randn(2, 3, 64, 64)
    taps = LayerTaps(model)
    with torch.no_grad():
        _, feats = taps.run(lambda: model(x))
        intermediates = model.forward_intermediates(x, intermediates_only=True)
    for name, ref in zip(taps.names, intermediates, strict=True):
        torch.testing.assert_close(feats[name], mean_std_max(ref, (2, 3)))


def test_vit_blocks_match_timm_forward_intermediates():
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=4).eval()
    x = torch.randn(2, 3, 32, 32)
    taps = LayerTaps(model, layers=[f"blocks.{i}" for i in range(12)])
    with torch.no_grad():
        _, feats = taps.run(lambda: model(x))
        inter = model.forward_intermediates(x, intermediates_only=True, output_fmt="NLC", norm=False)
    for i, ref in enumerate(inter):  # NLC without prefix tokens: compare the patch-token mean via full blocks
        assert 3 * ref.shape[-1] == feats[f"blocks.{i}"].shape[1]
    with torch.no_grad():
        tokens = model.patch_embed(x)
        tokens = model._pos_embed(tokens)
        tokens = model.norm_pre(model.patch_drop(tokens))
        for i, block in enumerate(model.blocks):
            tokens = block(tokens)
            torch.testing.assert_close(feats[f"blocks.{i}"], mean_std_max(tokens, 1))


def test_captured_values_match_torchvision_feature_extractor():
    model = torchvision.models.resnet18(weights=None).eval()
    x = torch.randn(2, 3, 64, 64)
    taps = LayerTaps(model)
    extractor = create_feature_extractor(model, return_nodes={n: n for n in taps.names})
    with torch.no_grad():
        _, feats = taps.run(lambda: model(x))
        ref = extractor(x)
    for name in taps.names:
        torch.testing.assert_close(feats[name], mean_std_max(ref[name], (2, 3)))


def test_inplace_activation_does_not_corrupt_capture():
    conv = nn.Conv2d(3, 4, 3)
    model = nn.Sequential(conv, nn.ReLU(inplace=True))
    x = torch.randn(2, 3, 8, 8)
    taps = LayerTaps(model, layers=["0"])
    with torch.no_grad():
        _, feats = taps.run(lambda: model(x))
        expected = mean_std_max(conv(x), (2, 3))  # pre-activation values, negative entries included
    torch.testing.assert_close(feats["0"], expected)
    assert (feats["0"] < 0).any()


def test_wrong_layer_name_lists_close_matches():
    model = torchvision.models.resnet18(weights=None)
    with pytest.raises(LayerNotFoundError, match=r"'layer3'"):
        LayerTaps(model, layers=["layer_3"])
    with pytest.raises(LayerNotFoundError, match="named_modules"):
        LayerTaps(model, layers={"IR": "does.not.exist"})


def test_layers_map_labels_are_kept():
    model = torchvision.models.resnet18(weights=None)
    taps = LayerTaps(model, layers={"UV": "layer1", "IR": "layer4"})
    assert [t.label for t in taps.taps] == ["UV", "IR"]


def test_hooks_come_off_even_when_forward_raises(small_cnn):
    taps = LayerTaps(small_cnn)
    with pytest.raises(RuntimeError):
        taps.run(lambda: small_cnn(torch.randn(2, 5, 16, 16)))  # wrong channel count
    assert _hook_count(small_cnn) == 0


def test_hook_that_never_fires_is_an_error():
    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(3, 3), nn.Linear(3, 3)

        def forward(self, x):
            return self.a(x)

    model = Branchy()
    taps = LayerTaps(model, layers=["a", "b"])
    with pytest.raises(HookNotFiredError, match="'b'"):
        taps.run(lambda: model(torch.randn(2, 3)))


def test_depth_follows_execution_order_not_registration_order():
    class Reversed(nn.Module):
        def __init__(self):
            super().__init__()
            self.late, self.early = nn.Linear(4, 4), nn.Linear(4, 4)

        def forward(self, x):
            return self.late(torch.relu(self.early(x)))

    model = Reversed()
    taps = LayerTaps(model, layers=["late", "early"])
    taps.run(lambda: model(torch.randn(2, 4)))
    assert taps.names == ["early", "late"] and taps.taps[0].depth == 0.0
