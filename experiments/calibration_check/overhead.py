"""What does watching a model cost? ``monitor.step`` against a bare forward pass and against the no-op-hook floor.

Per model and batch size, up to four arms run interleaved in one loop (bare, floor, step, fast, bare, floor, ...)
after a warm-up, so machine noise hits every arm alike:

- ``bare``: the model's forward under ``torch.no_grad``;
- ``floor``: the same forward with no-op forward hooks on exactly the monitor's taps, registered and removed per
  call as the monitor does: what any hook-based monitor pays before doing any work;
- ``step``: ``monitor.step(x)`` of a default monitor;
- ``fast``: ``monitor.step(x)`` of a monitor built with ``deepdrift.preset("fast")``.

A fifth, instrumented arm in the same loop splits the step into its parts (pooling hooks, statistics, null lookup,
FSM) by calling the monitor's internals one by one; ``glue`` is what ``step`` spends beyond the floor and those
parts. Every time is the median over repetitions, every ratio the median of per-repetition ratios.
"""

from __future__ import annotations

import logging
import os
import platform
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

import deepdrift
from deepdrift import DeepDriftMonitor
from experiments.calibration_check.bench_models import ModelRecipe
from experiments.calibration_check.config import OverheadConfig

logger = logging.getLogger(__name__)

PARTS = ("taps_run", "statistics", "null_lookup", "fsm")
"""What the instrumented step times: the hooked forward (pooling = it minus the floor), the statistics to host, the
null lookup and the FSM update (glue = step - floor - pooling - the other three)."""


@dataclass(frozen=True)
class CellTimes:
    """Seconds per repetition of every arm, and of the instrumented step's parts, for one model and batch size."""

    arms: dict[str, np.ndarray]
    parts: dict[str, np.ndarray]
    taps: int

    @property
    def repetitions(self) -> int:
        return len(self.arms["bare"])


def tap_modules(monitor: DeepDriftMonitor) -> list[nn.Module]:
    """The modules the monitor hooks (its taps, by name)."""
    return [monitor.model.get_submodule(tap.name) for tap in monitor.taps]


@contextmanager
def noop_hooks(modules: Sequence[nn.Module]) -> Iterator[None]:
    """No-op forward hooks on ``modules`` for the duration of the block, removed whatever happens inside."""
    handles = []
    try:
        for module in modules:
            handles.append(module.register_forward_hook(_noop))
        yield
    finally:
        for handle in handles:
            handle.remove()


def _noop(_module: nn.Module, _inputs: object, _output: object) -> None:
    return None


def time_cell(
    model: nn.Module,
    monitor: DeepDriftMonitor,
    x: torch.Tensor,
    cfg: OverheadConfig,
    fast: DeepDriftMonitor | None = None,
) -> CellTimes:
    """Interleaved timings of every arm at one batch (``x``); the monitors must be calibrated."""
    batch_size = len(x)
    modules = tap_modules(monitor)
    sync = _synchroniser(x.device)
    monitor.score(x)  # fits the null at this batch size once, as any long-running monitor would
    if fast is not None:
        fast.score(x)

    def bare() -> None:
        with torch.no_grad():
            model(x)

    def floor() -> None:
        with noop_hooks(modules), torch.no_grad():
            model(x)

    arms: dict[str, Callable[[], object]] = {"bare": bare, "floor": floor, "step": lambda: monitor.step(x)}
    if fast is not None:
        arms["fast"] = lambda: fast.step(x)
    times: dict[str, list[float]] = {name: [] for name in arms}
    parts: dict[str, list[float]] = {name: [] for name in PARTS}
    start = time.perf_counter()
    for _ in range(cfg.warmup):
        for arm in arms.values():
            arm()
        _instrumented_step(model, monitor, x, batch_size, sync)
    for repetition in range(1, cfg.repetitions + 1):
        for name, arm in arms.items():
            times[name].append(_clock(arm, sync))
        for name, seconds in _instrumented_step(model, monitor, x, batch_size, sync).items():
            parts[name].append(seconds)
        if repetition >= cfg.min_repetitions and time.perf_counter() - start > cfg.max_seconds_per_cell:
            break
    return CellTimes(
        {k: np.array(v) for k, v in times.items()}, {k: np.array(v) for k, v in parts.items()}, len(modules)
    )


def _instrumented_step(
    model: nn.Module, monitor: DeepDriftMonitor, x: torch.Tensor, batch_size: int, sync: Callable[[], None]
) -> dict[str, float]:
    """One step taken apart: the hooked forward, the statistics (to host), the null lookup, the FSM update."""
    sync()
    t0 = time.perf_counter()
    with torch.no_grad():
        _, features = monitor._taps.run(lambda: model(x), batch_size=batch_size)
    sync()
    t1 = time.perf_counter()
    statistics = monitor.scorer.statistics(features).cpu().numpy()
    t2 = time.perf_counter()
    scores = monitor.scorer.scores_from_statistics(statistics, batch_size)
    t3 = time.perf_counter()
    monitor._advance(scores)
    t4 = time.perf_counter()
    return {"taps_run": t1 - t0, "statistics": t2 - t1, "null_lookup": t3 - t2, "fsm": t4 - t3}


