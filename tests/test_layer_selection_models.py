"""Automatic tap selection over every torchvision classifier, a sample of timm, wrappers and hand-written models."""

import contextlib
import functools
import re
import warnings

import pytest
import timm
import torch
import torchvision
from library_fixtures import mean_std_max
from torch import nn

from deepdrift import DeepDriftWarning
from deepdrift.layer_selection import auto_select_layers
from deepdrift.taps import LayerTaps

TORCHVISION = torchvision.models.list_models(module=torchvision.models)
SMALLEST = {  # family -> its builder with the fewest parameters (checked below); these also run a real forward
    "alexnet": "alexnet",
    "convnext": "convnext_tiny",
    "densenet": "densenet121",
    "efficientnet": "efficientnet_b0",
    "googlenet": "googlenet",
    "inception": "inception_v3",
    "maxvit": "maxvit_t",
    "mnasnet": "mnasnet0_5",
    "mobilenet": "mobilenet_v3_small",
    "regnet": "regnet_y_400mf",
    "resnet": "resnet18",
    "shufflenet": "shufflenet_v2_x0_5",
    "squeezenet": "squeezenet1_1",
    "swin": "swin_t",
    "vgg": "vgg11",
    "vit": "vit_b_16",
}
FORWARD_KWARGS = {
    "vit_b_16": {"image_size": 64},
    "googlenet": {"init_weights": False},
    "inception_v3": {"init_weights": False},
}  # random weights either way; the default init is slow
INPUT_SIZE = {"inception_v3": 75, "maxvit_t": 224}  # inception needs >= 75; MaxViT's 7x7 partitions need 224


def family(name: str) -> str:
    """Families as the selection rules see them: versions together (MobileNet v2/v3, EfficientNet v1/v2, Swin
    v1/v2, RegNet X/Y), ResNeXt and Wide ResNet with ResNet."""
    prefix = re.match(r"[a-z]+", name).group(0)
    return {"resnext": "resnet", "wide": "resnet"}.get(prefix, prefix)


@contextlib.contextmanager
def parameters_on_meta():
    """Like accelerate's init_empty_weights: real construction code, parameters and buffers moved to meta.

    For the builders that compute their widths with tensors (RegNet) and so cannot run under torch.device("meta").
    """
    register_parameter, register_buffer = nn.Module.register_parameter, nn.Module.register_buffer

    def on_meta_parameter(module, name, param):
        if param is not None:
            param = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)
        register_parameter(module, name, param)

    def on_meta_buffer(module, name, tensor, persistent=True):
        register_buffer(module, name, None if tensor is None else tensor.to("meta"), persistent)

    nn.Module.register_parameter, nn.Module.register_buffer = on_meta_parameter, on_meta_buffer
    try:
        yield
    finally:
        nn.Module.register_parameter, nn.Module.register_buffer = register_parameter, register_buffer


@functools.cache
def build_on_meta(name: str) -> nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # googlenet/inception: future default init
        try:
            with torch.device("meta"):
                return torchvision.models.get_model(name, weights=None)
        except NotImplementedError:
            with parameters_on_meta():
                return torchvision.models.get_model(name, weights=None)


def n_params(name: str) -> int:
    return sum(p.numel() for p in build_on_meta(name).parameters())


def subtree_end(order: list[str], name: str) -> int:
    """Position (in named_modules order) where the module's output is produced: after its last descendant."""
    return max(i for i, n in enumerate(order) if n == name or n.startswith(name + "."))


@pytest.mark.parametrize("name", TORCHVISION)
def test_every_torchvision_classifier_gets_taps_spanning_its_depth(name):
    model = build_on_meta(name)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeepDriftWarning)
        names, _ = auto_select_layers(model)
    order = [n for n, _ in model.named_modules()]
    assert len(names) >= 4 and len(set(names)) == len(names)
    assert all(n in order for n in names)
    assert subtree_end(order, names[0]) <= len(order) / 4
    assert subtree_end(order, names[-1]) >= 3 * (len(order) - 1) / 4
    assert SMALLEST.get(family(name)), f"{name}: family {family(name)!r} has no representative with a forward test"
    build_on_meta.cache_clear() if n_params(name) > 200e6 else None  # keep the cache small


@pytest.mark.parametrize("fam", sorted(SMALLEST))
def test_forward_representative_is_the_smallest_of_its_family(fam):
    members = [n for n in TORCHVISION if family(n) == fam]
    assert SMALLEST[fam] == min(members, key=n_params)


