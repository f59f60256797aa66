"""The sigma contract at scale: many clean batches, several calibration splits and sizes, features extracted once.

In eval mode a network pools every image independently, so each test image's pooled tap features are computed once
and clean batches of any size are formed from those rows afterwards; ``DriftScorer.score_features`` then gives
exactly what ``DeepDriftMonitor.score`` would for the same images (checked bit for bit by the tests). That makes
10,000 batches per batch size, several calibration splits and a calibration-size sweep cost seconds per model
instead of hours of forward passes.

A *split* is a fresh random partition of the image pool into a calibration set and a held-out set; batches are
drawn without replacement within a batch and independently across batches, so a pool of 8,000 held-out images
serves 10,000 batches (batches overlap; every exceedance rate is still an unbiased estimate of the per-batch rate).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from deepdrift import LayerTaps
from deepdrift.scores import DriftScorer
from experiments.features import extract_features

TAIL_LEVELS = (2.0, 3.0, 3.5)
"""Sigma levels whose clean exceedance is counted."""
CALIBRATION_BATCH = 128
"""Rows per calibration update (does not change the result)."""


@dataclass(frozen=True)
class TapFeatures:
    """Pooled features of every image of a pool at each automatically chosen tap, in depth order."""

    features: dict[str, torch.Tensor]
    depth: dict[str, float]
    zone: dict[str, str]

    @property
    def n_images(self) -> int:
        return int(next(iter(self.features.values())).shape[0])

    def rows(self, index: torch.Tensor) -> dict[str, torch.Tensor]:
        return {name: x[index] for name, x in self.features.items()}


def tap_features(model: nn.Module, images: torch.Tensor, batch_size: int = 256) -> TapFeatures:
    """One forward pass over ``images`` with the taps a default ``DeepDriftMonitor(model)`` would choose."""
    taps = LayerTaps(model)
    pooled = extract_features(model, images, taps, batch_size=batch_size, desc="tap features").taps
    return TapFeatures(
        features=pooled,
        depth={tap.name: float(tap.depth) for tap in taps.taps},
        zone={tap.name: str(tap.zone) for tap in taps.taps},
    )


def split_pool(n_images: int, n_calib: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded random partition of ``n_images`` into ``n_calib`` calibration and the rest held out."""
    if not 2 <= n_calib < n_images:
        raise ValueError(f"need 2 <= n_calib < {n_images} pooled images, got n_calib={n_calib}")
    order = torch.as_tensor(np.random.default_rng(seed).permutation(n_images))
    return order[:n_calib], order[n_calib:]


def calibrated_scorer(taps: TapFeatures, calib: torch.Tensor) -> DriftScorer:
    """A default scorer calibrated on the rows ``calib`` (in order, as a loader would stream them)."""
    batches = (taps.rows(calib[s : s + CALIBRATION_BATCH]) for s in range(0, len(calib), CALIBRATION_BATCH))
    return DriftScorer().fit_features(batches)


def clean_drift(
    scorer: DriftScorer, taps: TapFeatures, heldout: torch.Tensor, batch_size: int, n_batches: int, seed: int
) -> np.ndarray:
    """``(n_batches, taps)`` drift of random held-out batches (without replacement within a batch)."""
    rng = np.random.default_rng(seed)
    out = np.empty((n_batches, len(taps.features)))
    for b in range(n_batches):
        pick = heldout[torch.as_tensor(rng.choice(len(heldout), size=batch_size, replace=False))]
        scores = scorer.score_features(taps.rows(pick))
        out[b] = [scores[name].drift for name in taps.features]
    return out


@dataclass(frozen=True)
class GridCell:
    """Clean drift of one model, split, calibration size and batch size: ``drift[batch, tap]``."""

    model: str
    split: int
    n_calib: int
    batch_size: int
    drift: np.ndarray


def null_grid(
    taps: TapFeatures,
    model: str,
    *,
    n_calib: int,
    splits: int,
    batch_sizes: tuple[int, ...],
    n_batches: tuple[int, ...],
    seed: int,
) -> Iterator[GridCell]:
    """Clean drift for every split (a fresh calibration each) and batch size."""
    for split in range(splits):
        calib, heldout = split_pool(taps.n_images, n_calib, seed + split)
        scorer = calibrated_scorer(taps, calib)
        for batch_size, count in zip(batch_sizes, n_batches, strict=True):
            cell_seed = (seed + split) * 1_000_003 + batch_size * 7 + n_calib
            drift = clean_drift(scorer, taps, heldout, batch_size, count, cell_seed)
            yield GridCell(model, split, n_calib, batch_size, drift)


def cell_rows(cell: GridCell, taps: TapFeatures) -> list[dict[str, object]]:
    """Per tap: batches, mean, sd and counts above each sigma level (NaN drift counts as missing)."""
    rows = []
    for j, name in enumerate(taps.features):
        d = cell.drift[:, j]
        d = d[np.isfinite(d)]
        rows.append(
            {
                "model": cell.model,
                "split": cell.split,
                "n_calib": cell.n_calib,
                "tap": name,
                "depth": taps.depth[name],
                "zone": taps.zone[name],
                "batch_size": cell.batch_size,
                "batches": int(d.size),
                "mean": float(d.mean()),
                "sd": float(d.std(ddof=1)),
                **{count_column(t): int((d > t).sum()) for t in TAIL_LEVELS},
            }
        )
    return rows


def batch_exceedances(cell: GridCell, level: float) -> np.ndarray:
    """Taps above ``level`` per batch (what the tail intervals resample)."""
    return (cell.drift > level).sum(axis=1)


def count_column(level: float) -> str:
    """Name of the count column for a sigma level (``above_3``, ``above_3_5``)."""
    return f"above_{level:g}".replace(".", "_")


def grid_counts(cells: list[GridCell], taps_by_model: Mapping[str, TapFeatures]) -> pd.DataFrame:
    """Long table of :func:`cell_rows` over cells."""
    return pd.DataFrame([row for cell in cells for row in cell_rows(cell, taps_by_model[cell.model])])


def summarise_counts(counts: pd.DataFrame) -> pd.DataFrame:
    """Per model, tap and batch size, pooled over splits: mean, sd, shares above 2 / 3 / 3.5 sigma, and whether the
    per-tap contract holds (|mean| <= 0.5, 0.6 <= sd <= 1.6, at most 1% above 3)."""
    keys = ["model", "tap", "depth", "batch_size"]
    weighted = counts.assign(
        total=counts["mean"] * counts["batches"],
        squares=(counts["sd"] ** 2) * (counts["batches"] - 1) + counts["mean"] ** 2 * counts["batches"],
    )
    grouped = weighted.groupby(keys, sort=False)
    sums = grouped[["batches", "total", "squares", *_COUNT_COLUMNS]].sum()
    table = pd.DataFrame(index=sums.index)
    table["splits"] = grouped.size()
    table["batches"] = sums["batches"]
    table["mean"] = sums["total"] / sums["batches"]
    variance = (sums["squares"] - sums["batches"] * table["mean"] ** 2) / (sums["batches"] - 1)
    table["sd"] = variance.clip(lower=0) ** 0.5
    for column in _COUNT_COLUMNS:
        table["share_" + column] = sums[column] / sums["batches"]
    table = table.reset_index().sort_values(["model", "depth", "batch_size"])
    table["passes"] = (table["mean"].abs() <= 0.5) & table["sd"].between(0.6, 1.6) & (table["share_above_3"] <= 0.01)
    return table.drop(columns="depth")


_COUNT_COLUMNS = tuple(count_column(level) for level in TAIL_LEVELS)
"""The count columns of :func:`cell_rows`."""
