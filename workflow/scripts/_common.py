"""Shared set-up for workflow scripts: logging to the rule's log file and CPU threads. Scripts stay thin."""

from __future__ import annotations

import logging
import os


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
