"""Property: whatever a calibration file holds, loading either yields a valid calibration or raises
``CalibrationMismatchError`` (``CorruptCalibrationError`` for damage) - never a raw Python error, never bad values.

Every example writes a real safetensors file: a tiny valid calibration with its JSON header or tensors damaged.
"""

from __future__ import annotations

import copy
import json
import math
import os

import pytest
import torch
from calibration_files import raw_parts, tiny_calibration, write_raw
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from deepdrift import CalibrationConfig, CalibrationMismatchError
from deepdrift.calibration import Calibration, read_header

# DEEPDRIFT_FUZZ_EXAMPLES=5000 explores further (the default keeps the three properties near 10 s together)
FUZZ = settings(
    max_examples=int(os.environ.get("DEEPDRIFT_FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 12) | st.integers() | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    return raw_parts(tiny_calibration().save(tmp_path_factory.mktemp("fuzz") / "good.safetensors"))


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz-target") / "damaged.safetensors"


def _paths(value, prefix=()):
    """Every path into a JSON value, containers first."""
    yield prefix
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in children:
        yield from _paths(child, (*prefix, key))


def _assert_valid(cal: Calibration) -> None:
    """What a loaded calibration must satisfy, checked independently of the library's own validator."""
    assert isinstance(cal.config, CalibrationConfig) and cal.layers
    assert type(cal.n_seen) is int
    held = set()
    for ref in cal.layers.values():
        d = ref.mean.shape[0]
        assert type(ref.count) is int and ref.count >= 2 and d >= 1
        assert ref.mean.dtype == ref.var.dtype == torch.float64 and ref.var.shape == (d,)
        assert ref.holdout.ndim == 2 and ref.holdout.shape[1] == d
        assert bool(torch.isfinite(ref.mean).all()) and bool(torch.isfinite(ref.holdout).all())
        assert bool(torch.isfinite(ref.var).all()) and bool((ref.var > 0).all())
        if ref.principal is not None:
            assert ref.principal.shape[0] == d and bool(torch.isfinite(ref.principal).all())
        assert cal.n_seen >= ref.count + ref.holdout.shape[0]
        held.add(ref.holdout.shape[0])
    assert len(held) == 1
    assert math.isfinite(cal.config.variance_floor) and cal.config.variance_floor >= 0


def _load_or_refuse(path) -> str:
    try:
        cal = Calibration.load(path)
    except CalibrationMismatchError as exc:
        assert str(exc) and "\n" not in str(exc)
        event(f"refused: {type(exc).__name__}")
        read_error = None
        try:
            read_header(path)
        except CalibrationMismatchError as header_exc:
            read_error = header_exc
        assert read_error is None or type(read_error) is type(exc)
        return "refused"
    _assert_valid(cal)
    event("loaded")
    return "loaded"


@st.composite
def header_mutation(draw, header):
    header = copy.deepcopy(header)
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_paths(header))
        path = draw(st.sampled_from(paths))
        action = draw(st.sampled_from(["replace", "swap", "delete", "insert"]))
        if not path:
            if action == "replace":
                header = draw(json_values)
            continue
        parent = header
        for key in path[:-1]:
            parent = parent[key]
        if action == "replace":
            parent[path[-1]] = draw(json_values)
        elif action == "swap":  # a value that is valid somewhere else in the header
            other = draw(st.sampled_from(paths))
            source = header
            for key in other:
                source = source[key]
            parent[path[-1]] = copy.deepcopy(source)
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.text(max_size=6))] = draw(json_values)
        if not isinstance(header, dict):
            break
    return header


@FUZZ
@given(data=st.data())
def test_fuzzed_headers_load_valid_or_raise_typed_errors(parts, target, data):
    header = data.draw(header_mutation(parts[0]))
    _load_or_refuse(write_raw(target, header, parts[1]))


@FUZZ
@given(cut=st.integers(0, 2000), junk=st.text(max_size=20), depth=st.integers(1, 200_000))
def test_fuzzed_header_text_loads_valid_or_raises_typed_errors(parts, target, cut, junk, depth):
    text = json.dumps(parts[0])
    variants = [text[:cut] + junk]
    for path, key in ((("metadata",), "x"), (("config",), "seed"), (("layers", 0), "count")):
        header = copy.deepcopy(parts[0])  # absurd nesting where a dict, a number and a list belong
        spot = header
        for step in path:
            spot = spot[step]
        spot[key] = "@"
        variants.append(json.dumps(header).replace('"@"', "[" * depth + "]" * depth))
    for raw in variants:
        _load_or_refuse(write_raw(target, None, parts[1], raw_text=raw))


_POISON = st.sampled_from([math.nan, math.inf, -math.inf, -1.0, 0.0, -1e-300, 1e300, 5e-324])
_DTYPES = st.sampled_from(
    [torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.int64, torch.int8, torch.bool, torch.uint8]
)


@st.composite
def tensor_mutation(draw, tensors):
    tensors = {k: v.clone() for k, v in tensors.items()}
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from(sorted(tensors))) if tensors else None
        action = draw(st.sampled_from(["poison", "poison", "dtype", "shape", "delete", "extra"]))
        if key is None or action == "extra":
            name = draw(st.sampled_from(["conv::mean", "other::var", "conv::principal", "x", "head.fc::extra"]))
            tensors[name] = torch.zeros(draw(st.lists(st.integers(0, 4), max_size=2)), dtype=torch.float64)
        elif action == "poison" and tensors[key].numel() and tensors[key].is_floating_point():
            flat = tensors[key].reshape(-1).clone()
            value = torch.tensor(draw(_POISON), dtype=torch.float64).to(flat.dtype)  # 1e300 -> inf in float32
            flat[draw(st.integers(0, flat.numel() - 1))] = value
            tensors[key] = flat.reshape(tensors[key].shape)
        elif action == "dtype":
            tensors[key] = tensors[key].to(draw(_DTYPES))
        elif action == "shape" and tensors[key].ndim:
            t = tensors[key]
            tensors[key] = draw(
                st.sampled_from([t.reshape(-1), t[None], t[..., :-1], torch.cat([t, t]), t.T if t.ndim == 2 else t])
            )
        elif action == "delete":
            del tensors[key]
    return tensors


@FUZZ
@given(data=st.data())
def test_fuzzed_tensors_load_valid_or_raise_typed_errors(parts, target, data):
    tensors = data.draw(tensor_mutation(parts[1]))
    if _load_or_refuse(write_raw(target, parts[0], tensors)) == "loaded":
        # nothing the header does not explain loads: same tensors, same shapes, the statistics still float64
        assert set(tensors) == set(parts[1])
        for key, tensor in tensors.items():
            assert tensor.shape == parts[1][key].shape
            assert tensor.dtype == parts[1][key].dtype or tensor.dtype == torch.float64  # held-out samples may be
