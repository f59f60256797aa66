"""Calibration across ``torch.distributed`` ranks: each rank runs its own shard, every rank gets the same result.

Moments are all-reduced exactly in float64 around the pooled mean: first the count-weighted means, then each rank's
M2 and (layer by layer) co-moment about the pooled mean; ``deepdrift.stats.merge_moments`` is the same arithmetic in
one process. Held-out reservoirs become a uniform sample of the union of every rank's held-out stream: the ranks
exchange their stream lengths, draw the same merge plan (seeded by ``CalibrationConfig.seed``), and gather only the
rows the plan keeps. Every rank ends with identical numbers; which rank held which shard changes the moments only by
float rounding (with two ranks, not at all), and the result equals ``merge_accumulators`` of the ranks'
accumulators in rank order bit for bit on the CPU.

Each rank splits its own stream into moment and held-out samples, so the result equals a one-process pass over the
shards in rank order when every shard but the last holds a multiple of ``1 / holdout_fraction`` samples (5 by
default), and an equally valid split otherwise. Works with gloo (CPU) and NCCL (the exchanged tensors go to the
current CUDA device: call ``torch.cuda.set_device(local_rank)`` first, as DDP needs anyway).
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import asdict
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from .calibration import CalibrationAccumulator, CalibrationConfig
from .merge import Layout, accumulator_layout, check_layouts, merge_rng, result_seed
from .stats import JointReservoir, RunningMoments, count_weighted_mean, deviation_sums, reservoir_merge_plan

logger = logging.getLogger(__name__)

__all__ = ["all_reduce_accumulator", "all_reduce_accumulators", "unwrap_ddp"]

ProcessGroup = Any
"""A ``torch.distributed`` process group (None: the default group)."""


def unwrap_ddp(model: nn.Module) -> nn.Module:
    """The module inside ``DistributedDataParallel``, which calibration runs directly.

    Calibration needs no gradient synchronisation, and DDP's buffer broadcast at every forward would hang as soon
    as the ranks' shards hold different numbers of batches. The weights are the same on every rank either way.
    """
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def rank_and_world(group: ProcessGroup = None) -> tuple[int, int]:
    """This process's rank and the number of ranks; a clear error where no process group is running."""
    if not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError(
            "distributed calibration needs torch.distributed initialised on every rank: call "
            "`torch.distributed.init_process_group('gloo' or 'nccl', ...)` first (torchrun sets up the environment), "
            "or calibrate with distributed=False and merge accumulators with deepdrift.merge.merge_accumulators."
        )
    return dist.get_rank(group), dist.get_world_size(group)


def all_reduce_accumulator(
    accumulator: CalibrationAccumulator, *, group: ProcessGroup = None
) -> CalibrationAccumulator:
    """Merge one accumulator per rank into the accumulator of all ranks' samples, identical on every rank.

    A collective: every rank of ``group`` must call it. Build each rank's accumulator with ``shard=rank``, so
    their reservoirs draw independently. The inputs are left unchanged.

    Raises:
        CalibrationMismatchError: ranks differ in layers, feature sizes, covariance tracking or config.
    """
    return all_reduce_accumulators({None: accumulator}, group=group)[None]


def all_reduce_accumulators(
    accumulators: Mapping[Hashable, CalibrationAccumulator], *, group: ProcessGroup = None
) -> dict[Hashable, CalibrationAccumulator]:
    """``all_reduce_accumulator`` for one accumulator per context; a rank may lack contexts that others have.

    Returns every context any rank has, in the order of first appearance by rank, identical on every rank.
    Contexts must be picklable (they are exchanged with ``all_gather_object``).
    """
    rank, _ = rank_and_world(group)
    device = _exchange_device(group)
    summaries = _gather_objects({key: _summary(acc) for key, acc in accumulators.items()}, group)
    keys = _union(list(s) for s in summaries)
    if not keys:
        return {}
    configs = [next(iter(s.values()))["config"] if s else None for s in summaries]
    config = CalibrationConfig(**next(c for c in configs if c is not None))
    rng = merge_rng(config.seed)
    merged = {}
    for key in keys:
        per_rank = [s.get(key) for s in summaries]
        where = "" if key is None else f" (context {key!r})"
        layout = check_layouts(
            [(f"rank {r}{where}", CalibrationConfig(**e["config"]), e["layout"]) for r, e in enumerate(per_rank) if e]
        )
        local = accumulators.get(key)
        local = CalibrationAccumulator(config, shard=rank) if local is None else local
        merged[key] = _reduce(local, layout, per_rank, rng, rank, device, group)
    logger.debug("merged %d context(s) over %d ranks on %s", len(keys), len(summaries), device)
    return merged


