"""Which model a calibration describes, so it is never silently applied to another one.

Reference statistics describe the activations of one model. Loaded into another whose taps have the same names (a
ResNet-34 under a ResNet-18 calibration), clean data scores thousands of sigma and the model gets the blame.
``ModelFingerprint`` records what is cheap to compare: the model class, the tap names, the parameter and buffer
shapes of every tapped module, the per-sample input shape and, on request, a SHA-256 digest of the tapped modules'
weights. ``check_fingerprint`` names every difference and how to proceed.

Example::

    saved = fingerprint_model(resnet18, ["layer1", "layer2"])
    check_fingerprint(saved, fingerprint_model(resnet34, ["layer1", "layer2"]), source="r18.safetensors")
    # CalibrationMismatchError: r18.safetensors was calibrated on a different model: layer1.2.conv1.weight:
    # absent in the file, (64, 64, 3, 3) here; ... Recalibrate on this model ..., or ... allow_transfer=True
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from .calibration_checks import REMEDY, describe, is_int
from .errors import CalibrationMismatchError, CorruptCalibrationError, LayerNotFoundError

FINGERPRINT_VERSION = 1
_KEYS = frozenset({"version", "model_class", "taps", "shapes", "input_shape", "weights_digest", "n_parameters"})
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_LISTED = 6  # groups of differences (a field or a tap) spelled out in one error message

Shape = tuple[int, ...]


@dataclass(frozen=True)
class ModelFingerprint:
    """What a calibration was made on. A field left ``None`` is unknown and never compared.

    Attributes:
        model_class: qualified class name, e.g. ``torchvision.models.resnet.ResNet``.
        taps: tapped module names in the monitor's order.
        shapes: ``{tap: {parameter or buffer name inside the tap: shape}}``; ``None`` for a not yet initialised
            (lazy) parameter.
        input_shape: shape of one input sample, without the batch dimension.
        weights_digest: ``"sha256:<hex>"`` over the names, dtypes, shapes and bytes of the model's whole state
            (taps are often parameter-free activations, so their own state would say nothing).
        n_parameters: number of parameter elements of the whole model (same architecture, same count).
    """

    model_class: str | None = None
    taps: tuple[str, ...] | None = None
    shapes: Mapping[str, Mapping[str, Shape | None]] | None = None
    input_shape: Shape | None = None
    weights_digest: str | None = None
    n_parameters: int | None = None

    def with_input_shape(self, input_shape: Sequence[int] | None) -> ModelFingerprint:
        """The same fingerprint with the input shape seen later (the first scored batch, say)."""
        return replace(self, input_shape=None if input_shape is None else tuple(int(s) for s in input_shape))

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict for a calibration's metadata (``metadata["fingerprint"]``)."""
        shapes = (
            None
            if self.shapes is None
            else {
                tap: {name: None if shape is None else list(shape) for name, shape in params.items()}
                for tap, params in self.shapes.items()
            }
        )
        return {
            "version": FINGERPRINT_VERSION,
            "model_class": self.model_class,
            "taps": None if self.taps is None else list(self.taps),
            "shapes": shapes,
            "input_shape": None if self.input_shape is None else list(self.input_shape),
            "weights_digest": self.weights_digest,
            "n_parameters": self.n_parameters,
        }

    @classmethod
    def from_json(cls, data: Any, source: str | None = None) -> ModelFingerprint:
        """Parse ``to_json()`` output; ``CorruptCalibrationError`` names any malformed field (and the file, if
        ``source`` is given)."""

        def fail(message: str) -> CorruptCalibrationError:
            where = "metadata.fingerprint" if source is None else f"{source}: metadata.fingerprint"
            return CorruptCalibrationError(f"{where} {message}" + ("" if source is None else f". {REMEDY}"))

        if not isinstance(data, dict):
            raise fail(f"must be an object, got {describe(data)}")
        unknown = sorted(set(data) - _KEYS)
        if unknown:
            raise fail(f"has unknown field(s) {unknown}")
        version = data.get("version", FINGERPRINT_VERSION)
        if not is_int(version) or not 1 <= version <= FINGERPRINT_VERSION:
            raise fail(
                f"version must be an integer in [1, {FINGERPRINT_VERSION}] (a newer one needs a newer "
                f"DeepDrift), got {describe(version)}"
            )
        model_class, taps = data.get("model_class"), data.get("taps")
        if model_class is not None and not isinstance(model_class, str):
            raise fail(f"model_class must be a string, got {describe(model_class)}")
        if taps is not None and not (isinstance(taps, list) and all(isinstance(t, str) for t in taps)):
            raise fail(f"taps must be a list of strings, got {describe(taps)}")
        digest = data.get("weights_digest")
        if digest is not None and not (isinstance(digest, str) and _DIGEST.fullmatch(digest)):
            raise fail(f"weights_digest must be 'sha256:' and 64 hex digits, got {describe(digest)}")
        n_parameters = data.get("n_parameters")
        if n_parameters is not None and not (is_int(n_parameters) and n_parameters >= 0):
            raise fail(f"n_parameters must be an integer >= 0, got {describe(n_parameters)}")
        return cls(
            n_parameters=n_parameters,
            model_class=model_class,
            taps=None if taps is None else tuple(taps),
            shapes=_parse_shapes(data.get("shapes"), fail),
            input_shape=_parse_shape(data.get("input_shape"), "input_shape", fail),
            weights_digest=digest,
        )


