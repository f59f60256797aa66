"""Drive a model over clean data and turn its tapped features into reference statistics, per context.

A *context* names a regime in which the clean reference differs, e.g. the timestep bucket of a diffusion U-Net
(its features at t=50 and t=500 are different distributions) or a class-conditional group. Each context gets its
own calibration, so a clean batch in any calibrated context scores ~N(0, 1).

A calibration can be continued (``update=True`` keeps each context's accumulator: moments, co-moments and reservoir,
as large as while calibrating) and computed across ``torch.distributed`` ranks (``distributed=True``: each rank
keeps its own shard's accumulator, and every calibration is the exact merge of all of them).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Iterable
from dataclasses import asdict, dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from .calibration import Calibration, CalibrationAccumulator, CalibrationConfig
from .distributed import agree_on_contexts, all_reduce_accumulators, rank_and_world
from .errors import CalibrationMismatchError
from .fingerprint import fingerprint_model
from .inputs import batch_size_of, input_batch_size, primary_input
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
            raise ValueError(
                f"a context must be one value per batch, got a tensor of shape {tuple(value.shape)}; "
                "bucket the batch (e.g. `context=lambda b: int(b[1][0]) // 100`)"
            )
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


@dataclass
class RunningState:
    """A context's accumulator, kept by ``calibrate(update=True)`` so the next update can continue it."""

    accumulator: CalibrationAccumulator  # this process's own samples (its shard when distributed)
    calibration: Calibration  # what it produced: a monitor now holding another one (loaded, replaced) makes it stale
    distributed: bool


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
    *,
    update: bool = False,
    distributed: bool = False,
    running: dict[Hashable, RunningState] | None = None,
    current: Callable[[Hashable], Calibration | None] | None = None,
) -> dict[Hashable, Calibration]:
    """One pass over ``loader`` (at most ``max_batches``) into one accumulator per context, then freeze them.

    Each calibration records the model's fingerprint (class, taps, tapped parameter shapes, input shape and, with
    ``weights_digest``, a hash of the tapped weights), so it cannot silently load into another model.

    Args:
        update: continue each context's accumulator kept in ``running`` (exactly as if this loader had followed
            the earlier ones) and keep it again; without it, calibrated contexts are replaced and nothing is kept.
        distributed: ``loader`` is this rank's shard; the accumulators are merged over all ranks
            (``deepdrift.distributed``) and every rank gets the same calibrations.
        running: where accumulators are kept between ``update`` calls (the monitor's, per context).
        current: the calibration a context has now, to tell a kept accumulator from a stale one.
    """
    running = {} if running is None else running
    rank = rank_and_world()[0] if distributed else None
    start = _Starter(running, current or (lambda key: None), config, update, rank)
    if rank is not None and rank > 0 and progress is None:
        progress = False  # one progress bar, on rank 0
    try:
        local, shapes = _local_pass(taps, forward, model, loader, max_batches, progress, context, start, distributed)
        merged = all_reduce_accumulators(local) if distributed else local
        if not merged:
            where = " on any rank" if distributed else ""
            raise ValueError(f"no calibration data was seen; the loader yielded nothing{where}")
        calibrations = {
            key: _freeze(acc, key, shapes, start.current(key), model, taps, metadata, weights_digest)
            for key, acc in merged.items()
        }
    except BaseException:
        for key in start.continued:  # they may hold part of this pass: a later update must not build on them
            running.pop(key, None)
        raise
    for key, calibration in calibrations.items():
        if update:
            running[key] = RunningState(local[key], calibration, distributed)
        else:
            running.pop(key, None)
    return calibrations


