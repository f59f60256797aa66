"""Shared fixtures for the experiments floor: small slices of the real Fashion-MNIST test split, and the workflow's
rules as Snakemake parses them."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from experiments.data import load_fashion_mnist, pad_images


@pytest.fixture(scope="session")
def fmnist_test() -> tuple[np.ndarray, np.ndarray]:
    """The official 10k test split (read-only uint8 images, int64 labels)."""
    return load_fashion_mnist("test")


@pytest.fixture(scope="session")
def images32(fmnist_test: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Three real test images zero-padded to 32x32 (the smallest size the corruptions accept)."""
    return pad_images(fmnist_test[0][:3], 32)


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Run each test on one intra-op thread, restoring the setting afterwards.

    On a shared 2-core machine two spinning OpenMP threads competing with another process made the
    training tests 5-10x slower than one thread.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def workflow_rules() -> dict[str, Any]:
    """Every rule of ``workflow/Snakefile`` on the ``test`` config set, by name (parsed, nothing run)."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings, StorageSettings

    root = Path(__file__).resolve().parents[2]
    with tempfile.TemporaryDirectory() as workdir, SnakemakeApi(OutputSettings()) as api:
        workflow = api.workflow(
            resource_settings=ResourceSettings(),
            config_settings=ConfigSettings(config={"config_set": "test"}),
            storage_settings=StorageSettings(),
            snakefile=root / "workflow" / "Snakefile",
            workdir=Path(workdir),
        )
        return {rule.name: rule for rule in workflow._workflow.rules}
