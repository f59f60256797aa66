"""Checks that keep a damaged, edited or foreign calibration from loading silently.

A calibration is trusted blindly by the scorer: a NaN mean, a negative variance or a holdout of the wrong width
would surface much later as "non-finite activations" or absurd sigma values, blamed on the model. Every value read
from a file (and every hand-built ``Calibration``) passes through here first and fails with one line that names the
field, the value found and what is allowed.
"""

from __future__ import annotations

import json
import math
import numbers
import reprlib
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from .errors import CalibrationMismatchError, CorruptCalibrationError

FORMAT_NAME = "deepdrift.calibration"
FORMAT_VERSION = 1
MAX_METADATA_DEPTH = 32
"""JSON nesting deeper than this in a header is refused (nothing DeepDrift writes comes close)."""

HEADER_KEYS = frozenset({"format", "format_version", "library_version", "config", "n_seen", "layers", "metadata"})
LAYER_KEYS = frozenset({"name", "n_features", "count", "n_holdout", "principal_axes"})
STATISTICS_DTYPE = torch.float64
SAMPLE_DTYPES = (torch.float32, torch.float64)
REMEDY = "The file is damaged or was edited: recalibrate (`monitor.calibrate(clean_loader)`) and save again."


# ------------------------------------------------------------------------------------------- scalar checks
def is_int(value: Any) -> bool:
    """An integer that is not a bool (``True`` is not a count); numpy integers count."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def check_int(name: str, value: Any, minimum: int, maximum: int | None = None) -> int:
    """``value`` as an ``int`` in ``[minimum, maximum]``; ``TypeError``/``ValueError`` say what is allowed."""
    allowed = f"an integer >= {minimum}" + ("" if maximum is None else f" and <= {maximum}")
    if not is_int(value):
        raise TypeError(f"{name} must be {allowed}, got {describe(value)}")
    if value < minimum or (maximum is not None and value > maximum):
        raise ValueError(f"{name} must be {allowed}, got {describe(value)}")
    return int(value)


def check_real(name: str, value: Any, low: float, high: float, ends: str = "[]") -> float:
    """``value`` as a finite ``float`` in the interval (``ends``: ``"()"``, ``"[)"``, ``"(]"`` or ``"[]"``); ints are
    accepted, bools are not."""
    allowed = f"a finite number in {ends[0]}{low}, {high}{ends[1]}"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be {allowed}, got {describe(value)}")
    number = float(value)
    above = low < number if ends[0] == "(" else low <= number
    below = number < high if ends[1] == ")" else number <= high
    if not (math.isfinite(number) and above and below):
        raise ValueError(f"{name} must be {allowed}, got {describe(value)}")
    return number


_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxstring, _SHORT.maxother, _SHORT.maxlong, _SHORT.maxlist, _SHORT.maxdict = 3, 40, 40, 40, 4, 4


def describe(value: Any) -> str:
    """A short, safe rendering of a value found in a file (bounded length and depth, whatever it holds)."""
    return f"{_SHORT.repr(value)} ({type(value).__name__})"


# ------------------------------------------------------------------------------------------------- header
def parse_header(raw: Any, source: str) -> dict[str, Any]:
    """Decode the JSON header and check that it is a DeepDrift calibration this version can read."""
    if not isinstance(raw, str):
        raise CorruptCalibrationError(f"{source}: the 'deepdrift' header entry is not text")
    try:
        header = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
        reason = "is nested too deeply" if isinstance(exc, RecursionError) else f"does not parse ({exc})"
        raise CorruptCalibrationError(f"{source}: the JSON header {reason}. {REMEDY}") from None
    if not isinstance(header, dict):
        raise CorruptCalibrationError(f"{source}: the JSON header is {describe(header)}, not an object. {REMEDY}")
    if header.get("format") != FORMAT_NAME:
        raise CorruptCalibrationError(
            f"{source}: header format is {describe(header.get('format'))}, expected {FORMAT_NAME!r}. {REMEDY}"
        )
    version = header.get("format_version")
    if not is_int(version) or version < 1:
        raise CorruptCalibrationError(
            f"{source}: format_version must be an integer >= 1, got {describe(version)}. {REMEDY}"
        )
    if version > FORMAT_VERSION:
        from ._version import __version__

        raise CalibrationMismatchError(
            f"{source} has format {FORMAT_NAME!r} v{version}; this DeepDrift ({__version__}) reads "
            f"{FORMAT_NAME!r} up to v{FORMAT_VERSION}. Upgrade deepdrift or recalibrate."
        )
    return header


def check_header(header: dict[str, Any], source: str) -> list[dict[str, Any]]:
    """Check every header field except ``config`` (built by the caller); returns the layer entries."""

    def fail(message: str) -> CorruptCalibrationError:
        return CorruptCalibrationError(f"{source}: {message}. {REMEDY}")

    unknown = sorted(set(header) - HEADER_KEYS)
    if unknown:
        raise fail(f"unknown header field(s) {unknown}; known: {sorted(HEADER_KEYS)}")
    missing = sorted({"config", "n_seen", "layers"} - set(header))
    if missing:
        raise fail(f"header field(s) {missing} are missing")
    if "library_version" in header and not isinstance(header["library_version"], str):
        raise fail(f"library_version must be a string, got {describe(header['library_version'])}")
    if not isinstance(header["config"], dict):
        raise fail(f"config must be an object, got {describe(header['config'])}")
    if not is_int(header["n_seen"]) or header["n_seen"] < 2:
        raise fail(f"n_seen must be an integer >= 2, got {describe(header['n_seen'])}")
    metadata = header.get("metadata", {})
    if not isinstance(metadata, dict):
        raise fail(f"metadata must be an object, got {describe(metadata)}")
    if json_depth(metadata) > MAX_METADATA_DEPTH:
        raise fail(f"metadata is nested deeper than {MAX_METADATA_DEPTH} levels")
    layers = header["layers"]
    if not isinstance(layers, list) or not layers:
        raise fail(f"layers must be a non-empty list, got {describe(layers)}")
    entries = [_check_layer_entry(i, entry, fail) for i, entry in enumerate(layers)]
    names = [entry["name"] for entry in entries]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise fail(f"layer name(s) {duplicates} appear more than once")
    return entries


def _check_layer_entry(index: int, entry: Any, fail: Any) -> dict[str, Any]:
    """One ``layers[i]`` entry, with ``principal_axes`` defaulting to 0 (files written before it existed)."""
    where = f"layers[{index}]"
    if not isinstance(entry, dict):
        raise fail(f"{where} must be an object, got {describe(entry)}")
    unknown = sorted(set(entry) - LAYER_KEYS)
    missing = sorted(LAYER_KEYS - {"principal_axes"} - set(entry))
    if unknown or missing:
        raise fail(f"{where} has unknown field(s) {unknown} / misses field(s) {missing}")
    entry = {"principal_axes": 0, **entry}
    if not isinstance(entry["name"], str) or not entry["name"]:
        raise fail(f"{where}.name must be a non-empty string, got {describe(entry['name'])}")
    for key, minimum in (("n_features", 1), ("count", 2), ("n_holdout", 0), ("principal_axes", 0)):
        if not is_int(entry[key]) or entry[key] < minimum:
            raise fail(f"{where}.{key} ({entry['name']!r}) must be an integer >= {minimum}, got {describe(entry[key])}")
    if entry["principal_axes"] > entry["n_features"]:
        raise fail(
            f"{where}.principal_axes ({entry['name']!r}) = {entry['principal_axes']} exceeds n_features = "
            f"{entry['n_features']}"
        )
    return entry


def json_depth(value: Any) -> int:
    """Nesting depth of a decoded JSON value, computed without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, depth)
            if depth <= MAX_METADATA_DEPTH:  # deeper than the limit already decides the answer
                stack.extend((child, depth + 1) for child in item)
    return deepest


