"""Turn whatever a data loader yields into a model call, on the model's device.

Loaders yield tensors, ``(x, y)`` pairs, ``(sample, timestep[, condition])`` tuples for diffusers U-Nets, or dicts
(Hugging Face style ``{'pixel_values': ..., 'labels': ...}``, diffusers style ``{'sample': ..., 'timestep': ...}``).
Labels are never passed to the model. Floating inputs are cast to the model's floating dtype (an fp16 model gets fp16).
"""

from __future__ import annotations

import functools
import inspect
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

ForwardFn = Callable[[nn.Module, Any], Any]
"""``forward_fn(model, batch) -> output`` for models whose call does not fit the rules below."""

_LABEL_KEYS = frozenset({"label", "labels", "target", "targets", "y", "class", "classes"})
_POSITIONAL_KEYS = ("pixel_values", "image", "images", "input", "inputs", "x", "img")


def model_device(model: nn.Module) -> torch.device:
    """Device of the model's first parameter or buffer (CPU for parameter-free models)."""
    tensor = next(model.parameters(), None)  # lazily: materialising every parameter costs more than a small forward
    if tensor is None:
        tensor = next(model.buffers(), None)
    return tensor.device if tensor is not None else torch.device("cpu")


_DTYPES: weakref.WeakKeyDictionary[nn.Module, tuple[torch.dtype | None, torch.dtype | None]] = (
    weakref.WeakKeyDictionary()
)
"""Per model: (first floating parameter's dtype, the resolved input dtype), so ``step`` does not walk every
parameter per batch (~0.2 ms on a ResNet-50); ``model.half()`` changes the first dtype and triggers a re-scan."""


def model_dtype(model: nn.Module) -> torch.dtype | None:
    """The one floating dtype of all the model's floating parameters; None when there is none or several (a
    mixed-precision model decides its own casts, so inputs are left as they come)."""
    first = next((t.dtype for t in model.parameters() if t.is_floating_point()), None)
    cached = _DTYPES.get(model)
    if cached is not None and cached[0] == first:
        return cached[1]
    dtypes = {t.dtype for t in model.parameters() if t.is_floating_point()}
    resolved = dtypes.pop() if len(dtypes) == 1 else None
    _DTYPES[model] = (first, resolved)
    return resolved


def input_batch_size(model: nn.Module, batch: Any) -> int | None:
    """Samples in a batch: axis 0 of its primary input, or axis 1 of a 3-D input to a model built on
    sequence-first (``batch_first=False``) transformer or recurrent layers, whose inputs are (L, N, C)."""
    x = primary_input(batch)
    if x is None or x.ndim == 0:
        return None
    if x.ndim == 3 and _sequence_first(unwrap(model)):
        return int(x.shape[1])
    return int(x.shape[0])


_SEQUENCE_FIRST: weakref.WeakKeyDictionary[nn.Module, bool] = weakref.WeakKeyDictionary()


def _sequence_first(model: nn.Module) -> bool:
    """Whether the model's first attention or recurrent layer takes (L, N, C) inputs (found once per model)."""
    found = _SEQUENCE_FIRST.get(model)
    if found is None:
        found = next(
            (
                getattr(m, "batch_first", True) is False
                for m in model.modules()
                if isinstance(m, (nn.MultiheadAttention, nn.RNNBase))
            ),
            False,
        )
        _SEQUENCE_FIRST[model] = found
    return found


def unwrap(model: nn.Module) -> nn.Module:
    """The user's model inside ``DataParallel``/DDP (``.module``) and ``torch.compile`` (``._orig_mod``) wrappers."""
    while True:
        if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            model = model.module
        elif isinstance(getattr(model, "_orig_mod", None), nn.Module):
            model = model._orig_mod
        else:
            return model


def to_device(obj: Any, device: torch.device, dtype: torch.dtype | None = None) -> Any:
    """Move tensors inside (nested) tuples, lists and dicts to ``device``; floating tensors also to ``dtype``.

    Integer tensors (labels, token ids, integer timesteps) keep their dtype.
    """
    if isinstance(obj, torch.Tensor):
        # asynchronous only host -> device; a device -> host copy must be complete before the CPU reads it
        cast = dtype if dtype is not None and obj.is_floating_point() and obj.dtype != dtype else None
        return obj.to(device, dtype=cast, non_blocking=obj.device.type == "cpu" and device.type == "cuda")
    if isinstance(obj, Mapping):
        return {k: to_device(v, device, dtype) for k, v in obj.items()}
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):  # namedtuple: fields are positional arguments
        return type(obj)(*(to_device(v, device, dtype) for v in obj))
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_device(v, device, dtype) for v in obj)
    return obj


