"""Shared set-up for workflow scripts: logging to the rule's log file and a fixed CPU thread count. Scripts stay thin.

Why the thread count is fixed per rule: float sums are split into one partial sum per thread (convolution weight
gradients, matmuls and reductions in torch; BLAS in numpy and scipy), so the last bits of every result depend on
how many threads computed it: a small CNN trained for 12 steps on one thread already has other weights than on two,
and every table downstream moves with them. Snakemake's ``threads`` is the rule's declared count capped by
``--cores`` and ``--max-threads`` (and a profile's ``set-threads`` may override it), so it changes with how the
workflow is run. Every rule computes instead on the count its ``threads:`` directive declares from the config
(:data:`RULE_THREADS`), whatever the scheduler granted: with fewer cores a job is slower, never different. The
config's ``threads`` is thereby part of what a result depends on, like a seed (``--config threads=1`` gives other
numbers). ``tests/test_workflow.py`` checks the table against the rules of every config set.

Importing this module first in a script (every script does) pins the thread variables before numpy and torch load,
since OpenBLAS reads them only then; :func:`setup` sets torch's and every loaded thread pool's count as well.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from typing import Any

logger = logging.getLogger(__name__)

RULE_THREADS: dict[str, int | tuple[str, ...]] = {
    "train_model": ("threads",),
    "calibration_contract": ("threads",),
    "calibration_contract_unet": 1,
    "overhead": ("threads",),
    "soak": 1,
    "corruption_images": 1,
    "corruption_measure": 1,
    "corruption_report": 1,
    "fault_localisation": ("threads",),
    "stream_detection": ("threads",),
    "mode_truth": 1,
    "replicates": 1,
    "replicates_detection": 1,
    "diffusion_train": ("diffusion", "threads"),
    "diffusion_evaluate": ("diffusion", "threads"),
    "diffusion_report": 1,
    "findings": 1,
}
"""Intra-op threads of each rule: a number, or the config key path holding it (mirrors the rules' ``threads:``)."""

DEFAULT_THREADS: tuple[str, ...] = ("threads",)
"""Config key of the count for a rule missing from :data:`RULE_THREADS`."""

_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def rule_threads(rule: str, config: Mapping[str, Any]) -> int:
    """The fixed intra-op thread count of ``rule`` under ``config`` (independent of ``--cores`` and profiles)."""
    entry = RULE_THREADS.get(rule, DEFAULT_THREADS)
    if isinstance(entry, int):
        return entry
    value: Any = config
    for key in entry:
        value = value[key]
    return max(1, int(value))


def pin_environment(threads: int, granted: int | None = None) -> None:
    """Set the thread variables for libraries not loaded yet, and request run-to-run reproducible kernels.

    ``MKL_CBWR=AUTO`` makes MKL's results independent of memory alignment (the fastest code path for this CPU, kept
    fixed); ``CUBLAS_WORKSPACE_CONFIG`` makes cuBLAS deterministic on a GPU. When the scheduler ``granted`` fewer
    cores than ``threads``, idle OpenMP threads sleep instead of spinning (``OMP_WAIT_POLICY=PASSIVE``): spinning
    threads that share a core with another job's make both several times slower. These are read once, when the
    library starts, and only set where the user has not chosen a value; none of them changes a result.
    """
    for name in _THREAD_VARIABLES:
        os.environ[name] = str(threads)
    os.environ.setdefault("MKL_CBWR", "AUTO")
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    if granted is not None and granted < threads:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def set_threads(threads: int, granted: int | None = None) -> None:
    """Use ``threads`` intra-op threads in torch and in every thread pool already loaded (OpenBLAS, OpenMP)."""
    pin_environment(threads, granted)
    import torch

    torch.set_num_threads(threads)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # scikit-learn brings it; without it the environment variables are all there is
        return
    threadpool_limits(limits=threads)


def setup(snakemake) -> int:  # the snakemake object has no importable type
    """Log to the rule's log file and compute on the rule's fixed thread count; returns that count."""
    log_files = list(snakemake.log)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        filename=log_files[0] if log_files else None,
        force=True,
    )
    threads = rule_threads(snakemake.rule, snakemake.config)
    set_threads(threads, int(snakemake.threads))
    if snakemake.rule not in RULE_THREADS:
        logger.warning("rule %s is not in _common.RULE_THREADS; computing on %d threads", snakemake.rule, threads)
    if int(snakemake.threads) != threads:
        logger.info(
            "computing on %d threads as the config declares (the scheduler granted %s); results do not depend on it",
            threads,
            snakemake.threads,
        )
    return threads


_running = getattr(sys.modules.get("__main__"), "snakemake", None)  # the script's snakemake object, if any
if _running is not None:
    pin_environment(rule_threads(_running.rule, _running.config), int(_running.threads))
