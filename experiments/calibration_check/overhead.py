"""What does watching a model cost? ``monitor.step`` against a plain forward pass, measured as a ratio.

Interleaved A/B (forward, step, forward, step, ...) with warm-up, median over repetitions, in one process, so
machine noise hits both arms alike.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pandas as pd
import torch
from torch import nn

from deepdrift import DeepDriftMonitor
from experiments.calibration_check.config import OverheadConfig


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure_overhead(
    label: str, model: nn.Module, calib: torch.Tensor, sample: torch.Tensor, cfg: OverheadConfig
) -> pd.DataFrame:
    """Median seconds of forward vs step per batch size; overhead = step / forward - 1."""
    model.eval()
    monitor = DeepDriftMonitor(model).calibrate(calib.split(64), progress=False)
    rows = []
    gen = torch.Generator().manual_seed(cfg.seed)
    for batch_size in cfg.batch_sizes:
        x = sample[torch.randint(0, len(sample), (batch_size,), generator=gen)]
        monitor.score(x)  # fits the null at this batch size once, as any long-running monitor would

        def forward(x: torch.Tensor = x) -> object:
            with torch.no_grad():
                return model(x)

        def step(x: torch.Tensor = x) -> object:
            return monitor.step(x)

        for _ in range(cfg.warmup):
            forward()
            step()
        plain, watched = [], []
        for _ in range(cfg.repetitions):
            plain.append(_timed(forward))
            watched.append(_timed(step))
        ratio = np.array(watched) / np.array(plain)
        rows.append(
            {
                "model": label,
                "batch_size": batch_size,
                "taps": len(monitor.taps),
                "forward_ms": 1e3 * float(np.median(plain)),
                "step_ms": 1e3 * float(np.median(watched)),
                "overhead_pct": 100 * (float(np.median(ratio)) - 1.0),
                "overhead_pct_q25": 100 * (float(np.quantile(ratio, 0.25)) - 1.0),
                "overhead_pct_q75": 100 * (float(np.quantile(ratio, 0.75)) - 1.0),
            }
        )
    return pd.DataFrame(rows)


def overhead_table(
    models: dict[str, nn.Module],
    calib: dict[str, torch.Tensor],
    sample: dict[str, torch.Tensor],
    cfg: OverheadConfig,
) -> pd.DataFrame:
    """:func:`measure_overhead` for every model, in one table."""
    return pd.concat([measure_overhead(k, m, calib[k], sample[k], cfg) for k, m in models.items()], ignore_index=True)