def _parse_shape(value: Any, where: str, fail: Any) -> Shape | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(is_int(s) and s >= 0 for s in value):
        raise fail(f"{where} must be a list of integers >= 0, got {describe(value)}")
    return tuple(int(s) for s in value)


def _parse_shapes(value: Any, fail: Any) -> dict[str, dict[str, Shape | None]] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(p, dict) for p in value.values()):
        raise fail(f"shapes must map each tap to an object of parameter shapes, got {describe(value)}")
    return {
        tap: {name: _parse_shape(shape, f"shapes[{tap!r}][{name!r}]", fail) for name, shape in params.items()}
        for tap, params in value.items()
    }


def fingerprint_model(
    model: nn.Module, tap_names: Sequence[str], input_shape: Sequence[int] | None = None, weights_digest: bool = False
) -> ModelFingerprint:
    """Fingerprint ``model`` as watched at ``tap_names``.

    Args:
        model: the monitored model (a ``torch.compile`` wrapper is looked through).
        tap_names: module names of the taps.
        input_shape: one sample's input shape without the batch dimension (see ``sample_shape``), if known.
        weights_digest: also hash the model's parameters and buffers (reads every weight once: seconds on a large
            model, so off by default; compare digests to catch a retrained model of the same shape).
    """
    inner = _unwrap(model)
    modules = {}
    for name in tap_names:
        try:
            modules[name] = model.get_submodule(name)
        except AttributeError as exc:
            raise LayerNotFoundError(f"{name!r} is not a module of {type(inner).__name__}: {exc}") from None
    shapes = {name: _state_shapes(module) for name, module in modules.items()}
    return ModelFingerprint(
        model_class=f"{type(inner).__module__}.{type(inner).__qualname__}",
        taps=tuple(tap_names),
        shapes=shapes,
        input_shape=None if input_shape is None else tuple(int(s) for s in input_shape),
        weights_digest=_digest(inner) if weights_digest else None,
        n_parameters=_parameter_count(inner),
    )


def _unwrap(model: nn.Module) -> nn.Module:
    inner = getattr(model, "_orig_mod", None)  # torch.compile's OptimizedModule
    return inner if isinstance(inner, nn.Module) else model


def _state_shapes(module: nn.Module) -> dict[str, Shape | None]:
    tensors = [*module.named_parameters(), *module.named_buffers()]
    return {
        name: None if isinstance(t, nn.parameter.UninitializedTensorMixin) else tuple(t.shape) for name, t in tensors
    }


def _parameter_count(model: nn.Module) -> int | None:
    """Parameter elements of the model; unknown (None) while a lazy module has not been initialised."""
    params = list(model.parameters())
    if any(isinstance(p, nn.parameter.UninitializedTensorMixin) for p in params):
        return None
    return sum(p.numel() for p in params)


