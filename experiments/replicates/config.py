"""The replicate study's settings (``config["replicates"]``) as a frozen dataclass."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from experiments.config import from_mapping


@dataclass(frozen=True)
class ReplicatesConfig:
    """Independently trained models per architecture, measured the same way.

    Attributes:
        groups: architecture label -> keys of ``config["models"]``: one recipe trained with different seeds (the
            workflow config checks that only ``train.seed`` differs). The first key is the model the other
            studies use.
        splits: calibration splits per model for the sigma check (each a fresh random calibration set).
        batch_sizes: batch sizes of the sigma check.
        n_batches: clean batches per split at each batch size (same order as ``batch_sizes``).
        seed: seeds the calibration splits and the batch draws.
    """

    groups: Mapping[str, tuple[str, ...]]
    splits: int = 3
    batch_sizes: tuple[int, ...] = (1, 16)
    n_batches: tuple[int, ...] = (5000, 5000)
    seed: int = 0

    def __post_init__(self) -> None:
        if len(self.n_batches) != len(self.batch_sizes):
            raise ValueError(
                f"n_batches {list(self.n_batches)} needs one entry per batch size {list(self.batch_sizes)}"
            )
        for label, keys in self.groups.items():
            if len(set(keys)) != len(keys) or len(keys) < 2:
                raise ValueError(f"replicates.groups.{label}: needs at least two distinct model keys, got {keys}")
        if self.splits < 1:
            raise ValueError(f"replicates.splits must be >= 1, got {self.splits}")

    @property
    def models(self) -> tuple[str, ...]:
        """Every model key of every group, in group order."""
        return tuple(key for keys in self.groups.values() for key in keys)

    def detection_groups(self, corruption_models: Sequence[str]) -> dict[str, tuple[str, ...]]:
        """The groups whose study model (first key) is in the corruption benchmark: their detection is replicated."""
        return {label: keys for label, keys in self.groups.items() if keys[0] in corruption_models}

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], path: str = "replicates") -> ReplicatesConfig:
        return from_mapping(cls, cfg, path)
