"""The mode-truth study's settings (``config["mode_truth"]``) as a frozen dataclass."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from experiments.config import from_mapping, keyed
from experiments.localisation.faults import INPUT_FAULTS, INTERNAL_FAULTS


@dataclass(frozen=True)
class ModeTruthConfig:
    """Perturbations whose mechanism defines the failure mode, natural shifts, and the doctor measured on both.

    Attributes:
        models: keys of ``config["models"]``; a model with ``classes`` also gets the held-out-class shift.
        input: sensor family 1: pixel faults (:data:`~experiments.localisation.faults.INPUT_FAULTS`) -> strengths.
        first_layer: sensor family 2: faults of the first weighted layer
            (:data:`~experiments.localisation.faults.INTERNAL_FAULTS`) -> strengths.
        amplification_gains: weight gains (> 1) of one mid-depth weighted module (amplification family).
        amplification_depths: relative tap depths whose first weighted module is amplified.
        global_noise: weight-noise sd (relative to each module's weight sd) added to every weighted module.
        global_draws: independent noise draws per global strength.
        prior_sizes: class-prior shift: batches drawn from this many seen classes (disjoint groups of consecutive
            seen classes).
        n_pool: held-out images whose features are extracted once per model (clean control, class subsets).
        n_images: images per perturbation instance (the first of the clean pool).
        batch_sizes: batch sizes the doctor judges.
        n_batches: batches per instance at each batch size (same order as ``batch_sizes``).
        control_batches: clean batches per batch size (false diagnoses, the detection AUROC's negatives).
        stream_models: models streamed through ``DeepDriftMonitor.step`` (clean seen-class batches, then
            held-out-class batches); each needs ``classes``.
        stream_repeats: streams per model (new batch draws each).
        stream_pre: clean batches before the change.
        stream_post: held-out-class batches after it.
        stream_batch_size: images per stream batch.
        seed: seeds the image order, the draws and the perturbations.
    """

    models: tuple[str, ...]
    stream_models: tuple[str, ...]
    input: Mapping[str, tuple[float, ...]] = keyed(INPUT_FAULTS)
    first_layer: Mapping[str, tuple[float, ...]] = keyed(INTERNAL_FAULTS)
    amplification_gains: tuple[float, ...] = (1.5, 2.0, 4.0)
    amplification_depths: tuple[float, ...] = (0.35, 0.5, 0.65)
    global_noise: tuple[float, ...] = (0.05, 0.1, 0.2)
    global_draws: int = 2
    prior_sizes: tuple[int, ...] = (1, 2)
    n_pool: int = 4000
    n_images: int = 256
    batch_sizes: tuple[int, ...] = (1, 16)
    n_batches: tuple[int, ...] = (32, 16)
    control_batches: int = 200
    stream_repeats: int = 5
    stream_pre: int = 40
    stream_post: int = 20
    stream_batch_size: int = 16
    seed: int = 0

    def __post_init__(self) -> None:
        if len(self.n_batches) != len(self.batch_sizes):
            raise ValueError(
                f"n_batches {list(self.n_batches)} needs one entry per batch size {list(self.batch_sizes)}"
            )
        if any(g <= 1 for g in self.amplification_gains):
            raise ValueError(f"amplification_gains must exceed 1 (an amplification), got {self.amplification_gains}")
        if any(not 0 <= d <= 1 for d in self.amplification_depths):
            raise ValueError(f"amplification_depths are relative depths in [0, 1], got {self.amplification_depths}")
        too_many = [(b, n) for b, n in zip(self.batch_sizes, self.n_batches, strict=True) if b * n > self.n_images]
        if too_many:
            raise ValueError(f"n_batches x batch_size exceeds n_images {self.n_images} for {too_many}")
        missing = [m for m in self.stream_models if m not in self.models]
        if missing:
            raise ValueError(f"stream_models {missing} must also be in models")

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], path: str = "mode_truth") -> ModeTruthConfig:
        return from_mapping(cls, cfg, path)
