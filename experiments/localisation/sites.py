"""Where faults go, and where the doctor should say the network broke.

A module's output only reaches the taps that complete after it in the forward pass. Recording the order in which
modules finish on a probe batch therefore gives the ground truth directly: the onset of a fault in module ``m`` is
the first tap that finishes after ``m`` (a tapped block finishes after every module inside it). Every earlier tap
sees exactly the clean activations, which :func:`pre_onset_change` checks numerically.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from experiments.features import FeatureSet


@dataclass(frozen=True)
class FaultSite:
    """A weighted module and the tap where its fault must first show.

    Attributes:
        module: module path inside the model.
        onset: index of the ground-truth onset tap (depth order).
    """

    module: str
    onset: int


def is_weighted(module: nn.Module) -> bool:
    """Convolutions and linear maps (anything with its own weight matrix/kernel): the modules faults target."""
    weight = getattr(module, "weight", None)
    return isinstance(weight, torch.nn.Parameter) and weight.ndim >= 2 and isinstance(module, (nn.Conv2d, nn.Linear))


def completion_order(model: nn.Module, probe: torch.Tensor) -> list[str]:
    """Names of all modules in the order their forward calls finish (first finish only)."""
    order: list[str] = []
    seen: set[str] = set()
    handles = []

    def make_hook(name: str):
        def hook(*_args: object) -> None:
            if name not in seen:
                seen.add(name)
                order.append(name)

        return hook

    try:
        for name, module in model.named_modules():
            if name:
                handles.append(module.register_forward_hook(make_hook(name)))
        with torch.no_grad():
            model.eval()(probe)
    finally:
        for handle in handles:
            handle.remove()
    return order


def onset_of(module: str, taps: Sequence[str], order: Sequence[str]) -> int | None:
    """Index of the first tap finishing at or after ``module`` finishes (None: no tap sees the module)."""
    if module not in order:
        raise ValueError(f"module {module!r} did not run on the probe batch; choose a module that executes")
    position = order.index(module)
    for i, tap in enumerate(taps):
        if tap in order and order.index(tap) >= position:
            return i
    return None


def segments_of(model: nn.Module, taps: Sequence[str], probe: torch.Tensor) -> dict[int, list[str]]:
    """Onset tap index -> the weighted modules whose faults first show there, in execution order."""
    order = completion_order(model, probe)
    modules = dict(model.named_modules())
    segments: dict[int, list[str]] = {}
    for name in order:
        if is_weighted(modules[name]):
            onset = onset_of(name, taps, order)
            if onset is not None:
                segments.setdefault(onset, []).append(name)
    return segments


def heldout_sites(
    model: nn.Module, taps: Sequence[str], probe: torch.Tensor, development: Sequence[FaultSite], seed: int
) -> list[FaultSite]:
    """One site in every segment (every onset tap with a weighted module), drawn at random among the modules the
    development set did not use; a segment whose only modules the development set used keeps one of them (its
    faults still differ: new random draws and new images).

    Args:
        model: the clean network.
        taps: tap names in depth order.
        probe: a small input batch to record the execution order.
        development: the development set's sites (excluded where the segment has other modules).
        seed: seeds the draw.
    """
    used = {s.module for s in development}
    rng = np.random.default_rng(seed)
    sites = []
    for onset, candidates in sorted(segments_of(model, taps, probe).items()):
        fresh = [m for m in candidates if m not in used] or candidates
        sites.append(FaultSite(module=fresh[int(rng.integers(len(fresh)))], onset=onset))
    return sites


def find_sites(
    model: nn.Module, taps: Sequence[str], probe: torch.Tensor, n_depths: int, per_segment: str = "first"
) -> list[FaultSite]:
    """Fault sites at ``n_depths`` onset taps spread evenly over depth (always the first and the last tap).

    Args:
        model: the clean network.
        taps: tap names in depth order.
        probe: a small input batch to record the execution order.
        n_depths: how many distinct onset taps to cover (capped at the number of taps).
        per_segment: ``"first"`` (the first weighted module feeding a tap), ``"first_last"`` (also the last one)
            or ``"all"``.
    """
    segments = segments_of(model, taps, probe)
    wanted = sorted({round(x) for x in np.linspace(0, len(taps) - 1, min(n_depths, len(taps)))})
    sites = []
    for onset in wanted:
        candidates = segments.get(onset, [])
        if per_segment == "first":
            chosen = candidates[:1]
        elif per_segment == "first_last":
            chosen = list(dict.fromkeys(candidates[:1] + candidates[-1:]))
        elif per_segment == "all":
            chosen = candidates
        else:
            raise ValueError(f"per_segment must be 'first', 'first_last' or 'all', got {per_segment!r}")
        sites += [FaultSite(module=m, onset=onset) for m in chosen]
    return sites


def pre_onset_change(clean: FeatureSet, faulted: FeatureSet, onset: int) -> float:
    """Largest absolute change of any feature at the taps before ``onset`` (must be exactly 0.0)."""
    changes = [
        float((faulted.taps[name] - x).abs().max()) if x.numel() else 0.0
        for name, x in list(clean.taps.items())[:onset]
    ]
    return max(changes, default=0.0)