def agree_on_contexts(
    keys: Iterable[Hashable],
    input_shapes: Mapping[Hashable, Sequence[int]],
    failure: Exception | None,
    group: ProcessGroup = None,
) -> tuple[list[Hashable], dict[Hashable, tuple[int, ...]]]:
    """Every rank's contexts (in one order) and input shapes, once every rank has finished its own pass.

    A rank whose pass failed reports it here instead of leaving the others waiting in a collective forever: every
    rank then raises (the failed one its own exception, the others a ``RuntimeError`` naming it).
    """
    report = {
        "keys": list(keys),
        "shapes": {k: tuple(s) for k, s in input_shapes.items()},
        "failure": None if failure is None else f"{type(failure).__name__}: {failure}",
    }
    reports = _gather_objects(report, group)
    failed = [f"rank {r}: {rep['failure']}" for r, rep in enumerate(reports) if rep["failure"] is not None]
    if failure is not None:
        raise failure
    if failed:
        raise RuntimeError(
            f"distributed calibration failed on another rank ({'; '.join(failed)}); fix that rank's "
            "data or model and calibrate again on every rank"
        )
    shapes: dict[Hashable, tuple[int, ...]] = {}
    for rep in reports:
        for key, shape in rep["shapes"].items():
            shapes.setdefault(key, shape)
    return _union(rep["keys"] for rep in reports), shapes


def _reduce(
    local: CalibrationAccumulator,
    layout: Layout,
    per_rank: list[dict[str, Any] | None],
    rng: Any,
    rank: int,
    device: torch.device,
    group: ProcessGroup,
) -> CalibrationAccumulator:
    """One context: moments by all-reduces, the reservoir by one all-gather of the rows the plan keeps."""
    config = local.config
    merged = CalibrationAccumulator(config)
    merged.moments = _reduce_moments(local, layout, per_rank, device, group)
    seen = [0 if e is None else e["seen"] for e in per_rank]
    held = [0 if e is None else e["held"] for e in per_rank]
    plan = reservoir_merge_plan(seen, held, config.reservoir_size, rng)
    rows = _gather_rows(local.reservoir, layout, plan, rank, device, group)
    merged.reservoir = JointReservoir.from_rows(config.reservoir_size, rows, sum(seen), result_seed(config.seed))
    merged.n_seen = sum(0 if e is None else e["n_seen"] for e in per_rank)
    return merged


def _reduce_moments(
    local: CalibrationAccumulator,
    layout: Layout,
    per_rank: list[dict[str, Any] | None],
    device: torch.device,
    group: ProcessGroup,
) -> dict[str, RunningMoments]:
    names = [n for n, (features, _) in layout.items() if features is not None]
    totals = {n: sum(0 if e is None else e["counts"].get(n, 0) for e in per_rank) for n in names}
    names = [n for n in names if totals[n] > 0]  # the same list on every rank: it comes from the exchanged counts
    mine = {n: m for n, m in local.moments.items() if m.count > 0}
    result = {n: RunningMoments(track_covariance=tracked) for n, (_, tracked) in layout.items()}
    if not names:
        return result
    weighted = _all_sum([_weighted_or_zeros(mine.get(n), layout[n][0], device) for n in names], group)
    means = [w / totals[n] for n, w in zip(names, weighted, strict=True)]
    sums = [
        deviation_sums(mine[n], mean) if n in mine else _no_sums(layout[n], device)
        for n, mean in zip(names, means, strict=True)
    ]
    m2s = _all_sum([m2 for m2, _ in sums], group)
    for n, mean, m2, (_, comoment) in zip(names, means, m2s, sums, strict=True):
        if comoment is not None:  # in place, one layer at a time: no second copy of every co-moment
            dist.all_reduce(comoment, op=dist.ReduceOp.SUM, group=group)
        result[n] = RunningMoments.from_state(totals[n], mean, m2, comoment)
    return result


