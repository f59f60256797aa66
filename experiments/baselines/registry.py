"""Name -> detector factory: every detector a study scores is built here, from the names in its config.

Every factory is called as ``factory(model, **options)``; detectors that do not need the model ignore it.
DeepDrift's combination rules are several names over one calibrated scorer: :func:`make_detectors` builds them
on one shared scorer, so it is fitted once and scores each batch once, whichever rules a study asks for.
"""

from __future__ import annotations

import difflib
import inspect
import types
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, Union, get_args, get_origin, get_type_hints

from torch import nn

from experiments.baselines.base import BatchDetector
from experiments.baselines.deepdrift_detector import DeepDriftDetector
from experiments.baselines.drift_tests import KernelMMD, KolmogorovSmirnov
from experiments.baselines.pood import KNN, Energy, Mahalanobis, MaxSoftmax, ViM

DEEPDRIFT_RULES: dict[str, str] = {"deepdrift_max": "max", "deepdrift_stouffer": "stouffer"}
"""DeepDrift's registered names and the tap-combination rule each stands for."""

DETECTORS: dict[str, Callable[..., BatchDetector]] = {
    **{name: partial(DeepDriftDetector, combine=rule) for name, rule in DEEPDRIFT_RULES.items()},
    "deepdrift_fast": partial(DeepDriftDetector, combine="max", preset="fast"),
    "msp": MaxSoftmax,
    "energy": Energy,
    "mahalanobis": Mahalanobis,
    "vim": ViM,
    "knn": KNN,
    "mmd": KernelMMD,
    "ks": KolmogorovSmirnov,
}
"""Registered detectors: DeepDrift (two tap-combination rules, and the ``fast`` preset with the max rule: channel
means and the mean shift only, on its own scorer), pytorch-ood (5) and torchdrift (2)."""

PEER_DETECTORS: tuple[str, ...] = ("msp", "energy", "mahalanobis", "vim", "knn", "mmd", "ks")
"""The peers' methods, run with their own code (pytorch-ood 0.4, torchdrift)."""

OPTION_SOURCES: dict[str, type[BatchDetector]] = {
    "deepdrift": DeepDriftDetector,
    "msp": MaxSoftmax,
    "energy": Energy,
    "mahalanobis": Mahalanobis,
    "vim": ViM,
    "knn": KNN,
    "mmd": KernelMMD,
    "ks": KolmogorovSmirnov,
}
"""Names a study's ``method_options`` may configure, and the class whose keywords they set. ``deepdrift`` covers
both DeepDrift rules: they share one fitted scorer."""

_SCALARS = (int, float, bool, str, type(None))
_NOT_OPTIONS = frozenset({"self", "model", "combine", "preset"})


def _is_scalar(hint: Any) -> bool:
    if get_origin(hint) in (Union, types.UnionType):
        return all(_is_scalar(a) for a in get_args(hint))
    return hint in _SCALARS


def detector_options(name: str) -> dict[str, Any]:
    """Keyword options a config may set for ``name`` (a key of :data:`OPTION_SOURCES`), with their types.

    Only keywords with plain YAML types (numbers, strings, booleans, null) count; ``model`` and DeepDrift's
    ``combine`` (fixed by the method name) do not.
    """
    init = OPTION_SOURCES[name].__init__
    hints = get_type_hints(init)
    return {
        p: hints[p]
        for p in inspect.signature(init).parameters
        if p not in _NOT_OPTIONS and p in hints and _is_scalar(hints[p])
    }


def option_source(name: str) -> str:
    """The :data:`OPTION_SOURCES` key whose options configure detector ``name`` (``deepdrift`` for every rule)."""
    return "deepdrift" if name in DEEPDRIFT_RULES or name == "deepdrift_fast" else name


def detector_status(name: str, batch_size: int) -> str:
    """``"ok"``, ``"undefined"`` or ``"degenerate"``: what detector ``name`` is at ``batch_size`` (read off its class,
    so no detector needs building)."""
    source = OPTION_SOURCES.get(option_source(name))
    if source is None:
        return "ok"
    if batch_size < source.min_batch_size:
        return "undefined"
    return "degenerate" if batch_size < source.degenerate_below else "ok"


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
    names: Sequence[str],
    model: nn.Module | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, BatchDetector]:
    """Several detectors at once, in ``names`` order; DeepDrift's rules share one scorer.

    Args:
        names: registered detector names.
        model: the classifier (for detectors that read its head).
        options: keyword arguments per :data:`OPTION_SOURCES` key (``deepdrift`` for every DeepDrift rule).

    Raises:
        ValueError: an unknown name, or options for a detector that ``names`` does not request.
    """
    options = options or {}
    unknown = set(options) - {option_source(name) for name in names}
    if unknown:
        raise ValueError(f"options given for detectors that are not requested: {sorted(unknown)}")
    detectors: dict[str, BatchDetector] = {}
    deepdrift: DeepDriftDetector | None = None
    for name in names:
        if name in DEEPDRIFT_RULES and deepdrift is not None:
            detectors[name] = deepdrift.with_rule(DEEPDRIFT_RULES[name])
            continue
        detectors[name] = make_detector(name, model, **dict(options.get(option_source(name), {})))
        if name in DEEPDRIFT_RULES:
            deepdrift = detectors[name]
    return detectors