class _Starter:
    """Hands out each context's accumulator: the kept one to continue (``update=True``), or a fresh one."""

    def __init__(
        self,
        running: dict[Hashable, RunningState],
        current: Callable[[Hashable], Calibration | None],
        config: CalibrationConfig,
        update: bool,
        rank: int | None,
    ) -> None:
        self.running, self.current, self.config, self.update, self.rank = running, current, config, update, rank
        self.continued: list[Hashable] = []

    def __call__(self, key: Hashable) -> CalibrationAccumulator:
        now = self.current(key)
        state = self.running.get(key)
        if not self.update or now is None:
            return CalibrationAccumulator(self.config, shard=self.rank)
        if state is None or state.calibration is not now:
            raise ValueError(
                f"context {key!r} is calibrated, but the accumulator behind it was not kept (it was calibrated "
                "without update=True, or loaded): a finished calibration holds floored variances and principal "
                "axes, not the sums an exact merge needs. Pass update=True from the first calibrate() call of "
                "this context on, or leave update=False to replace its calibration."
            )
        if state.distributed != (self.rank is not None):
            raise ValueError(
                f"context {key!r} was accumulated with distributed={state.distributed}; continue it "
                f"with the same setting, or recalibrate without update=True"
            )
        if state.accumulator.config != self.config:
            raise CalibrationMismatchError(
                f"context {key!r} was accumulated with {state.accumulator.config}, but "
                f"the monitor now calibrates with {self.config}; recalibrate without update"
            )
        self.continued.append(key)
        return state.accumulator


def _local_pass(
    taps: LayerTaps,
    forward: Callable[[Any], Any],
    model: nn.Module,
    loader: Iterable[Any],
    max_batches: int | None,
    progress: bool | None,
    context: ContextSpec,
    start: _Starter,
    distributed: bool,
) -> tuple[dict[Hashable, CalibrationAccumulator], dict[Hashable, tuple[int, ...]]]:
    """This process's accumulators and input shapes; in distributed mode, for every context of any rank."""
    accumulators: dict[Hashable, CalibrationAccumulator] = {}
    shapes: dict[Hashable, tuple[int, ...]] = {}
    failure = None
    try:
        _accumulate(taps, forward, model, loader, max_batches, progress, context, start, accumulators, shapes)
    except Exception as exc:  # in distributed mode every rank must hear of it, or the others wait forever
        if not distributed:
            raise
        failure = exc
    if not distributed:
        return accumulators, shapes
    keys, shapes = agree_on_contexts(accumulators, shapes, failure)
    return {key: accumulators[key] if key in accumulators else start(key) for key in keys}, shapes


def _accumulate(
    taps: LayerTaps,
    forward: Callable[[Any], Any],
    model: nn.Module,
    loader: Iterable[Any],
    max_batches: int | None,
    progress: bool | None,
    context: ContextSpec,
    start: _Starter,
    accumulators: dict[Hashable, CalibrationAccumulator],
    shapes: dict[Hashable, tuple[int, ...]],
) -> None:
    total = _length(loader)
    if max_batches is not None:
        total = max_batches if total is None else min(total, max_batches)
    batches = islice(loader, max_batches) if max_batches is not None else loader
    with evaluation_mode(model), torch.no_grad():
        for batch in tqdm(
            batches, total=total, desc="calibrating", unit="batch", disable=None if progress is None else not progress
        ):
            key = context_of(context, batch)
            _, features = taps.run(lambda b=batch: forward(b), batch_size=input_batch_size(model, batch))
            x = primary_input(batch)
            batch_size_of(features)
            if key not in accumulators:
                accumulators[key] = start(key)
            accumulators[key].update(features)
            if x is not None and x.ndim >= 1:
                shapes.setdefault(key, tuple(int(s) for s in x.shape[1:]))


def _freeze(
    accumulator: CalibrationAccumulator,
    key: Hashable,
    shapes: dict[Hashable, tuple[int, ...]],
    previous: Calibration | None,
    model: nn.Module,
    taps: LayerTaps,
    metadata: Callable[[], dict[str, Any]],
    weights_digest: bool,
) -> Calibration:
    shape = shapes.get(key)
    if shape is None and previous is not None and previous.metadata.get("input_shape") is not None:
        shape = tuple(previous.metadata["input_shape"])  # an update whose batches carried no input tensor
    meta = metadata()
    meta["input_shape"] = None if shape is None else list(shape)
    meta["context"] = None if key is None else repr(key)
    meta["fingerprint"] = fingerprint_model(model, taps.names, shape, weights_digest).to_json()
    calibration = accumulator.finalize(order=taps.names, metadata=meta)
    logger.info("calibrated %d taps on %d samples (context %r)", len(taps.taps), accumulator.n_seen, key)
    return calibration


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
