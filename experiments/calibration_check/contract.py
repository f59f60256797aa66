"""Is drift really ~N(0, 1) on held-out clean data, at every tap and batch size? (DESIGN.md section 3)

Calibrate a monitor on the calibration split, then score many random batches of the disjoint held-out split
at each batch size. Acceptance: per tap and batch size, mean within +-0.5, sd within 0.6..1.6, and
at most 1% of batches above 3.0; Gaussian pixel noise (std 0.5, normalised units) at batch 16 scores >= 5 at
the first tap.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from tqdm.auto import tqdm

from deepdrift import DeepDriftMonitor
from experiments.calibration_check.config import ContractConfig

logger = logging.getLogger(__name__)


def calibrated_monitor(model: nn.Module, calib: TensorDataset, batch_size: int = 128) -> DeepDriftMonitor:
    """A monitor with automatic taps, calibrated on ``calib``."""
    monitor = DeepDriftMonitor(model)
    monitor.calibrate(DataLoader(calib, batch_size=batch_size, shuffle=False))
    return monitor


def clean_drift(monitor: DeepDriftMonitor, heldout: TensorDataset, cfg: ContractConfig, label: str) -> pd.DataFrame:
    """Drift of every tap for random held-out batches at each batch size (long format)."""
    x_all = heldout.tensors[0]
    rng = np.random.default_rng(cfg.seed)
    rows = []
    for batch_size, n_batches in zip(cfg.batch_sizes, cfg.n_batches, strict=True):
        for b in tqdm(range(n_batches), desc=f"{label} B={batch_size}", disable=None, leave=False):
            idx = torch.as_tensor(rng.choice(len(x_all), size=batch_size, replace=False))
            for tap, score in zip(monitor.taps, monitor.score(x_all[idx]).values(), strict=True):
                rows.append((label, tap.name, tap.depth, tap.zone, batch_size, b, score.drift, score.p_value))
    return pd.DataFrame(rows, columns=["model", "tap", "depth", "zone", "batch_size", "batch", "drift", "p_value"])


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


def summarise(clean: pd.DataFrame) -> pd.DataFrame:
    """Per model, tap and batch size: mean, sd, share above 3 sigma, and whether the contract holds."""
    grouped = clean.groupby(["model", "tap", "depth", "batch_size"], sort=False)["drift"]
    table = grouped.agg(mean="mean", sd="std", above_3=lambda d: float((d > 3.0).mean()), batches="size")
    table = table.reset_index().sort_values(["model", "depth", "batch_size"])
    table["passes"] = (table["mean"].abs() <= 0.5) & table["sd"].between(0.6, 1.6) & (table["above_3"] <= 0.01)
    return table.drop(columns="depth")


def summarise_noise(noise: pd.DataFrame) -> pd.DataFrame:
    """Per model and tap: median and minimum drift under noise; the first tap must reach 5."""
    table = noise.groupby(["model", "tap", "depth"], sort=False)["drift"].agg(median="median", minimum="min")
    return table.reset_index().sort_values(["model", "depth"]).drop(columns="depth")


def run_contract(
    models: dict[str, nn.Module],
    calib: dict[str, TensorDataset],
    heldout: dict[str, TensorDataset],
    cfg: ContractConfig | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Clean and noisy drift for several models (datasets per model: channel counts may differ)."""
    cfg = cfg or ContractConfig()
    clean, noise = [], []
    for label, model in models.items():
        monitor = calibrated_monitor(model, calib[label], cfg.calibration_batch_size)
        clean.append(clean_drift(monitor, heldout[label], cfg, label))
        noise.append(noise_drift(monitor, heldout[label], cfg, label))
        logger.info("%s: contract measured on %d taps", label, len(monitor.taps))
    return pd.concat(clean, ignore_index=True), pd.concat(noise, ignore_index=True)