def overhead_rows(label: str, resolution: int, batch_size: int, cell: CellTimes) -> tuple[dict, dict]:
    """One row of the overhead table and one of the breakdown table (milliseconds and ratios)."""
    med = {name: 1e3 * float(np.median(v)) for name, v in cell.arms.items()}
    arms = cell.arms
    step_bare = arms["step"] / arms["bare"]
    row: dict[str, object] = {
        "model": label,
        "resolution": resolution,
        "batch_size": batch_size,
        "taps": cell.taps,
        "repetitions": cell.repetitions,
        "bare_ms": med["bare"],
        "floor_ms": med["floor"],
        "step_ms": med["step"],
    }
    if "fast" in med:
        row["fast_ms"] = med["fast"]
    row |= {
        "step_bare": float(np.median(step_bare)),
        "step_bare_q25": float(np.quantile(step_bare, 0.25)),
        "step_bare_q75": float(np.quantile(step_bare, 0.75)),
        "step_floor": float(np.median(arms["step"] / arms["floor"])),
        "floor_bare": float(np.median(arms["floor"] / arms["bare"])),
    }
    if "fast" in arms:
        row["fast_bare"] = float(np.median(arms["fast"] / arms["bare"]))
    row["added_ms"] = med["step"] - med["bare"]
    row["added_ms_per_tap"] = row["added_ms"] / cell.taps
    part = {name: 1e3 * float(np.median(v)) for name, v in cell.parts.items()}
    pooling = part["taps_run"] - med["floor"]
    breakdown = {
        "model": label,
        "resolution": resolution,
        "batch_size": batch_size,
        "taps": cell.taps,
        "repetitions": cell.repetitions,
        "floor_ms": med["floor"],
        "step_ms": med["step"],
        "added_ms": med["step"] - med["floor"],
        "pooling_ms": pooling,
        "statistics_ms": part["statistics"],
        "null_lookup_ms": part["null_lookup"],
        "fsm_ms": part["fsm"],
        "glue_ms": med["step"] - med["floor"] - pooling - part["statistics"] - part["null_lookup"] - part["fsm"],
    }
    return row, breakdown


def measure_model(recipe: ModelRecipe, cfg: OverheadConfig) -> tuple[list[dict], list[dict]]:
    """Overhead and breakdown rows of one model at every configured batch size."""
    device = torch.device(cfg.device)
    model = recipe.build().to(device)
    calibration = recipe.calibration_images(cfg.calibration_images).to(device)
    monitor = DeepDriftMonitor(model).calibrate(calibration.split(64), progress=False)
    fast = DeepDriftMonitor(model, **deepdrift.preset("fast")).calibrate(calibration.split(64), progress=False)
    del calibration
    batch_sizes = recipe.batch_sizes or cfg.batch_sizes
    pool = recipe.timing_images(max(batch_sizes)).to(device)
    rows, breakdown = [], []
    for batch_size in batch_sizes:
        start = time.perf_counter()
        cell = time_cell(model, monitor, pool[:batch_size], cfg, fast)
        logger.info(
            "%s batch %d: %d repetitions in %.1f s",
            recipe.label,
            batch_size,
            cell.repetitions,
            time.perf_counter() - start,
        )
        row, parts = overhead_rows(recipe.label, recipe.resolution, batch_size, cell)
        rows.append(row)
        breakdown.append(parts)
    return rows, breakdown


def overhead_tables(recipes: Sequence[ModelRecipe], cfg: OverheadConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The overhead and breakdown tables of every model, in the order given."""
    rows, breakdown = [], []
    for recipe in recipes:
        model_rows, model_breakdown = measure_model(recipe, cfg)
        rows += model_rows
        breakdown += model_breakdown
    return pd.DataFrame(rows), pd.DataFrame(breakdown)


def resolve_device(device: str) -> str:
    """``auto`` becomes ``cuda`` when a GPU is visible, else ``cpu``; other names stay."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def machine_description(device: str = "cpu") -> str:
    """Where the timings ran, for captions: CPU model and count, torch version, intra-op threads, the GPU."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [
            line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")
        ]
        cpu = names[0] if names else cpu
    threads = torch.get_num_threads()
    text = f"Measured on {cpu} ({os.cpu_count()} CPUs), torch {torch.__version__}, {threads} intra-op threads"
    if device == "cuda":
        text += f", {torch.cuda.get_device_name()}"
    return text


def _clock(fn: Callable[[], object], sync: Callable[[], None]) -> float:
    sync()
    start = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - start


def _synchroniser(device: torch.device) -> Callable[[], None]:
    """Waits for the device's queued work (CUDA runs asynchronously); a no-op on the CPU."""
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None
