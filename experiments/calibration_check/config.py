"""The calibration check's settings (``config["calibration"]``): the sigma contract, the overhead timing and the
memory soak."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from experiments.config import from_mapping


@dataclass(frozen=True)
class ContractConfig:
    """How many held-out batches to score per batch size (more: tighter estimates of the 1% tail).

    Attributes:
        batch_sizes: batch sizes the contract is checked at.
        n_batches: random held-out batches per batch size (same order as ``batch_sizes``).
        calibration_batch_size: batch size of the calibration pass (does not change results).
        noise_std: Gaussian pixel noise (normalised units) of the detection check.
        noise_batch_size: batch size of the detection check.
        noise_batches: noisy batches scored.
        seed: seeds the batch draws and the noise.
    """

    batch_sizes: tuple[int, ...] = (1, 16, 128)
    n_batches: tuple[int, ...] = (2000, 1000, 400)
    calibration_batch_size: int = 128
    noise_std: float = 0.5
    noise_batch_size: int = 16
    noise_batches: int = 50
    seed: int = 0

    def __post_init__(self) -> None:
        if len(self.n_batches) != len(self.batch_sizes):
            raise ValueError(
                f"n_batches {list(self.n_batches)} needs one entry per batch size {list(self.batch_sizes)}"
            )


@dataclass(frozen=True)
class OverheadConfig:
    """Timing of ``monitor.step`` against a plain forward pass.

    Attributes:
        models: keys of ``config["models"]`` to time.
        batch_sizes: batch sizes timed.
        repetitions: interleaved forward/step pairs per batch size (the median is reported).
        warmup: untimed pairs first.
        seed: seeds the sampled batches.
    """

    models: tuple[str, ...]
    batch_sizes: tuple[int, ...] = (1, 16, 64)
    repetitions: int = 30
    warmup: int = 3
    seed: int = 0


@dataclass(frozen=True)
class SoakSettings:
    """A long stream of ``monitor.step`` calls with the resident memory sampled (``calibration_check.soak``).

    Attributes:
        steps: steps in the stream (the bounds of a default monitor are reached after 10,000).
        samples: memory readings along the stream.
    """

    steps: int = 100_000
    samples: int = 50


@dataclass(frozen=True)
class CalibrationStudyConfig:
    """The ``calibration`` section: which models the contract runs on, the contract, and the overhead timing."""

    models: tuple[str, ...]
    overhead: OverheadConfig
    contract: ContractConfig = field(default_factory=ContractConfig)
    soak: SoakSettings = field(default_factory=SoakSettings)

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], path: str = "calibration") -> CalibrationStudyConfig:
        return from_mapping(cls, cfg, path)
