"""No silent wrong answers: bad configs, hand-built calibrations and damaged files fail early with one clear line."""

from __future__ import annotations

import copy
import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from calibration_files import raw_parts, tiny_calibration, write_raw

from deepdrift import CalibrationConfig, CalibrationMismatchError, CorruptCalibrationError
from deepdrift.calibration import Calibration, LayerReference, read_header


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    path = tiny_calibration().save(tmp_path_factory.mktemp("good") / "good.safetensors")
    return raw_parts(path)


def _load_damaged(tmp_path, parts, edit_header=None, edit_tensors=None, raw_text=None):
    header, tensors = copy.deepcopy(parts[0]), dict(parts[1])
    if edit_header:
        edit_header(header)
    if edit_tensors:
        edit_tensors(tensors)
    return Calibration.load(write_raw(tmp_path / "bad.safetensors", header, tensors, raw_text=raw_text))


# ------------------------------------------------------------------------------------------------ config
@pytest.mark.parametrize(
    ("kwargs", "error", "allowed"),
    [
        ({"variance_floor": -1e-3}, ValueError, "variance_floor must be a finite number in [0.0, inf)"),
        ({"variance_floor": float("nan")}, ValueError, "variance_floor"),
        ({"seed": -1}, ValueError, "seed must be an integer >= 0"),
        ({"seed": 1.0}, TypeError, "seed must be an integer"),
        ({"seed": True}, TypeError, "got True (bool)"),
        ({"seed": 2**32}, ValueError, "seed must be an integer >= 0 and <= 4294967295"),
        ({"reservoir_size": 1}, ValueError, "reservoir_size must be an integer >= 2"),
        ({"reservoir_size": 64.0}, TypeError, "reservoir_size must be an integer"),
        ({"reservoir_size": "64"}, TypeError, "reservoir_size"),
        ({"principal_max_features": -1}, ValueError, "principal_max_features must be an integer >= 0"),
        ({"principal_max_features": False}, TypeError, "principal_max_features"),
        ({"holdout_fraction": 1.0}, ValueError, "holdout_fraction must be a finite number in (0.0, 1.0)"),
        ({"holdout_fraction": True}, TypeError, "holdout_fraction"),
        ({"holdout_fraction": float("inf")}, ValueError, "holdout_fraction"),
        ({"principal_variance": 0.0}, ValueError, "principal_variance must be a finite number in (0.0, 1.0]"),
        ({"principal_variance": None}, TypeError, "principal_variance"),
    ],
)
def test_config_refuses_bad_values_and_says_what_is_allowed(kwargs, error, allowed):
    with pytest.raises(error) as info:
        CalibrationConfig(**kwargs)
    assert allowed in str(info.value)


def test_config_normalises_numbers_so_it_round_trips():
    config = CalibrationConfig(variance_floor=0, principal_variance=1, holdout_fraction=0.25)
    assert isinstance(config.variance_floor, float) and config.variance_floor == 0.0
    assert CalibrationConfig.from_json(json.loads(json.dumps(config.__dict__))) == config
    numpy_config = CalibrationConfig(seed=np.int64(3), reservoir_size=np.int32(8), variance_floor=np.float32(0.5))
    assert type(numpy_config.seed) is int and type(numpy_config.variance_floor) is float


# ------------------------------------------------------------------------------------- in-memory invariants
def _with_layer(cal: Calibration, name: str = "conv", **changes) -> Calibration:
    layers = dict(cal.layers)
    layers[name] = replace(layers[name], **changes)
    return replace(cal, layers=layers)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: {"mean": torch.tensor([0.0, math.nan, 1.0], dtype=torch.float64)}, "mean holds 1 NaN/Inf"),
        (lambda r: {"var": torch.tensor([1.0, -1.0, 1.0], dtype=torch.float64)}, "var holds 1 value(s) <= 0"),
        (lambda r: {"var": torch.tensor([1.0, math.inf, 1.0], dtype=torch.float64)}, "var holds 1 NaN/Inf"),
        (lambda r: {"mean": r.mean.float()}, "mean must be a 1-d tensor of torch.float64"),
        (lambda r: {"count": 1}, "count must be an integer >= 2"),
        (lambda r: {"count": True}, "count must be an integer >= 2"),
        (lambda r: {"holdout": r.holdout[:, :2]}, "holdout has shape (10, 2), expected (held-out samples, 3)"),
        (lambda r: {"holdout": r.holdout.clone().fill_(math.inf)}, "holdout holds 30 NaN/Inf"),
        (lambda r: {"principal": r.principal[:2]}, "principal has shape"),
        (lambda r: {"principal": r.principal * math.nan}, "principal holds"),
        (lambda r: {"holdout": r.holdout[:4]}, "different numbers of held-out samples"),
        (lambda r: {"count": 10_000}, "exceed n_seen"),
    ],
)
def test_hand_built_calibration_with_bad_values_fails_at_construction(change, message):
    cal = tiny_calibration()
    with pytest.raises(CorruptCalibrationError) as info:
        _with_layer(cal, **change(cal.layers["conv"]))
    assert message in str(info.value) and "'conv'" in str(info.value)