def expected_tensors(entries: list[dict[str, Any]]) -> dict[str, tuple[int, ...]]:
    """The tensor names a header promises, with their shapes."""
    shapes: dict[str, tuple[int, ...]] = {}
    for entry in entries:
        name, d = entry["name"], entry["n_features"]
        shapes[f"{name}::mean"] = (d,)
        shapes[f"{name}::var"] = (d,)
        shapes[f"{name}::holdout"] = (entry["n_holdout"], d)
        if entry["principal_axes"]:
            shapes[f"{name}::principal"] = (d, entry["principal_axes"])
    return shapes


def check_tensors_match_header(tensors: Mapping[str, torch.Tensor], entries: list[dict[str, Any]], source: str) -> None:
    """Every tensor the header promises is present with the promised shape, and nothing else is."""
    shapes = expected_tensors(entries)
    missing = [key for key in shapes if key not in tensors]
    extra = sorted(key for key in tensors if key not in shapes)
    if missing:
        raise CorruptCalibrationError(f"{source}: tensor(s) {missing[:5]} listed in the header are missing. {REMEDY}")
    if extra:
        raise CorruptCalibrationError(
            f"{source}: tensor(s) {extra[:5]} are not described by the header (unexplained data). {REMEDY}"
        )
    for key, shape in shapes.items():
        if tuple(tensors[key].shape) != shape:
            raise CorruptCalibrationError(
                f"{source}: tensor {key!r} has shape {tuple(tensors[key].shape)}, the header says {shape}. {REMEDY}"
            )


