"""Shared set-up for workflow scripts: logging to the rule's log file and CPU threads. Scripts stay thin."""

from __future__ import annotations

import logging
import os
from pathlib import Path


def setup(snakemake) -> None:  # the snakemake object has no importable type
    log_files = list(snakemake.log)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        filename=log_files[0] if log_files else None,
        force=True,
    )
    threads = max(1, int(snakemake.threads))
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    import torch

    torch.set_num_threads(threads)


def weights_by_model(snakemake, models: list[str]) -> dict[str, str]:
    """``{model key: weights path}`` for a rule whose ``input.weights`` follows the study's model list."""
    return dict(zip(models, snakemake.input.weights, strict=True))


def stem(files) -> Path:  # files: one snakemake output entry (a path or a list of paths)
    """The common path stem of one figure/table output group (``x.pdf`` + ``x.png`` -> ``x``)."""
    return Path(files if isinstance(files, str) else files[0]).with_suffix("")