def test_hand_built_calibration_needs_layers_and_a_config():
    cal = tiny_calibration()
    with pytest.raises(CorruptCalibrationError, match="at least one layer"):
        replace(cal, layers={})
    with pytest.raises(CorruptCalibrationError, match="must be a CalibrationConfig"):
        replace(cal, config={"seed": 0})
    with pytest.raises(CorruptCalibrationError, match="LayerReference"):
        replace(cal, layers={"conv": cal.layers["conv"].mean})
    with pytest.raises(CorruptCalibrationError, match="n_seen must be an integer"):
        replace(cal, n_seen=50.0)
    with pytest.raises(CorruptCalibrationError, match=r"metadata\.fingerprint model_class must be a string"):
        replace(cal, metadata={"fingerprint": {"model_class": 1}})


def test_finalize_output_is_valid_and_exposes_no_fingerprint_by_default():
    cal = tiny_calibration()
    cal.validate()
    assert isinstance(cal.layers["conv"], LayerReference) and cal.fingerprint is None


# ------------------------------------------------------------------------------------------- damaged files
def _set(path, value):
    def edit(header):
        target = header
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return edit


def _drop(path):
    def edit(header):
        target = header
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return edit


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_set(("n_seen",), "50"), "n_seen must be an integer >= 2, got '50' (str)"),
        (_set(("n_seen",), 1), "n_seen must be an integer >= 2"),
        (_drop(("layers",)), "header field(s) ['layers'] are missing"),
        (_drop(("config",)), "['config'] are missing"),
        (_set(("layers",), {}), "layers must be a non-empty list"),
        (_set(("layers",), []), "layers must be a non-empty list"),
        (_set(("layers", 0), "conv"), "layers[0] must be an object"),
        (_set(("layers", 0, "count"), True), "layers[0].count ('conv') must be an integer >= 2, got True (bool)"),
        (_set(("layers", 1, "n_features"), 2.0), "layers[1].n_features ('head.fc') must be an integer >= 1"),
        (_set(("layers", 0, "n_holdout"), -1), "n_holdout ('conv') must be an integer >= 0"),
        (_set(("layers", 0, "principal_axes"), 9), "principal_axes ('conv') = 9 exceeds n_features = 3"),
        (_set(("layers", 0, "name"), 7), "layers[0].name must be a non-empty string"),
        (_set(("layers", 0, "extra"), 1), "layers[0] has unknown field(s) ['extra']"),
        (_drop(("layers", 0, "count")), "misses field(s) ['count']"),
        (_set(("layers", 1, "name"), "conv"), "layer name(s) ['conv'] appear more than once"),
        (_set(("config", "mystery"), 1), "unknown config key(s) ['mystery']"),
        (_set(("config", "seed"), -3), "config: CalibrationConfig.seed must be an integer >= 0"),
        (_set(("config", "variance_floor"), -1.0), "config: CalibrationConfig.variance_floor"),
        (_set(("config",), [1, 2]), "config must be an object"),
        (_set(("metadata",), "x"), "metadata must be an object"),
        (_set(("library_version",), 3), "library_version must be a string"),
        (_set(("surprise",), 1), "unknown header field(s) ['surprise']"),
        (_set(("format",), "other"), "header format is 'other' (str)"),
        (_set(("format_version",), "1"), "format_version must be an integer >= 1, got '1' (str)"),
        (_set(("format_version",), True), "format_version must be an integer >= 1"),
        (_set(("metadata", "fingerprint"), {"taps": "conv"}), "metadata.fingerprint taps must be a list of strings"),
        (_set(("layers", 0, "n_features"), 4), "tensor 'conv::mean' has shape (3,), the header says (4,)"),
        (_set(("layers", 0, "principal_axes"), 0), "tensor(s) ['conv::principal'] are not described by the header"),
    ],
)
def test_bad_header_fields_are_named(tmp_path, parts, edit, message):
    with pytest.raises(CorruptCalibrationError) as info:
        _load_damaged(tmp_path, parts, edit_header=edit)
    text = str(info.value)
    assert message in text and "\n" not in text and "recalibrate" in text


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ('{"format": "deepdrift.calibration", ', "the JSON header does not parse"),
        ("[1, 2, 3]", "not an object"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ],
)
def test_unreadable_json_is_a_corrupt_calibration(tmp_path, parts, raw, message):
    with pytest.raises(CorruptCalibrationError, match=message):
        _load_damaged(tmp_path, parts, raw_text=raw)