# ------------------------------------------------------------------------------------------ reference values
def check_reference(name: str, mean: Any, var: Any, holdout: Any, count: Any, principal: Any) -> None:
    """Invariants of one layer's reference statistics; ``CorruptCalibrationError`` names the first broken one."""

    def fail(message: str) -> CorruptCalibrationError:
        return CorruptCalibrationError(f"layer {name!r}: {message}")

    if not is_int(count) or count < 2:
        raise fail(f"count must be an integer >= 2 (samples behind mean/var), got {describe(count)}")
    for label, tensor, dtypes, ndim in (
        ("mean", mean, (STATISTICS_DTYPE,), 1),
        ("var", var, (STATISTICS_DTYPE,), 1),
        ("holdout", holdout, SAMPLE_DTYPES, 2),
        ("principal", principal, SAMPLE_DTYPES, 2),
    ):
        if tensor is None and label == "principal":
            continue
        if not isinstance(tensor, torch.Tensor):
            raise fail(f"{label} must be a tensor, got {type(tensor).__name__}")
        if tensor.dtype not in dtypes or tensor.ndim != ndim:
            raise fail(
                f"{label} must be a {ndim}-d tensor of {' or '.join(map(str, dtypes))}, got "
                f"{tensor.ndim}-d {tensor.dtype}"
            )
        bad = int((~torch.isfinite(tensor)).sum())
        if bad:
            raise fail(f"{label} holds {bad} NaN/Inf value(s) of {tensor.numel()}")
    n_features = mean.shape[0]
    if n_features < 1 or var.shape != mean.shape:
        raise fail(
            f"mean and var must both have shape (features,) with features >= 1, got {tuple(mean.shape)} "
            f"and {tuple(var.shape)}"
        )
    non_positive = int((var <= 0).sum())
    if non_positive:
        raise fail(f"var holds {non_positive} value(s) <= 0; variances must be > 0")
    if holdout.shape[1] != n_features:
        raise fail(f"holdout has shape {tuple(holdout.shape)}, expected (held-out samples, {n_features})")
    if principal is not None and (principal.shape[0] != n_features or not 1 <= principal.shape[1] <= n_features):
        raise fail(
            f"principal has shape {tuple(principal.shape)}, expected ({n_features}, axes) with 1 <= axes <= "
            f"{n_features}"
        )


def check_layers(layers: Any, n_seen: Any, reference_type: type) -> None:
    """A calibration's ``layers`` mapping: every reference valid, sample counts consistent with ``n_seen``."""
    if not isinstance(layers, dict) or not layers:
        raise CorruptCalibrationError("a calibration needs at least one layer (a non-empty dict)")
    if not is_int(n_seen):
        raise CorruptCalibrationError(f"n_seen must be an integer, got {describe(n_seen)}")
    held: dict[str, int] = {}
    for name, ref in layers.items():
        if not isinstance(name, str) or not name or not isinstance(ref, reference_type):
            raise CorruptCalibrationError(f"layers must map non-empty names to {reference_type.__name__}, got {name!r}")
        check_reference(name, ref.mean, ref.var, ref.holdout, ref.count, ref.principal)
        held[name] = int(ref.holdout.shape[0])
        if n_seen < ref.count + held[name]:
            raise CorruptCalibrationError(
                f"layer {name!r}: count {ref.count} + {held[name]} held-out samples exceed n_seen {n_seen} (each "
                "calibration sample feeds one of the two streams)"
            )
    if len(set(held.values())) > 1:
        raise CorruptCalibrationError(
            f"layers hold different numbers of held-out samples {held}; the reservoir keeps the same samples for "
            "every layer"
        )
