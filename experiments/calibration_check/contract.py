"""Is drift really ~N(0, 1) on held-out clean data, at every tap and batch size? (DESIGN.md section 3)

The clean side is measured at scale by :mod:`experiments.null_grid` (many batches, several
calibration splits); this module summarises its counts per tap, and checks the detection side through a real
monitor: Gaussian pixel noise (std 0.5, normalised units) at batch 16 must score far above 3 at the first tap.
Per-tap acceptance: mean within +-0.5, sd within 0.6..1.6, and at most 1% of batches above 3.0.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from deepdrift import DeepDriftMonitor
from experiments.calibration_check.config import ContractConfig

logger = logging.getLogger(__name__)


def calibrated_monitor(model: nn.Module, calib: TensorDataset, batch_size: int = 128) -> DeepDriftMonitor:
    """A monitor with automatic taps, calibrated on ``calib``."""
    monitor = DeepDriftMonitor(model)
    monitor.calibrate(DataLoader(calib, batch_size=batch_size, shuffle=False))
    return monitor


def noise_drift(monitor: DeepDriftMonitor, heldout: TensorDataset, cfg: ContractConfig, label: str) -> pd.DataFrame:
    """Drift of every tap under additive Gaussian pixel noise at the configured batch size."""
    x_all = heldout.tensors[0]
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    rng = np.random.default_rng(cfg.seed + 1)
    rows = []
    for b in range(cfg.noise_batches):
        idx = torch.as_tensor(rng.choice(len(x_all), size=cfg.noise_batch_size, replace=False))
        x = x_all[idx] + cfg.noise_std * torch.randn(x_all[idx].shape, generator=gen)
        for tap, score in zip(monitor.taps, monitor.score(x).values(), strict=True):
            rows.append((label, tap.name, tap.depth, tap.zone, cfg.noise_batch_size, b, score.drift, score.p_value))
    return pd.DataFrame(rows, columns=["model", "tap", "depth", "zone", "batch_size", "batch", "drift", "p_value"])


def summarise_noise(noise: pd.DataFrame) -> pd.DataFrame:
    """Per model and tap: median and minimum drift under noise; the first tap must reach 5."""
    table = noise.groupby(["model", "tap", "depth"], sort=False)["drift"].agg(median="median", minimum="min")
    return table.reset_index().sort_values(["model", "depth"]).drop(columns="depth")


def noise_check(
    models: dict[str, nn.Module],
    calib: dict[str, TensorDataset],
    heldout: dict[str, TensorDataset],
    cfg: ContractConfig | None = None,
) -> pd.DataFrame:
    """Drift under pixel noise for several models, each through a real monitor calibrated on its calibration set."""
    cfg = cfg or ContractConfig()
    noise = []
    for label, model in models.items():
        monitor = calibrated_monitor(model, calib[label], cfg.calibration_batch_size)
        noise.append(noise_drift(monitor, heldout[label], cfg, label))
        logger.info("%s: noise check on %d taps", label, len(monitor.taps))
    return pd.concat(noise, ignore_index=True)