def test_metadata_nested_too_deep_is_refused_before_anything_recurses(tmp_path, parts):
    text = json.dumps({**parts[0], "metadata": {"deep": "__NEST__"}}).replace('"__NEST__"', "[" * 500 + "]" * 500)
    with pytest.raises(CorruptCalibrationError, match="nested deeper than 32 levels"):
        _load_damaged(tmp_path, parts, raw_text=text)


def _tensor_edit(key, fn):
    def edit(tensors):
        tensors[key] = fn(tensors[key].clone())

    return edit


def _poke(index, value):
    def fn(t):
        t.view(-1)[index] = value
        return t

    return fn


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_tensor_edit("conv::mean", _poke(1, math.nan)), "layer 'conv': mean holds 1 NaN/Inf value(s) of 3"),
        (_tensor_edit("conv::var", _poke(0, -2.0)), "layer 'conv': var holds 1 value(s) <= 0"),
        (_tensor_edit("conv::var", _poke(0, 0.0)), "var holds 1 value(s) <= 0"),
        (_tensor_edit("head.fc::var", _poke(1, math.inf)), "layer 'head.fc': var holds 1 NaN/Inf"),
        (_tensor_edit("conv::holdout", _poke(5, -math.inf)), "holdout holds 1 NaN/Inf"),
        (_tensor_edit("conv::principal", _poke(0, math.nan)), "principal holds 1 NaN/Inf"),
        (_tensor_edit("conv::mean", lambda t: t.float()), "mean must be a 1-d tensor of torch.float64"),
        (_tensor_edit("conv::holdout", lambda t: t.half()), "holdout must be a 2-d tensor of torch.float32"),
        (_tensor_edit("conv::holdout", lambda t: t[:, :2]), "tensor 'conv::holdout' has shape (10, 2)"),
        (_tensor_edit("conv::var", lambda t: t[None]), "tensor 'conv::var' has shape (1, 3), the header says (3,)"),
        (lambda ts: ts.pop("head.fc::var"), "tensor(s) ['head.fc::var'] listed in the header are missing"),
        (lambda ts: ts.update(secret=torch.zeros(1)), "tensor(s) ['secret'] are not described by the header"),
    ],
)
def test_bad_tensors_are_named(tmp_path, parts, edit, message):
    with pytest.raises(CorruptCalibrationError) as info:
        _load_damaged(tmp_path, parts, edit_tensors=edit)
    assert message in str(info.value) and str(tmp_path) in str(info.value)


def test_a_version_1_file_from_before_the_principal_axes_still_loads(tmp_path, parts):
    def legacy(header):
        for entry in header["layers"]:
            del entry["principal_axes"]
        for key in ("principal_variance", "principal_max_features"):
            del header["config"][key]

    def no_principal(tensors):
        for key in [k for k in tensors if k.endswith("::principal")]:
            del tensors[key]

    cal = _load_damaged(tmp_path, parts, edit_header=legacy, edit_tensors=no_principal)
    assert cal.layers["conv"].principal is None and cal.config == CalibrationConfig(
        holdout_fraction=0.2, reservoir_size=16
    )


def test_a_newer_format_still_asks_to_upgrade(tmp_path, parts):
    with pytest.raises(CalibrationMismatchError, match="Upgrade deepdrift") as info:
        _load_damaged(tmp_path, parts, edit_header=_set(("format_version",), 2))
    assert not isinstance(info.value, CorruptCalibrationError)


def test_read_header_returns_the_raw_header_of_a_good_file(tmp_path, parts):
    path = write_raw(tmp_path / "good.safetensors", *parts)
    assert read_header(path) == parts[0]
    assert Calibration.load(path).layers["conv"].count == parts[0]["layers"][0]["count"]