def _weighted_or_zeros(moments: RunningMoments | None, features: int | None, device: torch.device) -> torch.Tensor:
    if moments is None:  # this rank saw none of the layer's moment samples: it adds nothing to the sums
        return torch.zeros(int(features or 0), dtype=torch.float64, device=device)
    return count_weighted_mean(moments).to(device)


def _no_sums(entry: tuple[int | None, bool], device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Zero M2 (and co-moment) of a rank that saw none of the layer's moment samples."""
    features, tracked = int(entry[0] or 0), entry[1]
    comoment = torch.zeros(features, features, dtype=torch.float64, device=device) if tracked else None
    return torch.zeros(features, dtype=torch.float64, device=device), comoment


def _gather_rows(
    reservoir: JointReservoir, layout: Layout, plan: list[Any], rank: int, device: torch.device, group: ProcessGroup
) -> dict[str, torch.Tensor]:
    """The rows the plan keeps from every rank, in rank order (only those travel)."""
    most = max(len(p) for p in plan)
    if most == 0:
        return {}
    names = list(layout)
    widths = [int(layout[n][0]) for n in names]  # type: ignore[arg-type]
    block = torch.zeros(most, sum(widths), dtype=torch.float32)
    mine = torch.as_tensor(plan[rank])
    if len(mine):
        stored = reservoir.samples()
        block[: len(mine)] = torch.cat([stored[n][mine] for n in names], dim=1)
    block = block.to(device)
    gathered = [torch.empty_like(block) for _ in plan]
    dist.all_gather(gathered, block, group=group)
    rows = torch.cat([g[: len(p)].cpu() for g, p in zip(gathered, plan, strict=True)])
    return dict(zip(names, rows.split(widths, dim=1), strict=True))


def _all_sum(tensors: list[torch.Tensor], group: ProcessGroup) -> list[torch.Tensor]:
    """Sum each tensor over the ranks with one all-reduce of their concatenation."""
    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM, group=group)
    return [chunk.view_as(t) for chunk, t in zip(flat.split([t.numel() for t in tensors]), tensors, strict=True)]


def _summary(accumulator: CalibrationAccumulator) -> dict[str, Any]:
    """What the other ranks need to know to take part in the merge (small, picklable)."""
    return {
        "config": asdict(accumulator.config),
        "layout": accumulator_layout(accumulator),
        "counts": {n: m.count for n, m in accumulator.moments.items()},
        "seen": accumulator.reservoir.seen,
        "held": len(accumulator.reservoir),
        "n_seen": accumulator.n_seen,
    }


def _gather_objects(obj: Any, group: ProcessGroup) -> list[Any]:
    gathered: list[Any] = [None] * dist.get_world_size(group)
    dist.all_gather_object(gathered, obj, group=group)
    return gathered


def _union(key_lists: Iterable[Iterable[Hashable]]) -> list[Hashable]:
    """Keys in order of first appearance, rank by rank (the same order on every rank)."""
    seen: dict[Hashable, None] = {}
    for keys in key_lists:
        for key in keys:
            seen.setdefault(key, None)
    return list(seen)


def _exchange_device(group: ProcessGroup) -> torch.device:
    """Where exchanged tensors must live: the current CUDA device for NCCL, the CPU for gloo (and MPI)."""
    backend = str(dist.get_backend(group)).lower()
    if "nccl" in backend and "gloo" not in backend:
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")