def _digest(model: nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        if not isinstance(tensor, torch.Tensor):  # extra state
            continue
        if tensor.is_meta or isinstance(tensor, nn.parameter.UninitializedTensorMixin):
            raise ValueError(
                f"cannot digest {name}: it holds no data yet (meta device or lazy module); "
                "run the model once or load its weights first"
            )
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        data = tensor.detach().to("cpu").contiguous().reshape(-1)
        digest.update(data.view(torch.uint8).numpy())
    return "sha256:" + digest.hexdigest()


def sample_shape(batch: Any) -> Shape | None:
    """Per-sample input shape of a batch as a loader yields it (tensor, ``(x, y)`` pair or dict); None if unknown."""
    from .inputs import _POSITIONAL_KEYS

    if isinstance(batch, Mapping):
        batch = next((batch[k] for k in (*_POSITIONAL_KEYS, "sample") if isinstance(batch.get(k), torch.Tensor)), None)
    elif isinstance(batch, (list, tuple)) and batch:
        batch = batch[0]
    return tuple(int(s) for s in batch.shape[1:]) if isinstance(batch, torch.Tensor) and batch.ndim else None


def fingerprint_differences(saved: ModelFingerprint, current: ModelFingerprint) -> list[str]:
    """Every difference between the fingerprint in a file (``saved``) and the model here (``current``), one item each.

    Fields unknown on either side (``None``: older files, no input seen yet) are not compared; the weights digest
    only when both sides have one.
    """
    return [text for _, text in _differences(saved, current)]


def _differences(saved: ModelFingerprint, current: ModelFingerprint) -> list[tuple[str, str]]:
    """``(group, text)`` pairs; the group (a tap name or a field) lets a message condense long lists."""
    diffs: list[tuple[str, str]] = []
    if saved.model_class and current.model_class and saved.model_class != current.model_class:
        diffs.append(("model", f"model class: {saved.model_class} in the file, {current.model_class} here"))
    if saved.taps is not None and current.taps is not None and set(saved.taps) != set(current.taps):
        # order is not compared: a monitor adopts the calibration's tap order when it loads one
        only_file = [t for t in saved.taps if t not in current.taps]
        only_here = [t for t in current.taps if t not in saved.taps]
        diffs.append(("taps", f"taps: {only_file} only in the file, {only_here} only here"))
    if saved.shapes is not None and current.shapes is not None:
        for tap, params in saved.shapes.items():
            if tap in current.shapes:
                diffs.extend((tap, text) for text in _tap_differences(tap, params, current.shapes[tap]))
    if saved.input_shape is not None and current.input_shape is not None and saved.input_shape != current.input_shape:
        diffs.append(("input", f"input shape per sample: {saved.input_shape} in the file, {current.input_shape} here"))
    if None not in (saved.n_parameters, current.n_parameters) and saved.n_parameters != current.n_parameters:
        diffs.append(("size", f"parameters: {saved.n_parameters:,} in the file, {current.n_parameters:,} here"))
    if saved.weights_digest and current.weights_digest and saved.weights_digest != current.weights_digest:
        diffs.append(
            (
                "weights",
                f"weights: digest {saved.weights_digest[7:19]}... in the "
                f"file, {current.weights_digest[7:19]}... here (retrained or fine-tuned)",
            )
        )
    return diffs


def _tap_differences(tap: str, saved: Mapping[str, Shape | None], current: Mapping[str, Shape | None]) -> list[str]:
    def show(shape: Shape | None, present: bool) -> str:
        return "absent" if not present else "(uninitialised)" if shape is None else str(tuple(shape))

    found = []
    for name in [*saved, *(n for n in current if n not in saved)]:
        a, b = saved.get(name), current.get(name)
        in_file, here = name in saved, name in current
        if in_file and here and (a is None or b is None or tuple(a) == tuple(b)):
            continue
        full = f"{tap}.{name}" if name else tap
        found.append(f"{full}: {show(a, in_file)} in the file, {show(b, here)} here")
    return found


def check_fingerprint(saved: ModelFingerprint | None, current: ModelFingerprint, source: str) -> None:
    """Raise ``CalibrationMismatchError`` if a calibration (fingerprint ``saved``, read from ``source``) was made on
    another model than ``current``; no fingerprint in the file (older DeepDrift) passes."""
    if saved is None:
        return
    groups: dict[str, list[str]] = {}
    for group, text in _differences(saved, current):
        groups.setdefault(group, []).append(text)
    if not groups:
        return
    items = [
        texts[0] + (f" (and {len(texts) - 1} more in {group})" if len(texts) > 1 else "")
        for group, texts in groups.items()
    ]
    shown = "; ".join(items[:_LISTED]) + (f"; and {len(items) - _LISTED} more" if len(items) > _LISTED else "")
    raise CalibrationMismatchError(
        f"{source} was calibrated on a different model: {shown}. Its reference statistics do not describe this "
        "model's activations, so clean data would score as drift. Recalibrate on this model "
        "(`monitor.calibrate(clean_loader)`), or, to apply it anyway, load it with "
        "`load_calibration(path, allow_transfer=True)`."
    )
