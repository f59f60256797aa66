"""Model fingerprints: a calibration made on one model is recognised as foreign on another."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import pytest
import torch
import torchvision.models as tvm
from calibration_files import raw_parts, tiny_calibration, write_raw
from torch import nn

from deepdrift import CalibrationMismatchError, CorruptCalibrationError, LayerNotFoundError
from deepdrift.calibration import Calibration, read_header
from deepdrift.fingerprint import (
    ModelFingerprint,
    check_fingerprint,
    fingerprint_differences,
    fingerprint_model,
    sample_shape,
)
from deepdrift.layer_selection import auto_select_layers


def _resnet(depth: int, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return (tvm.resnet18 if depth == 18 else tvm.resnet34)(weights=None).eval()


def _fingerprint(model: nn.Module, **kwargs) -> ModelFingerprint:
    return fingerprint_model(model, auto_select_layers(model)[0], **kwargs)


def test_resnet18_calibration_is_refused_on_a_resnet34_and_the_message_names_a_shape():
    saved, current = _fingerprint(_resnet(18)), _fingerprint(_resnet(34))
    assert saved.taps == current.taps  # same tap names: only the shapes tell the models apart
    diffs = fingerprint_differences(saved, current)
    assert "layer1.2.conv1.weight: absent in the file, (64, 64, 3, 3) here" in diffs
    assert "parameters: 11,689,512 in the file, 21,797,672 here" in diffs
    layer_diffs = [d for d in diffs if not d.startswith("parameters:")]
    assert all(re.fullmatch(r"layer\d\.\S+: .+ in the file, .+ here", d) for d in layer_diffs)
    with pytest.raises(CalibrationMismatchError) as info:
        check_fingerprint(saved, current, source="r18.safetensors")
    message = str(info.value)
    assert message.startswith("r18.safetensors was calibrated on a different model: layer1.2.conv1.weight")
    assert re.search(r"layer3\.\d\.\w+\.weight: absent in the file, \(256, 256, 3, 3\) here", message)
    assert "allow_transfer=True" in message and "Recalibrate on this model" in message
    assert "\n" not in message


def test_identical_architectures_do_not_differ_without_a_digest():
    one, two = _resnet(18, seed=0), _resnet(18, seed=1)
    assert fingerprint_differences(_fingerprint(one), _fingerprint(two)) == []
    check_fingerprint(_fingerprint(one), _fingerprint(two), source="f")


def test_the_weights_digest_tells_retrained_models_apart():
    model = _resnet(18, seed=0)
    a = _fingerprint(model, weights_digest=True)
    assert a.weights_digest is not None and re.fullmatch(r"sha256:[0-9a-f]{64}", a.weights_digest)
    assert _fingerprint(_resnet(18, seed=0), weights_digest=True) == a  # same weights, same digest
    retrained = _fingerprint(_resnet(18, seed=1), weights_digest=True)
    assert [d.split(":")[0] for d in fingerprint_differences(a, retrained)] == ["weights"]
    with torch.no_grad():
        model.layer4[1].bn2.running_mean += 1e-3  # a buffer counts too
    assert _fingerprint(model, weights_digest=True).weights_digest != a.weights_digest
    assert fingerprint_differences(a, _fingerprint(model)) == []  # compared only when both sides have one


def test_model_class_and_input_shape_differences_are_named():
    saved = ModelFingerprint(model_class="torchvision.models.resnet.ResNet", input_shape=(3, 224, 224))
    current = ModelFingerprint(model_class="timm.models.vision_transformer.VisionTransformer", input_shape=(3, 32, 32))
    assert fingerprint_differences(saved, current) == [
        "model class: torchvision.models.resnet.ResNet in the file, timm.models.vision_transformer.VisionTransformer "
        "here",
        "input shape per sample: (3, 224, 224) in the file, (3, 32, 32) here",
    ]


def test_fields_unknown_on_either_side_are_not_compared():
    full = _fingerprint(_resnet(18), input_shape=(3, 64, 64), weights_digest=True)
    assert fingerprint_differences(ModelFingerprint(), full) == []
    assert fingerprint_differences(full, ModelFingerprint(model_class=full.model_class)) == []
    assert fingerprint_differences(full, replace(full, input_shape=None, weights_digest=None)) == []
    check_fingerprint(None, full, source="old.safetensors")  # files from before fingerprints load as before


def test_tap_lists_that_differ_are_named():
    saved, current = ModelFingerprint(taps=("a", "b")), ModelFingerprint(taps=("b", "c"))
    assert fingerprint_differences(saved, current) == ["taps: ['a'] only in the file, ['c'] only here"]
    assert fingerprint_differences(saved, ModelFingerprint(taps=("b", "a"))) == []  # the order is adopted on load


def test_json_round_trip_and_lazy_modules():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.LazyLinear(5))
    fp = fingerprint_model(model, ["0", "1"], input_shape=(3, 8, 8))
    assert fp.shapes["1"]["weight"] is None and fp.shapes["0"]["weight"] == (4, 3, 3, 3)
    assert ModelFingerprint.from_json(json.loads(json.dumps(fp.to_json()))) == fp
    model(torch.zeros(1, 3, 8, 8).flatten(1)[:, :3].reshape(1, 3, 1, 1).expand(1, 3, 8, 8))
    assert fingerprint_differences(fp, fingerprint_model(model, ["0", "1"])) == []  # unknown then, known now
    assert fp.with_input_shape([3, 16, 16]).input_shape == (3, 16, 16)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "must be an object"),
        ({"surprise": 1}, "unknown field(s) ['surprise']"),
        ({"version": 2}, "a newer one needs a newer DeepDrift"),
        ({"version": True}, "version must be an integer"),
        ({"model_class": 3}, "model_class must be a string"),
        ({"taps": ["a", 1]}, "taps must be a list of strings"),
        ({"shapes": {"a": [1, 2]}}, "shapes must map each tap"),
        ({"shapes": {"a": {"w": [1, -2]}}}, "shapes['a']['w'] must be a list of integers >= 0"),
        ({"shapes": {"a": {"w": [1, True]}}}, "must be a list of integers >= 0"),
        ({"input_shape": "3x32x32"}, "input_shape must be a list of integers"),
        ({"weights_digest": "md5:00"}, "weights_digest must be 'sha256:' and 64 hex digits"),
    ],
)
def test_from_json_names_malformed_fields(data, message):
    with pytest.raises(CorruptCalibrationError) as info:
        ModelFingerprint.from_json(data, source="cal.safetensors")
    assert message in str(info.value) and str(info.value).startswith("cal.safetensors: metadata.fingerprint")
    assert "recalibrate" in str(info.value)


def test_unknown_tap_is_a_layer_not_found_error():
    with pytest.raises(LayerNotFoundError, match="'layer9' is not a module of ResNet"):
        fingerprint_model(_resnet(18), ["layer9"])


def test_compiled_models_are_fingerprinted_as_the_model_inside():
    model = nn.Sequential(nn.Linear(3, 4))
    compiled = torch.compile(model)
    assert fingerprint_model(compiled, ["0"]) == fingerprint_model(model, ["0"])


def test_sample_shape_of_loader_batches():
    x = torch.zeros(8, 3, 32, 32)
    assert sample_shape(x) == sample_shape((x, torch.zeros(8))) == sample_shape({"pixel_values": x}) == (3, 32, 32)
    assert sample_shape({"sample": x, "timestep": torch.zeros(8)}) == (3, 32, 32)
    assert sample_shape({"labels": x}) is None and sample_shape("text") is None


def test_a_fingerprint_travels_in_the_calibration_file(tmp_path):
    cal = tiny_calibration()
    fp = fingerprint_model(nn.Sequential(nn.Linear(3, 2)), ["0"], input_shape=(3,), weights_digest=True)
    path = replace(cal, metadata={**cal.metadata, "fingerprint": fp.to_json()}).save(tmp_path / "fp.safetensors")
    assert Calibration.load(path).fingerprint == fp
    assert read_header(path)["metadata"]["fingerprint"]["weights_digest"] == fp.weights_digest
    header, tensors = raw_parts(path)
    header["metadata"]["fingerprint"]["taps"] = 5
    broken = write_raw(tmp_path / "bad.safetensors", header, tensors)
    with pytest.raises(CorruptCalibrationError, match=r"bad\.safetensors: metadata\.fingerprint taps must be a list"):
        Calibration.load(broken)
    with pytest.raises(CorruptCalibrationError, match=r"^metadata\.fingerprint taps must be a list"):
        replace(cal, metadata={"fingerprint": {"taps": 5}})  # hand-built: refused at construction
