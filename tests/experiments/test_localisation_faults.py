"""Fault injection: faults land where we say, and every tap before the fault sees exactly the clean activations."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from deepdrift import FailureMode, LayerTaps
from experiments.features import extract_features, tap_order
from experiments.localisation.evaluate import Fault, expected_mode
from experiments.localisation.faults import (
    INTERNAL_FAULTS,
    fault_seed,
    flip_exponent_bits,
    input_fault,
    internal_fault,
)
from experiments.localisation.sites import FaultSite, completion_order, find_sites, onset_of, pre_onset_change
from experiments.models import CifarResNet, small_cnn

STRENGTH = {
    "weight_noise": 1.0,
    "dead_channels": 0.5,
    "stuck_channels": 0.25,
    "sign_flip": 0.5,
    "scale": 3.0,
    "bit_flip": 20,
}


@pytest.fixture(scope="module")
def cnn() -> nn.Module:
    torch.manual_seed(0)
    return small_cnn(10, 1, 32).eval()


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.randn(48, 1, 32, 32, generator=torch.Generator().manual_seed(1))


def test_ground_truth_onset_in_a_sequential(cnn: nn.Module, images: torch.Tensor) -> None:
    taps = tap_order(cnn, images[:4])
    assert taps == ["2", "5", "8"]
    order = completion_order(cnn, images[:4])
    assert [onset_of(m, taps, order) for m in ("0", "1", "2", "3", "6", "10")] == [0, 0, 0, 1, 2, None]


def test_ground_truth_onset_inside_tapped_blocks() -> None:
    model = CifarResNet(20, 10, 1).eval()
    probe = torch.randn(2, 1, 32, 32)
    taps = ["layer1", "layer2", "layer3"]
    order = completion_order(model, probe)
    assert onset_of("conv1", taps, order) == 0  # the stem feeds the first tapped block
    assert onset_of("layer2.0.conv1", taps, order) == 1
    assert onset_of("layer2.2.conv2", taps, order) == 1
    assert onset_of("layer3.0.downsample.0", taps, order) == 2
    assert onset_of("fc", taps, order) is None
    with pytest.raises(ValueError, match="did not run"):
        onset_of("not_a_module", taps, order)


def test_sites_cover_every_requested_depth(cnn: nn.Module, images: torch.Tensor) -> None:
    sites = find_sites(cnn, ["2", "5", "8"], images[:4], n_depths=3)
    assert sites == [FaultSite("0", 0), FaultSite("3", 1), FaultSite("6", 2)]
    assert [s.onset for s in find_sites(cnn, ["2", "5", "8"], images[:4], n_depths=2)] == [0, 2]


@pytest.mark.parametrize("family", INTERNAL_FAULTS)
def test_taps_before_the_fault_are_exactly_unchanged(cnn: nn.Module, images: torch.Tensor, family: str) -> None:
    taps = ["2", "5", "8"]
    clean = extract_features(cnn, images, taps, batch_size=16)
    faulted_model = internal_fault(cnn, "6", family, STRENGTH[family], seed=3, probe=images[:16])
    faulted = extract_features(faulted_model, images, taps, batch_size=16)
    assert pre_onset_change(clean, faulted, onset=2) == 0.0
    change = (faulted.taps["8"] - clean.taps["8"]).abs().nan_to_num(nan=1.0).max()
    assert float(change) > 0.0  # ... and the fault does reach its onset tap


def test_internal_fault_never_touches_the_clean_model(cnn: nn.Module, images: torch.Tensor) -> None:
    before = {k: v.clone() for k, v in cnn.state_dict().items()}
    hooks = len(cnn.get_submodule("3")._forward_hooks)
    for family in INTERNAL_FAULTS:
        internal_fault(cnn, "3", family, STRENGTH[family], seed=0, probe=images[:8])
    assert all(torch.equal(before[k], v) for k, v in cnn.state_dict().items())
    assert len(cnn.get_submodule("3")._forward_hooks) == hooks


def test_bit_flips_change_exactly_count_weights_by_powers_of_two() -> None:
    weight = torch.rand(100) + 0.5
    original = weight.clone()
    flip_exponent_bits(weight, 7, torch.Generator().manual_seed(0))
    changed = weight != original
    assert int(changed.sum()) == 7
    ratio = (weight[changed] / original[changed]).log2()
    assert torch.allclose(ratio, ratio.round())  # only the exponent moved: the mantissa is intact


def test_dead_channels_are_zero_and_stuck_channels_constant(cnn: nn.Module, images: torch.Tensor) -> None:
    for family in ("dead_channels", "stuck_channels"):
        broken = internal_fault(cnn, "0", family, 0.25, seed=1, probe=images[:16])
        captured: list[torch.Tensor] = []
        handle = broken.get_submodule("0").register_forward_hook(lambda _m, _i, o, sink=captured: sink.append(o))
        with torch.no_grad():
            broken(images[:4])
        handle.remove()
        per_channel_spread = captured[0].transpose(0, 1).reshape(32, -1).std(dim=1)
        assert int((per_channel_spread == 0).sum()) == 8, family


def test_input_faults_are_deterministic_and_keep_the_pixel_range() -> None:
    mean, std = 0.286, 0.353
    images = (torch.rand(8, 1, 32, 32, generator=torch.Generator().manual_seed(2)) - mean) / std
    for family, strength in [
        ("pixel_noise", 0.2),
        ("dead_pixels", 0.1),
        ("stuck_pixels", 0.05),
        ("gain", 0.5),
        ("offset", 0.3),
        ("blur", 1.0),
        ("region_zero", 0.2),
        ("region_invert", 0.2),
    ]:
        fault = input_fault(family, strength, mean, std, seed=fault_seed(family))
        a, b = fault(images), fault(images)
        assert torch.equal(a, b), family
        pixels = a * std + mean
        assert not torch.equal(a, images), family
        assert float(pixels.min()) >= -1e-5 and float(pixels.max()) <= 1 + 1e-5, family
    with pytest.raises(ValueError, match="multi-channel"):
        input_fault("channel_drop", 1, mean, std, 0)(images)
    rgb = images.repeat(1, 3, 1, 1)[:2]
    dropped = input_fault("channel_drop", 1, 0.0, 1.0, 0)(rgb)
    assert int((dropped.flatten(2).abs().sum(dim=2) == 0).sum()) == 2  # one channel zeroed in each image


def test_expected_modes_follow_the_onset_zone(cnn: nn.Module, images: torch.Tensor) -> None:
    taps = LayerTaps(cnn, layers=["2", "5", "8"]).taps
    assert expected_mode(Fault("input", "blur", 1.0), taps) is FailureMode.SENSOR_FAILURE
    assert expected_mode(Fault("none", "clean", 0.0), taps) is FailureMode.STABLE
    zones = {0: FailureMode.SENSOR_FAILURE, 1: FailureMode.SPURIOUS_CORRELATION, 2: FailureMode.GEOMETRIC_COLLAPSE}
    for onset, mode in zones.items():
        site = FaultSite(str(3 * onset), onset)
        assert expected_mode(Fault("internal", "scale", 2.0, site), taps) is mode
