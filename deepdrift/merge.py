"""Exact merging of calibration state gathered in pieces: several loaders, processes or ranks.

What merges is the *accumulator* (``CalibrationAccumulator``): each layer's float64 count, mean, M2 and co-moment
merge exactly, and the held-out reservoirs merge into a uniform sample of the union of their streams. A finalized
``Calibration`` keeps floored variances and whitened principal axes, not the sums an exact merge needs, so
calibrations themselves do not merge. Instead:

- merge accumulators you filled yourself with :func:`merge_accumulators`;
- continue a monitor's calibration with ``DeepDriftMonitor.calibrate(loader, update=True)`` (it keeps each
  context's accumulator for that);
- merge across ``torch.distributed`` ranks with ``calibrate(loader, distributed=True)`` or
  :func:`deepdrift.distributed.all_reduce_accumulator`.

Example:
    >>> import torch
    >>> config = CalibrationConfig()
    >>> left, right = CalibrationAccumulator(config, shard=0), CalibrationAccumulator(config, shard=1)
    >>> left.update({"fc": torch.randn(100, 4)}); right.update({"fc": torch.randn(60, 4)})
    >>> merged = merge_accumulators(left, right)
    >>> merged.n_seen, merged.moments["fc"].count, len(merged.reservoir)
    (160, 128, 32)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields

import numpy as np

from .calibration import CalibrationAccumulator, CalibrationConfig
from .errors import CalibrationMismatchError
from .stats import merge_moments, merge_reservoirs

__all__ = ["accumulator_layout", "check_layouts", "check_mergeable", "merge_accumulators"]

Layout = dict[str, tuple[int | None, bool]]
"""Per layer, in order: feature count (None while no sample of it was seen) and whether the co-moment is kept."""

_MERGE_STREAM = 2
_RESULT_STREAM = 3


def merge_rng(seed: int) -> np.random.Generator:
    """The draws that choose which held-out rows survive a merge: seeded by ``CalibrationConfig.seed`` alone, so
    every rank (or a rerun) draws the same plan, apart from the streams that filled the reservoirs."""
    return np.random.default_rng((seed, _MERGE_STREAM))


def result_seed(seed: int) -> tuple[int, int]:
    """Seed of a merged reservoir's own draws, for samples added to it later."""
    return (seed, _RESULT_STREAM)


def accumulator_layout(accumulator: CalibrationAccumulator) -> Layout:
    """What an accumulator holds per layer (empty before its first batch)."""
    held = {name: int(rows.shape[1]) for name, rows in accumulator.reservoir.rows.items()}
    return {
        name: (int(m.mean.shape[0]) if m.mean is not None else held.get(name), m.track_covariance)
        for name, m in accumulator.moments.items()
    }


def check_layouts(entries: Sequence[tuple[str, CalibrationConfig, Layout]]) -> Layout:
    """The layout every labelled entry agrees on; ``CalibrationMismatchError`` lists each difference.

    Empty layouts (nothing seen yet) agree with any layers, but their config must still match.
    """
    if not entries:
        raise ValueError("nothing to merge: pass at least one accumulator")
    first_label, config, _ = entries[0]
    agreed: Layout = {}
    agreed_from = first_label
    problems = []
    for label, other_config, layout in entries:
        if other_config != config:
            differences = _config_differences(config, other_config)
            problems.append(f"{label} has another config than {first_label} ({differences})")
        if not layout:
            continue
        if not agreed:
            agreed, agreed_from = dict(layout), label
            continue
        problems += [f"{label} vs {agreed_from}: {p}" for p in _layout_differences(agreed, layout)]
        for name, (features, tracked) in layout.items():
            if name in agreed and agreed[name][0] is None:
                agreed[name] = (features, tracked)
    if problems:
        raise CalibrationMismatchError(
            "cannot merge calibration state: " + "; ".join(problems) + ". Merge only accumulators of the same taps "
            "and pooling, built with the same CalibrationConfig (and the same monitor settings on every rank)."
        )
    return agreed


def check_mergeable(accumulators: Sequence[CalibrationAccumulator]) -> Layout:
    """Refuse to merge accumulators of other layers, feature sizes, covariance tracking or config."""
    return check_layouts([(f"accumulator {i}", a.config, accumulator_layout(a)) for i, a in enumerate(accumulators)])


def merge_accumulators(*accumulators: CalibrationAccumulator) -> CalibrationAccumulator:
    """One accumulator equal to a single pass over all the inputs' samples; the inputs are left unchanged.

    Moments merge exactly (``deepdrift.stats.merge_moments``; the same arithmetic as ``calibrate(distributed=True)``,
    so merging two ranks' accumulators here gives their distributed result bit for bit on the CPU). The held-out
    rows are a uniform sample of the union of the held-out streams, drawn with ``merge_rng(config.seed)``. Each input
    split its own stream into moments and held-out samples, so the result equals one pass over the concatenated
    inputs exactly when every input but the last holds a multiple of ``1 / holdout_fraction`` samples (5 by default).
    Give accumulators that will be merged distinct ``shard=`` numbers, so their reservoirs draw independently.

    Raises:
        CalibrationMismatchError: the inputs differ in layers, feature sizes, covariance tracking or config.
    """
    layout = check_mergeable(accumulators)
    config = accumulators[0].config
    merged = CalibrationAccumulator(config)
    for name, (_, tracked) in layout.items():
        parts = [a.moments[name] for a in accumulators if name in a.moments]
        merged.moments[name] = merge_moments(parts, track_covariance=tracked)
    merged.reservoir = merge_reservoirs(
        [a.reservoir for a in accumulators], merge_rng(config.seed), seed=result_seed(config.seed)
    )
    merged.n_seen = sum(a.n_seen for a in accumulators)
    return merged


def _layout_differences(a: Layout, b: Layout) -> list[str]:
    problems = []
    missing, extra = [n for n in a if n not in b], [n for n in b if n not in a]
    if missing:
        problems.append(f"layers missing {missing}")
    if extra:
        problems.append(f"extra layers {extra}")
    for name in (n for n in a if n in b):
        (fa, ta), (fb, tb) = a[name], b[name]
        if fa is not None and fb is not None and fa != fb:
            problems.append(f"{name!r} has {fb} features, not {fa}")
        elif ta != tb:
            problems.append(f"{name!r} {'does not track' if ta else 'tracks'} the covariance")
    return problems


def _config_differences(a: CalibrationConfig, b: CalibrationConfig) -> str:
    return ", ".join(
        f"{f.name}={getattr(b, f.name)!r} instead of {getattr(a, f.name)!r}"
        for f in fields(a)
        if getattr(a, f.name) != getattr(b, f.name)
    )
