"""Does a monitor left running keep its memory flat? A long stream of steps with the resident set size sampled.

A server calls ``monitor.step`` forever, so anything the monitor keeps per step (history, alert log, cached null
fits for each batch size seen) must be bounded. The stream alternates clean and shifted segments (alerts and
recoveries), cycles through a few common batch sizes and, every ``rare_every`` steps, scores one batch of a size
never seen before, so the null cache meets ever more sizes than it may hold.
"""

from __future__ import annotations

import gc
import resource
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from deepdrift import DeepDriftMonitor, DeepDriftWarning


@dataclass(frozen=True)
class SoakConfig:
    steps: int = 100_000
    samples: int = 50  # RSS readings along the stream
    batch_sizes: tuple[int, ...] = (1, 4, 16)
    rare_every: int = 500
    segment: int = 50  # steps per clean / shifted segment
    seed: int = 0
    history_size: int | None = 10_000  # the monitor's default; None for the unbounded contrast


def _rss_mib() -> float:
    """Current resident set size (Linux /proc), falling back to the peak where /proc is absent."""
    statm = Path("/proc/self/statm")
    if statm.exists():
        pages = int(statm.read_text().split()[1])
        return pages * resource.getpagesize() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _soak_model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(32, 64),
        nn.ReLU(),
        nn.Linear(64, 64),
        nn.ReLU(),
        nn.Linear(64, 64),
        nn.ReLU(),
        nn.Linear(64, 4),
    ).eval()


def run_soak(cfg: SoakConfig = SoakConfig()) -> pd.DataFrame:
    """RSS, history length and alert-log length at ``cfg.samples`` points of a ``cfg.steps``-step stream."""
    gen = torch.Generator().manual_seed(cfg.seed)
    model = _soak_model(cfg.seed)
    monitor = DeepDriftMonitor(model, n_null_draws=200, history_size=cfg.history_size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeepDriftWarning)
        monitor.calibrate(torch.randn(2048, 32, generator=gen).split(64), progress=False)
    pool = torch.randn(8192, 32, generator=gen)
    checkpoints = set(np.linspace(cfg.steps // cfg.samples, cfg.steps, cfg.samples, dtype=int).tolist())
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeepDriftWarning)
        for step in range(1, cfg.steps + 1):
            b = cfg.batch_sizes[step % len(cfg.batch_sizes)]
            if step % cfg.rare_every == 0:
                b = 17 + step // cfg.rare_every  # a batch size not seen before
            start = (step * 7) % (pool.shape[0] - b)
            x = pool[start : start + b]
            if (step // cfg.segment) % 2:
                x = x + 1.5
            monitor.step(x)
            if step in checkpoints:
                gc.collect()
                rows.append(
                    {
                        "step": step,
                        "rss_mib": _rss_mib(),
                        "history_steps": len(monitor.history),
                        "alert_log": len(monitor.history.alerts),
                        "alerts_dropped": monitor.history.n_dropped_alerts,
                        "cached_batch_sizes": len(monitor.scorer._null_cache),
                    }
                )
    return pd.DataFrame(rows)


def summarise_soak(trace: pd.DataFrame, label: str) -> dict[str, object]:
    """RSS growth over the second half of the stream, where every bound has long been reached."""
    half = trace[trace["step"] >= trace["step"].max() / 2]
    first, last = half.iloc[0], half.iloc[-1]
    return {
        "history_size": label,
        "steps": int(trace["step"].max()),
        "rss_mib_at_half": round(float(first["rss_mib"]), 1),
        "rss_mib_at_end": round(float(last["rss_mib"]), 1),
        "growth_mib_second_half": round(float(last["rss_mib"] - first["rss_mib"]), 2),
        "history_steps": int(last["history_steps"]),
        "alert_log": int(last["alert_log"]),
        "alerts_dropped": int(last["alerts_dropped"]),
        "cached_batch_sizes": int(last["cached_batch_sizes"]),
    }


def soak_table(cfg: SoakConfig = SoakConfig()) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The stream with the default bounds and, for contrast, with ``history_size=None``: (summary, traces)."""
    traces, rows = [], []
    for history_size in (cfg.history_size, None):
        trace = run_soak(SoakConfig(**{**cfg.__dict__, "history_size": history_size}))
        label = "unbounded" if history_size is None else str(history_size)
        rows.append(summarise_soak(trace, label))
        traces.append(trace.assign(history_size=label))
    return pd.DataFrame(rows), pd.concat(traces, ignore_index=True)
