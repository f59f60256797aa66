"""Drive a model over clean data and turn its tapped features into reference statistics, per context.

A *context* names a regime in which the clean reference differs, e.g. the timestep bucket of a diffusion U-Net
(its features at t=50 and t=500 are different distributions) or a class-conditional group. Each context gets its
own calibration, so a clean batch in any calibrated context scores ~N(0, 1).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Iterable
from dataclasses import asdict
from itertools import islice
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from .calibration import Calibration, CalibrationAccumulator, CalibrationConfig
from .errors import CalibrationMismatchError
from .fingerprint import fingerprint_model
from .inputs import batch_size_of, primary_input
from .modes import evaluation_mode
from .pooling import PoolingConfig
from .taps import LayerTaps

logger = logging.getLogger(__name__)

ContextSpec = Hashable | Callable[[Any], Hashable]
"""A context value (``None`` is the default context), or a function ``batch -> context``."""


def context_of(spec: ContextSpec, batch: Any) -> Hashable:
    """The context of one batch under ``spec``; refuses unhashable values with the fix."""
    value = spec(batch) if callable(spec) else spec
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"a context must be one value per batch, got a tensor of shape {tuple(value.shape)}; "
                             "bucket the batch (e.g. `context=lambda b: int(b[1][0]) // 100`)")
        value = value.item()
    try:
        hash(value)
    except TypeError as exc:
        raise TypeError(f"a context must be hashable (int, str, tuple ...), got {value!r}") from exc
    return value


def calibration_metadata(model: nn.Module, arch_name: str | None, taps: LayerTaps) -> dict[str, Any]:
    """What a saved calibration records about the model it was made on."""
    return {
        "model_class": type(model).__name__,
        "arch_name": arch_name,
        "selection_rule": taps.rule,
        "pooling": asdict(taps.pooling),
        "taps": [{"name": t.name, "label": t.label, "depth": t.depth, "zone": t.zone} for t in taps.taps],
    }


def calibrate_contexts(
    taps: LayerTaps,
    forward: Callable[[Any], Any],
    model: nn.Module,
    loader: Iterable[Any],
    max_batches: int | None,
    progress: bool | None,
    context: ContextSpec,
    config: CalibrationConfig,
    metadata: Callable[[], dict[str, Any]],
    weights_digest: bool = False,
) -> dict[Hashable, Calibration]:
    """One pass over ``loader`` (at most ``max_batches``) into one accumulator per context, then freeze them.

    Each calibration records the model's fingerprint (class, taps, tapped parameter shapes, input shape and, with
    ``weights_digest``, a hash of the tapped weights), so it cannot silently load into another model.
    """
    accumulators: dict[Hashable, CalibrationAccumulator] = {}
    input_shapes: dict[Hashable, tuple[int, ...]] = {}
    total = _length(loader)
    if max_batches is not None:
        total = max_batches if total is None else min(total, max_batches)
    batches = islice(loader, max_batches) if max_batches is not None else loader
    with evaluation_mode(model), torch.no_grad():
        for batch in tqdm(batches, total=total, desc="calibrating", unit="batch",
                          disable=None if progress is None else not progress):
            key = context_of(context, batch)
            _, features = taps.run(lambda b=batch: forward(b))
            batch_size_of(features)
            accumulators.setdefault(key, CalibrationAccumulator(config)).update(features)
            x = primary_input(batch)
            if x is not None and x.ndim >= 1:
                input_shapes.setdefault(key, tuple(int(s) for s in x.shape[1:]))
    if not accumulators:
        raise ValueError("no calibration data was seen; the loader yielded nothing")
    result = {}
    for key, accumulator in accumulators.items():
        meta = metadata()
        meta["input_shape"] = list(input_shapes[key]) if key in input_shapes else None
        meta["context"] = None if key is None else repr(key)
        meta["fingerprint"] = fingerprint_model(model, taps.names, input_shapes.get(key), weights_digest).to_json()
        result[key] = accumulator.finalize(order=taps.names, metadata=meta)
        logger.info("calibrated %d taps on %d samples (context %r)", len(taps.taps), accumulator.n_seen, key)
    return result


def check_pooling(calibration: Calibration, pooling: PoolingConfig, path: str | Path) -> None:
    """Refuse a calibration made with other pooled features than the monitor computes."""
    saved = calibration.metadata.get("pooling")
    if saved is not None and saved != asdict(pooling):
        raise CalibrationMismatchError(
            f"{path} was calibrated with pooling {saved}, but this monitor pools with {asdict(pooling)}. Create the "
            f"monitor with `pooling=PoolingConfig(**{saved})` or recalibrate."
        )


def _length(loader: Iterable[Any]) -> int | None:
    try:
        return len(loader)  # type: ignore[arg-type]
    except TypeError:
        return None
