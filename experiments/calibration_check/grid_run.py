"""Run the clean-drift grid for several models: main grid, calibration-size sweep, counts and the QQ sample."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pandas as pd
import torch
from torch import nn

from experiments.calibration_check.config import ContractConfig
from experiments.features import torch_threads
from experiments.null_grid import GridCell, TapFeatures, grid_counts, null_grid, tap_features

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GridResult:
    """Cells of the main grid (configured calibration size) and of the size sweep, with their tables."""

    main: list[GridCell]
    sizes: list[GridCell]
    counts: pd.DataFrame
    qq_sample: pd.DataFrame


def run_grid(
    models: dict[str, nn.Module], pools: dict[str, torch.Tensor], n_calib: int, cfg: ContractConfig
) -> GridResult:
    """Features of every pooled image once per model, then every split, calibration size and batch size.

    Args:
        models: trained models by key.
        pools: every image a model's splits partition (calibration and held-out together).
        n_calib: the main grid's calibration size (the configured one).
    """
    main: list[GridCell] = []
    sizes: list[GridCell] = []
    taps_by_model: dict[str, TapFeatures] = {}
    for key, model in models.items():
        taps = taps_by_model[key] = tap_features(model, pools[key])
        with torch_threads(1):  # many tiny scoring calls: a second thread costs more than it saves
            main += null_grid(
                taps,
                key,
                n_calib=n_calib,
                splits=cfg.splits,
                batch_sizes=cfg.batch_sizes,
                n_batches=cfg.n_batches,
                seed=cfg.seed,
            )
            for size in cfg.calibration_sizes:
                if size == n_calib:  # the main grid already covers it, with more batches
                    sizes += [c for c in main if c.model == key]
                    continue
                sizes += null_grid(
                    taps,
                    key,
                    n_calib=size,
                    splits=cfg.splits,
                    batch_sizes=cfg.batch_sizes,
                    n_batches=cfg.size_batches,
                    seed=cfg.seed + 10_000,
                )
        logger.info("%s: clean grid over %d taps and %d split(s) done", key, len(taps.features), cfg.splits)
    counts = grid_counts(main + [c for c in sizes if c.n_calib != n_calib], taps_by_model)
    return GridResult(main, sizes, counts, _qq_sample(main, taps_by_model, cfg.qq_batches))


def _qq_sample(cells: list[GridCell], taps_by_model: dict[str, TapFeatures], n_batches: int) -> pd.DataFrame:
    """The first ``n_batches`` batches of split 0 per model and batch size, long format (what the QQ-plot shows)."""
    rows = []
    for cell in cells:
        if cell.split != 0:
            continue
        taps = taps_by_model[cell.model]
        for j, name in enumerate(taps.features):
            for b, value in enumerate(cell.drift[:n_batches, j]):
                rows.append((cell.model, name, taps.depth[name], taps.zone[name], cell.batch_size, b, float(value)))
    return pd.DataFrame(rows, columns=["model", "tap", "depth", "zone", "batch_size", "batch", "drift"])
