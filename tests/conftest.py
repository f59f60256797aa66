"""Shared fixtures: small real models and clean/shifted data, all on the CPU and seeded."""

from __future__ import annotations

import logging

import pytest
import torch
from library_fixtures import clean_batches, make_small_cnn
from torch import nn


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    yield


@pytest.fixture
def small_cnn() -> nn.Sequential:
    return make_small_cnn()


@pytest.fixture
def calib_batches() -> list[torch.Tensor]:
    return clean_batches(40, seed=1)


@pytest.fixture
def caplog_deepdrift(caplog):
    caplog.set_level(logging.INFO, logger="deepdrift")
    return caplog
