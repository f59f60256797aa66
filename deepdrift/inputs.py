"""Turn whatever a data loader yields into a model call, on the model's device.

Loaders yield tensors, ``(x, y)`` pairs, or dicts (Hugging Face style ``{'pixel_values': ..., 'labels': ...}``,
diffusers style ``{'sample': ..., 'timestep': ...}``). Labels are never passed to the model.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping, Sequence
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


def to_device(obj: Any, device: torch.device) -> Any:
    """Move tensors inside (nested) tuples, lists and dicts to ``device``."""
    if isinstance(obj, torch.Tensor):
        # asynchronous only host -> device; a device -> host copy must be complete before the CPU reads it
        return obj.to(device, non_blocking=obj.device.type == "cpu" and device.type == "cuda")
    if isinstance(obj, Mapping):
        return {k: to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_device(v, device) for v in obj)
    return obj


@functools.lru_cache(maxsize=64)
def _forward_parameters(model_type: type) -> tuple[frozenset[str], bool] | None:
    """Names ``forward`` accepts and whether it takes ``**kwargs`` (cached: ``step`` runs per batch)."""
    try:
        params = inspect.signature(model_type.forward).parameters
    except (TypeError, ValueError):
        return None
    return frozenset(params), any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def _accepts_keywords(model: nn.Module, keys: Sequence[str]) -> bool:
    found = _forward_parameters(type(model))
    if found is None:
        return False
    names, takes_any = found
    return takes_any or all(k in names for k in keys)


def call_model(model: nn.Module, batch: Any, forward_fn: ForwardFn | None = None) -> Any:
    """Run ``model`` on one batch as a user would, moving inputs to the model's device first."""
    batch = to_device(batch, model_device(model))
    if forward_fn is not None:
        return forward_fn(model, batch)
    if isinstance(batch, torch.Tensor):
        return model(batch)
    if isinstance(batch, Mapping):
        inputs = {k: v for k, v in batch.items() if k not in _LABEL_KEYS}
        if inputs and _accepts_keywords(model, list(inputs)):
            return model(**inputs)
        for key in _POSITIONAL_KEYS:
            if isinstance(inputs.get(key), torch.Tensor):
                return model(inputs[key])
        raise TypeError(
            f"cannot call {type(model).__name__} with a batch dict of keys {sorted(batch)}: its forward() does not "
            f"take them as keywords and none of {list(_POSITIONAL_KEYS)} is present. Pass forward_fn=lambda m, b: ..."
        )
    if isinstance(batch, (list, tuple)) and batch and isinstance(batch[0], torch.Tensor):
        return model(batch[0])  # (inputs, labels, ...) as yielded by torchvision datasets
    raise TypeError(
        f"unsupported batch type {type(batch).__name__}; yield tensors, (x, y) pairs or dicts, "
        "or pass forward_fn=lambda model, batch: model(...)"
    )


def batch_size_of(features: Mapping[str, torch.Tensor]) -> int:
    """Samples in a batch of captured features (all taps agree)."""
    sizes = {int(x.shape[0]) for x in features.values()}
    if len(sizes) != 1:
        raise ValueError(f"tapped layers disagree on the batch size: {sorted(sizes)}; tap per-sample layers only")
    return sizes.pop()