@dataclass(frozen=True)
class _ForwardSignature:
    declared: frozenset[str]  # parameters that can be passed by name
    required_positional: int  # positional parameters without a default
    takes_var_keywords: bool


@functools.lru_cache(maxsize=64)
def _forward_signature(model_type: type) -> _ForwardSignature | None:
    """What ``forward`` accepts (cached per class: ``step`` runs per batch)."""
    try:
        params = list(inspect.signature(model_type.forward).parameters.values())[1:]  # drop self
    except (TypeError, ValueError):
        return None
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    declared = frozenset(p.name for p in params if p.kind in (positional[1], inspect.Parameter.KEYWORD_ONLY))
    required = sum(1 for p in params if p.kind in positional and p.default is inspect.Parameter.empty)
    var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
    return _ForwardSignature(declared, required, var_kw)


def _is_diffusers_unet(model: nn.Module) -> bool:
    """A diffusers U-Net (by its package), which takes ``(sample, timestep[, condition])`` positionally."""
    return type(model).__module__.startswith("diffusers.") and hasattr(model, "down_blocks")


def _call_with_mapping(model: nn.Module, batch: Mapping[str, Any]) -> Any:
    """Keywords when ``forward`` declares every key by name; else the one positional input key."""
    inputs = {k: v for k, v in batch.items() if k not in _LABEL_KEYS}
    signature = _forward_signature(type(unwrap(model)))  # a wrapper's forward(*inputs, **kwargs) says nothing
    if inputs and signature is not None and all(k in signature.declared for k in inputs):
        return model(**inputs)
    for key in _POSITIONAL_KEYS:
        if isinstance(inputs.get(key), torch.Tensor):
            return model(inputs[key])
    raise TypeError(
        f"cannot call {type(model).__name__} with a batch dict of keys {sorted(batch)}: its forward() does not "
        f"declare them all as parameters and none of {list(_POSITIONAL_KEYS)} is present. "
        "Pass forward_fn=lambda model, batch: model(...)"
    )


def _call_with_sequence(model: nn.Module, batch: Sequence[Any]) -> Any:
    """``(x, y)`` pairs call ``model(x)``; diffusers U-Nets get ``(sample, timestep[, condition])`` positionally;
    other models get as many leading items as their ``forward`` requires."""
    inner = unwrap(model)
    if _is_diffusers_unet(inner):
        return model(*batch)
    signature = _forward_signature(type(inner))
    needed = max(1, signature.required_positional if signature is not None else 1)
    if len(batch) < needed:
        raise TypeError(
            f"{type(model).__name__}.forward requires {needed} positional inputs but the batch has {len(batch)} "
            "items. Pass forward_fn=lambda model, batch: model(...)"
        )
    return model(*batch[:needed])


def call_model(model: nn.Module, batch: Any, forward_fn: ForwardFn | None = None) -> Any:
    """Run ``model`` on one batch as a user would, moving inputs to the model's device and floating dtype first."""
    batch = to_device(batch, model_device(model), model_dtype(unwrap(model)))
    if forward_fn is not None:
        return forward_fn(model, batch)
    if isinstance(batch, torch.Tensor):
        return model(batch)
    if isinstance(batch, Mapping):
        return _call_with_mapping(model, batch)
    if isinstance(batch, (list, tuple)) and batch and isinstance(batch[0], torch.Tensor):
        return _call_with_sequence(model, batch)
    raise TypeError(
        f"unsupported batch type {type(batch).__name__}; yield tensors, (x, y) pairs or dicts, "
        "or pass forward_fn=lambda model, batch: model(...)"
    )


def primary_input(batch: Any) -> torch.Tensor | None:
    """The tensor whose first axis is the batch: a tensor itself, the first item of a pair, or a dict's input key."""
    if isinstance(batch, torch.Tensor):
        return batch
    if isinstance(batch, Mapping):
        for key in (*_POSITIONAL_KEYS, "sample", "input_ids"):
            if isinstance(batch.get(key), torch.Tensor):
                return batch[key]
        return next((v for k, v in batch.items() if isinstance(v, torch.Tensor) and k not in _LABEL_KEYS), None)
    if isinstance(batch, (list, tuple)) and batch and isinstance(batch[0], torch.Tensor):
        return batch[0]
    return None


def batch_size_of(features: Mapping[str, torch.Tensor]) -> int:
    """Samples in a batch of captured features (all taps agree)."""
    sizes = {int(x.shape[0]) for x in features.values()}
    if len(sizes) != 1:
        raise ValueError(f"tapped layers disagree on the batch size: {sorted(sizes)}; tap per-sample layers only")
    return sizes.pop()
