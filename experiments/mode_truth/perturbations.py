"""Perturbation families whose *mechanism* defines the failure mode they should produce (never a zone or a drift).

* sensor -> SENSOR_FAILURE: the input itself is corrupted (pixel faults) or the first weighted layer, which reads
  the pixels, is broken: the network receives a different signal from its sensor.
* feature mismatch -> SPURIOUS_CORRELATION: the pixels are ordinary images of the same kind, but their semantics
  differ from training: classes the model never saw, or a batch drawn from one or two seen classes (class prior).
* amplification -> GEOMETRIC_COLLAPSE: one mid-depth weighted module's weights are multiplied by a gain > 1, a
  change the rest of the network carries forward (whether it grows with depth is measured, not assumed:
  :mod:`experiments.mode_truth.mechanism`).
* global -> GLOBAL_COLLAPSE: every weighted module at once gets weight noise.

Each perturbation is one *instance* (a cluster of batches in the intervals): a family, a mechanism, a kind, a
strength, a site and a draw. Its random choices are seeded from its id, so every run perturbs the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from deepdrift import FailureMode, Tap
from experiments.features import FeatureSet, extract_features
from experiments.localisation.faults import GREY_ONLY, RGB_ONLY, fault_seed, input_fault, internal_fault
from experiments.localisation.sites import is_weighted, segments_of
from experiments.mode_truth.config import ModeTruthConfig

SENSOR, MISMATCH, AMPLIFICATION, GLOBAL, CLEAN = "sensor", "feature_mismatch", "amplification", "global", "clean"
FAMILIES = (SENSOR, MISMATCH, AMPLIFICATION, GLOBAL)
TRUE_MODE: dict[str, FailureMode] = {
    SENSOR: FailureMode.SENSOR_FAILURE,
    MISMATCH: FailureMode.SPURIOUS_CORRELATION,
    AMPLIFICATION: FailureMode.GEOMETRIC_COLLAPSE,
    GLOBAL: FailureMode.GLOBAL_COLLAPSE,
    CLEAN: FailureMode.STABLE,
}
"""The mode a correct doctor names for each family, fixed by the mechanism alone."""
INPUT, FIRST_LAYER, MID_SCALE, ALL_LAYERS = "input", "first_layer", "mid_scale", "all_layers"
PRIOR, HELD_OUT = "class_prior", "held_out_classes"
WEIGHT_MECHANISMS = (FIRST_LAYER, MID_SCALE, ALL_LAYERS)


@dataclass(frozen=True)
class Perturbation:
    """One perturbation instance.

    Attributes:
        family: the ground-truth family (:data:`FAMILIES` or ``clean``).
        mechanism: ``input``, ``first_layer``, ``mid_scale``, ``all_layers``, ``class_prior``,
            ``held_out_classes`` or ``clean``.
        kind: the fault family (``blur``, ``weight_noise``, ``scale``) or ``classes``.
        strength: the fault's strength, or the number of classes a class shift draws from.
        site: the perturbed module, ``all``, ``input``, or the classes (``8+9``).
        draw: index of an independent random draw of the same setting.
    """

    family: str
    mechanism: str
    kind: str
    strength: float
    site: str = "-"
    draw: int = 0

    @property
    def instance_id(self) -> str:
        return f"{self.mechanism}:{self.kind}@{self.site}:{self.strength:g}#{self.draw}"

    @property
    def seed(self) -> int:
        return fault_seed("mode_truth", self.instance_id)

    @property
    def classes(self) -> tuple[int, ...]:
        """The classes a class shift draws from."""
        if self.mechanism not in (PRIOR, HELD_OUT):
            raise ValueError(f"{self.instance_id} is not a class shift")
        return tuple(int(c) for c in self.site.split("+"))


def first_weighted(model: nn.Module, names: Sequence[str], probe: torch.Tensor) -> str:
    """The first weighted module in execution order that reaches a tap (the layer reading the pixels)."""
    segments = segments_of(model, names, probe)
    return segments[min(segments)][0]


def mid_sites(model: nn.Module, taps: Sequence[Tap], probe: torch.Tensor, depths: Sequence[float]) -> list[str]:
    """The first weighted module feeding the tap nearest each relative depth (distinct modules, depth order).

    The first tap's segment is skipped: a fault there is the sensor family's first-layer fault.
    """
    segments = segments_of(model, [t.name for t in taps], probe)
    onsets = [i for i in sorted(segments) if i > min(segments)]
    chosen = []
    for depth in depths:
        nearest = min(onsets, key=lambda i: (abs(taps[i].depth - depth), i))
        chosen.append(segments[nearest][0])
    return list(dict.fromkeys(chosen))


def weight_perturbations(
    cfg: ModeTruthConfig, model: nn.Module, taps: Sequence[Tap], probe: torch.Tensor, in_chans: int
) -> list[Perturbation]:
    """The sensor, amplification and global instances of one model."""
    skip = RGB_ONLY if in_chans == 1 else GREY_ONLY
    first = first_weighted(model, [t.name for t in taps], probe)
    out = [
        Perturbation(SENSOR, INPUT, fam, float(s), "input")
        for fam, strengths in cfg.input.items()
        if fam not in skip
        for s in strengths
    ]
    out += [Perturbation(SENSOR, FIRST_LAYER, fam, float(s), first) for fam, ss in cfg.first_layer.items() for s in ss]
    out += [
        Perturbation(AMPLIFICATION, MID_SCALE, "scale", float(g), site)
        for site in mid_sites(model, taps, probe, cfg.amplification_depths)
        for g in cfg.amplification_gains
    ]
    out += [
        Perturbation(GLOBAL, ALL_LAYERS, "weight_noise", float(s), "all", draw)
        for s in cfg.global_noise
        for draw in range(cfg.global_draws)
    ]
    return out


def class_shifts(cfg: ModeTruthConfig, seen: Sequence[int], unseen: Sequence[int]) -> list[Perturbation]:
    """Class-prior instances (disjoint groups of ``k`` consecutive seen classes, for each ``k`` of
    ``prior_sizes``) and held-out-class instances (each unseen class alone, and all of them together)."""
    out = []
    for k in cfg.prior_sizes:
        groups = [seen[i : i + k] for i in range(0, len(seen) - k + 1, k)]
        out += [Perturbation(MISMATCH, PRIOR, "classes", float(k), "+".join(map(str, g))) for g in groups]
    groups = [[c] for c in unseen] + ([list(unseen)] if len(unseen) > 1 else [])
    out += [Perturbation(MISMATCH, HELD_OUT, "classes", float(len(g)), "+".join(map(str, g))) for g in groups]
    return out


def perturbed_model(model: nn.Module, p: Perturbation, probe: torch.Tensor) -> nn.Module:
    """A perturbed copy of ``model`` (the clean model is never touched); ``model`` itself for input faults."""
    if p.mechanism in (FIRST_LAYER, MID_SCALE):
        return internal_fault(model, p.site, p.kind, p.strength, p.seed, probe=probe)
    if p.mechanism != ALL_LAYERS:
        return model
    names = [name for name, m in model.named_modules() if is_weighted(m)]
    faulted = model
    for name in names:  # one copy per module: small study models, and internal_fault stays the single editor
        faulted = internal_fault(faulted, name, p.kind, p.strength, fault_seed(p.seed, name))
    return faulted


def perturbed_features(
    model: nn.Module, p: Perturbation, images: torch.Tensor, names: Sequence[str], mean: float, std: float
) -> FeatureSet:
    """Tap features of the perturbed model on ``images`` (input faults change the images instead)."""
    if p.mechanism == INPUT:
        images = input_fault(p.kind, p.strength, mean, std, p.seed)(images)
    return extract_features(perturbed_model(model, p, images[:64]), images, list(names))


def class_rows(labels: np.ndarray, classes: Sequence[int], n: int) -> np.ndarray:
    """Positions of the first ``n`` pool images whose label is in ``classes`` (pool order is already random)."""
    return np.flatnonzero(np.isin(labels, list(classes)))[:n]