@pytest.mark.parametrize("name", sorted(SMALLEST.values()))
def test_every_tap_fires_with_three_features_per_channel(name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        model = torchvision.models.get_model(name, weights=None, **FORWARD_KWARGS.get(name, {})).eval()
    size = INPUT_SIZE.get(name, 64)
    taps = LayerTaps(model)
    raw, handles = {}, []
    for tap in taps.names:  # reference: the raw outputs, read by hooks of our own
        module = model.get_submodule(tap)  # clone: DenseNet applies an in-place ReLU to norm5's output
        handles.append(module.register_forward_hook(lambda m, i, o, tap=tap: raw.__setitem__(tap, o.clone())))
    with torch.no_grad():
        _, feats = taps.run(lambda: model(torch.randn(2, 3, size, size)), batch_size=2)
    for handle in handles:
        handle.remove()
    assert sum(len(m._forward_hooks) for m in model.modules()) == 0
    assert list(feats) == taps.names and len(feats) >= 4
    for tap in taps.taps:
        out = raw[tap.name]
        if out.ndim == 2:  # a hidden Linear (VGG/AlexNet classifier): the vector itself
            torch.testing.assert_close(feats[tap.name], out)
            continue
        dims = (1, 2) if name.startswith("swin") else (2, 3) if out.ndim == 4 else 1  # Swin stages are NHWC
        channels = out.shape[-1] if name.startswith("swin") or out.ndim == 3 else out.shape[1]
        assert feats[tap.name].shape == (2, 3 * channels) and tap.n_features == 3 * channels
        torch.testing.assert_close(feats[tap.name], mean_std_max(out, dims))


TIMM_SAMPLE = {  # name -> create_model kwargs: small inputs where the architecture allows
    "resnet10t": {},
    "convnext_atto": {},
    "efficientnet_lite0": {},
    "mobilenetv3_small_050": {},
    "regnetx_002": {},
    "vit_tiny_patch16_224": {"img_size": 32},
    "deit_tiny_patch16_224": {"img_size": 32},
    "swin_tiny_patch4_window7_224": {"img_size": 64, "window_size": 2},
    "maxvit_pico_rw_256": {"img_size": 64},
    "coatnet_pico_rw_224": {"img_size": 64},
    "levit_128s": {"img_size": 64},
    "beit_base_patch16_224": {"img_size": 32, "depth": 4},
}


@pytest.mark.parametrize("name", sorted(TIMM_SAMPLE))
def test_timm_sample_gets_four_taps_and_finite_features(name):
    kwargs = TIMM_SAMPLE[name]
    model = timm.create_model(name, pretrained=False, **kwargs).eval()
    size = kwargs.get("img_size", 64)
    taps = LayerTaps(model)
    assert len(taps.names) >= 4
    with torch.no_grad():
        _, feats = taps.run(lambda: model(torch.randn(2, 3, size, size)), batch_size=2)
    assert all(f.shape[0] == 2 and f.shape[1] > 0 and torch.isfinite(f).all() for f in feats.values())


class Normalise(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))

    def forward(self, x):
        return x - self.mean


def test_preprocessing_wrapper_is_looked_through():
    model = nn.Sequential(Normalise(), torchvision.models.resnet18(weights=None)).eval()
    taps = LayerTaps(model)
    assert taps.names == ["1.maxpool", "1.layer1", "1.layer2", "1.layer3", "1.layer4"]
    assert taps.rule == "torchvision-resnet"
    with torch.no_grad():
        _, feats = taps.run(lambda: model(torch.randn(2, 3, 32, 32)), batch_size=2)
    assert feats["1.layer4"].shape == (2, 3 * 512)


def test_data_parallel_and_compiled_models_are_looked_through():
    resnet = torchvision.models.resnet18(weights=None).eval()
    parallel = nn.DataParallel(resnet)
    taps = LayerTaps(parallel)
    assert taps.names == ["module.maxpool", "module.layer1", "module.layer2", "module.layer3", "module.layer4"]
    with torch.no_grad():
        _, feats = taps.run(lambda: parallel(torch.randn(2, 3, 32, 32)), batch_size=2)
    assert feats["module.layer1"].shape == (2, 3 * 64)
    compiled = torch.compile(resnet)  # lazy: nothing is compiled until a forward, which this test does not run
    names, rule = auto_select_layers(compiled)
    assert names == [f"_orig_mod.{n}" for n in ("maxpool", "layer1", "layer2", "layer3", "layer4")]
    assert rule == "torchvision-resnet" and all(compiled.get_submodule(n) is not None for n in names)
    timm_model = nn.DataParallel(timm.create_model("resnet10t", pretrained=False))
    names, rule = auto_select_layers(timm_model)
    assert rule == "timm-feature-info" and names[0].startswith("module.") and len(names) >= 4


class HandWrittenCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(2),
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(128, 64), nn.ReLU(), nn.Dropout(), nn.Linear(64, 10))

    def forward(self, x):
        return self.classifier(self.features(x))


def test_containers_are_descended_into_and_the_head_is_skipped():
    model = HandWrittenCNN().eval()
    taps = LayerTaps(model)
    assert taps.names == ["features.2", "features.5", "features.8", "classifier.2"]
    with torch.no_grad():
        _, feats = taps.run(lambda: model(torch.randn(3, 3, 16, 16)), batch_size=3)
    assert [f.shape[1] for f in feats.values()] == [24, 48, 96, 64]


def test_long_plain_stack_keeps_stage_boundaries():
    convs = []
    for c_in, c_out, pool in [
        (3, 8, False),
        (8, 8, True),
        (8, 16, False),
        (16, 16, True),
        (16, 32, False),
        (32, 32, True),
        (32, 32, False),
        (32, 32, True),
    ]:
        convs += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU()] + ([nn.MaxPool2d(2)] if pool else [])
    names, _ = auto_select_layers(nn.Sequential(*convs, nn.Flatten(), nn.Linear(32, 10)))
    assert names == ["1", "4", "9", "14", "19"]  # the first layer, then the output of every pool


def test_too_few_taps_warn_with_how_to_name_layers():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    with pytest.warns(DeepDriftWarning, match=r"layers=\[\.\.\.\].*deepdrift layers MODEL.*named_modules") as rec:
        LayerTaps(model)
    assert rec[0].filename == __file__  # points at the user's call, not into the library
