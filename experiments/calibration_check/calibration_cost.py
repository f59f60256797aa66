"""What does calibrating cost? ``monitor.calibrate`` against a bare forward pass over the same batches.

Each arm runs in a fresh Python process (``python -m experiments.calibration_check.calibration_cost``) that builds
the same model, loads the same images from a ``.npy`` file, runs one warm-up batch forward, then either a bare
forward over every batch or ``DeepDriftMonitor(model).calibrate(batches)``, and reads its peak resident memory.
The extra memory of calibrating is the difference of the two peaks: everything both processes share (interpreter,
torch, model, images) cancels, and no allocation of an earlier arm hides in the peak.

Where Linux lets a process reset its peak (``/proc/self/clear_refs``), the peak is taken over the arm alone
(``VmHWM`` reset after the set-up): a process's lifetime peak (``ru_maxrss``) is often set by importing torch and
would hide a calibration smaller than that transient. Elsewhere the lifetime peak is all there is; the table says
which one it reports.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch

from experiments.calibration_check.bench_models import ModelRecipe
from experiments.calibration_check.config import CalibrationCostConfig

logger = logging.getLogger(__name__)

Arm = Literal["bare", "calibrate"]
ARMS: tuple[Arm, ...] = ("bare", "calibrate")


def run_arm(recipe: ModelRecipe, images: np.ndarray, arm: Arm, batch_size: int, device: str = "cpu") -> dict:
    """One arm in this process: seconds over the batches and peak resident memory (MiB) afterwards.

    Meant for a fresh process (:func:`measure_arm`): the peak of a process that did other work first means nothing.
    """
    from deepdrift import DeepDriftMonitor

    model = recipe.build().to(device)
    batches = torch.from_numpy(images).to(device).split(batch_size)
    with torch.no_grad():
        model(batches[0])  # warm-up, identical in both arms
    _sync(device)
    peak_source = "arm" if _reset_peak() else "process"
    start = time.perf_counter()
    if arm == "bare":
        with torch.no_grad():
            for batch in batches:
                model(batch)
    else:
        DeepDriftMonitor(model).calibrate(batches, progress=False)
    _sync(device)
    seconds = time.perf_counter() - start
    result = {"seconds": seconds, "peak_mib": _peak_mib(peak_source), "peak_source": peak_source}
    if device.startswith("cuda"):
        result["device_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return result


def measure_arm(recipe: ModelRecipe, images_file: Path, arm: Arm, batch_size: int, device: str, threads: int) -> dict:
    """:func:`run_arm` in a fresh Python process with ``threads`` intra-op threads."""
    job = {"recipe": json.loads(recipe.to_json()), "images": str(images_file), "arm": arm}
    job |= {"batch_size": batch_size, "device": device, "threads": threads}
    with tempfile.TemporaryDirectory(prefix="calibration_cost_") as tmp:
        job_file, result_file = Path(tmp, "job.json"), Path(tmp, "result.json")
        job_file.write_text(json.dumps(job))
        env = os.environ | {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        env["OPENBLAS_NUM_THREADS"] = str(threads)
        package_root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        command = [sys.executable, "-m", __name__, str(job_file), str(result_file)]
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"calibration-cost arm {arm} of {recipe.label} failed:\n{done.stderr[-4000:]}")
        return json.loads(result_file.read_text())


def calibration_cost_table(
    recipes: Sequence[ModelRecipe], cfg: CalibrationCostConfig, device: str = "cpu", threads: int | None = None
) -> pd.DataFrame:
    """Images/s of calibrate and of a bare forward, their time ratio and the extra peak memory, per model."""
    threads = torch.get_num_threads() if threads is None else threads
    rows = []
    with tempfile.TemporaryDirectory(prefix="calibration_cost_") as tmp:
        for recipe in recipes:
            images_file = Path(tmp, "images.npy")
            np.save(images_file, recipe.calibration_images(cfg.images).numpy(), allow_pickle=False)
            arms = {arm: measure_arm(recipe, images_file, arm, cfg.batch_size, device, threads) for arm in ARMS}
            bare, calibrate = arms["bare"], arms["calibrate"]
            logger.info("%s calibration cost: %s", recipe.label, arms)
            row = {
                "model": recipe.label,
                "resolution": recipe.resolution,
                "images": cfg.images,
                "batch_size": cfg.batch_size,
                "bare_images_per_s": cfg.images / bare["seconds"],
                "calibrate_images_per_s": cfg.images / calibrate["seconds"],
                "time_ratio": calibrate["seconds"] / bare["seconds"],
                "bare_peak_mib": bare["peak_mib"],
                "calibrate_peak_mib": calibrate["peak_mib"],
                "extra_mib": calibrate["peak_mib"] - bare["peak_mib"],
                "peak_over": calibrate["peak_source"] if bare["peak_source"] == calibrate["peak_source"] else "mixed",
            }
            if "device_peak_mib" in calibrate:
                row["extra_device_mib"] = calibrate["device_peak_mib"] - bare["device_peak_mib"]
            rows.append(row)
    return pd.DataFrame(rows)


def _reset_peak() -> bool:
    """Reset this process's peak resident memory to its current one (Linux >= 4.0); False where it cannot."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _peak_mib(source: str) -> float:
    """Peak resident memory (MiB) since the last reset (``VmHWM``), or over the process's life (``ru_maxrss``)."""
    if source == "arm":
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _main(job_file: str, result_file: str) -> None:
    job = json.loads(Path(job_file).read_text())
    torch.set_num_threads(int(job["threads"]))
    recipe = ModelRecipe.from_json(json.dumps(job["recipe"]))
    images = np.load(job["images"], allow_pickle=False)
    result = run_arm(recipe, images, job["arm"], int(job["batch_size"]), job["device"])
    Path(result_file).write_text(json.dumps(result))


if __name__ == "__main__":
    _main(*sys.argv[1:])
