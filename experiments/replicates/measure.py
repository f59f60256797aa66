"""What each replicate model is measured on: the clean sigma check and the held-out fault set, the same code and
settings the single-model studies use (:mod:`experiments.null_grid`, :func:`~experiments.localisation.run.
heldout_verdicts`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from experiments.data import DataSpec
from experiments.data.spec import split_dataset
from experiments.features import torch_threads
from experiments.localisation.config import FaultStudyConfig
from experiments.localisation.run import heldout_verdicts
from experiments.models.zoo import ModelSpec, load_model
from experiments.null_grid import GridCell, TapFeatures, null_grid, tap_features
from experiments.replicates.config import ReplicatesConfig

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelMeasurement:
    """One trained model's clean-drift cells (splits x batch sizes) and scored held-out / control verdicts."""

    cells: list[GridCell]
    taps: TapFeatures
    verdicts: pd.DataFrame


def measure_model(
    spec: ModelSpec, weights: str | Path, data: DataSpec, faults: FaultStudyConfig, cfg: ReplicatesConfig
) -> ModelMeasurement:
    """The sigma check on fresh calibration splits of the study's image pool, then the held-out fault set and the
    clean control under the doctor and the always-first-tap localiser."""
    splits = data.splits()
    pool = torch.cat(
        [split_dataset(data, "test", part, spec.in_chans).tensors[0] for part in (splits.calib, splits.heldout)]
    )
    model = load_model(spec, data, Path(weights))
    taps = tap_features(model, pool)
    with torch_threads(1):  # many tiny scoring calls: a second thread costs more than it saves
        cells = list(
            null_grid(
                taps,
                spec.key,
                n_calib=data.n_calib,
                splits=cfg.splits,
                batch_sizes=cfg.batch_sizes,
                n_batches=cfg.n_batches,
                seed=cfg.seed,
            )
        )
    logger.info("%s: clean grid over %d taps and %d split(s) done", spec.key, len(taps.features), cfg.splits)
    torch.manual_seed(0)  # as the fault benchmark seeds its first model, so a study model's rows match its own
    verdicts = heldout_verdicts(spec, weights, data, faults)
    logger.info("%s: %d held-out and control verdicts", spec.key, len(verdicts))
    return ModelMeasurement(cells, taps, verdicts)
