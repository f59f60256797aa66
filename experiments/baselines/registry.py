"""Name -> detector factory, so studies ask for detectors by the names in their config.

Every factory is called as ``factory(model, **options)``; detectors that do not need the model ignore it.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from experiments.baselines.base import BatchDetector
from experiments.baselines.deepdrift_detector import DeepDriftDetector
from experiments.baselines.drift_tests import KernelMMD, KolmogorovSmirnov
from experiments.baselines.pood import KNN, Energy, Mahalanobis, MaxSoftmax, ViM

DETECTORS: dict[str, Callable[..., BatchDetector]] = {
    "deepdrift_max": lambda model, **kw: DeepDriftDetector(model, combine="max", **kw),
    "deepdrift_stouffer": lambda model, **kw: DeepDriftDetector(model, combine="stouffer", **kw),
    "msp": MaxSoftmax,
    "energy": Energy,
    "mahalanobis": Mahalanobis,
    "vim": ViM,
    "knn": KNN,
    "mmd": KernelMMD,
    "ks": KolmogorovSmirnov,
}
"""Registered detectors: DeepDrift (two tap-combination rules), pytorch-ood (5) and torchdrift (2)."""

PEER_DETECTORS: tuple[str, ...] = ("msp", "energy", "mahalanobis", "vim", "knn", "mmd", "ks")
"""The peers' methods, run with their own code (pytorch-ood 0.4, torchdrift)."""


def available_detectors() -> tuple[str, ...]:
    """Names accepted by :func:`make_detector`."""
    return tuple(DETECTORS)


def make_detector(name: str, model: nn.Module | None = None, **options: Any) -> BatchDetector:
    """Build (not fit) the detector registered as ``name``.

    Raises:
        ValueError: unknown name (the message lists close matches and every registered name).
    """
    factory = DETECTORS.get(name)
    if factory is None:
        close = difflib.get_close_matches(name, DETECTORS, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown detector {name!r}.{hint} Registered: {', '.join(DETECTORS)}")
    return factory(model, **options)


def make_detectors(
    names: list[str] | tuple[str, ...],
    model: nn.Module | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, BatchDetector]:
    """Several detectors at once; ``options[name]`` holds keyword arguments for one of them."""
    options = options or {}
    unknown = set(options) - set(names)
    if unknown:
        raise ValueError(f"options given for detectors that are not requested: {sorted(unknown)}")
    return {name: make_detector(name, model, **dict(options.get(name, {}))) for name in names}
