"""The calibration check's settings (``config["calibration"]``): the sigma contract, the overhead timing and the
memory soak."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from experiments.config import from_mapping


@dataclass(frozen=True)
class ContractConfig:
    """How many clean batches to score, over how many calibration splits and sizes (more: tighter tails).

    Attributes:
        batch_sizes: batch sizes the contract is checked at.
        n_batches: random held-out batches per batch size and split (same order as ``batch_sizes``).
        splits: random calibration / held-out partitions of the test split, each with its own calibration.
        calibration_sizes: calibration set sizes of the size sweep (empty: no sweep); the configured ``n_calib``
            is the main grid's size.
        size_batches: batches per batch size and split in the size sweep (same order as ``batch_sizes``).
        qq_batches: batches per batch size of the first split kept raw for the QQ-plot.
        calibration_batch_size: batch size of the calibration pass (does not change results).
        noise_std: Gaussian pixel noise (normalised units) of the detection check.
        noise_batch_size: batch size of the detection check.
        noise_batches: noisy batches scored.
        seed: seeds the splits, the batch draws and the noise.
    """

    batch_sizes: tuple[int, ...] = (1, 16, 128)
    n_batches: tuple[int, ...] = (10000, 10000, 2000)
    splits: int = 5
    calibration_sizes: tuple[int, ...] = (250, 500, 1000, 2000, 4000)
    size_batches: tuple[int, ...] = (2000, 2000, 1000)
    qq_batches: int = 2000
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
        if self.calibration_sizes and len(self.size_batches) != len(self.batch_sizes):
            raise ValueError(
                f"size_batches {list(self.size_batches)} needs one entry per batch size {list(self.batch_sizes)} "
                "when calibration_sizes is set"
            )
        if self.splits < 1:
            raise ValueError(f"splits must be at least 1, got {self.splits}")


@dataclass(frozen=True)
class ReferenceModel:
    """A standard architecture timed beside the study models, with random weights (timing does not depend on them).

    Attributes:
        name: a torchvision (``resnet50``) or timm (``vit_small_patch16_224``) model name.
        source: the library that builds it.
        resolution: input side length in pixels (three channels).
        batch_sizes: this model's batch sizes, where they differ from the section's (a slow model at fewer).
    """

    name: str
    source: Literal["torchvision", "timm"]
    resolution: int = 224
    batch_sizes: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.resolution < 8:
            raise ValueError(f"resolution must be at least 8 pixels, got {self.resolution}")
        if self.batch_sizes is not None and (not self.batch_sizes or min(self.batch_sizes) < 1):
            raise ValueError(f"batch_sizes must be a non-empty list of positive sizes, got {list(self.batch_sizes)}")

    @property
    def label(self) -> str:
        """``name@resolution``, how tables and ``calibration_cost.models`` name it."""
        return f"{self.name}@{self.resolution}"


@dataclass(frozen=True)
class CalibrationCostConfig:
    """Throughput and peak memory of ``monitor.calibrate`` against a bare forward pass over the same batches.

    Attributes:
        models: which models to measure: study keys (``cnn``) and reference labels (``resnet18@224``).
        images: images in the loader (each arm runs once over them, in a fresh process).
        batch_size: loader batch size.
    """

    models: tuple[str, ...]
    images: int = 256
    batch_size: int = 32


@dataclass(frozen=True)
class OverheadConfig:
    """What watching a model costs: ``monitor.step`` against a bare forward pass and the no-op-hook floor.

    Attributes:
        models: keys of ``config["models"]``: study models, timed with their trained weights at their own
            resolution on held-out images.
        reference_models: standard architectures with random weights, timed on smooth synthetic images.
        calibration_cost: the calibration throughput and memory measurement.
        batch_sizes: batch sizes timed.
        repetitions: interleaved rounds of every arm per model and batch size (the median is reported).
        min_repetitions: rounds kept even when a cell runs past ``max_seconds_per_cell``.
        max_seconds_per_cell: a cell (one model and batch size, warm-up included) stops after the round that
            passes this many seconds, once it has ``min_repetitions`` rounds.
        warmup: untimed rounds first.
        calibration_images: images each monitor is calibrated on before timing.
        device: ``cpu``, ``cuda`` or ``auto`` (the GPU when there is one); timings synchronise with a GPU
            around every call.
        seed: seeds the synthetic images and the reference models' weights.
    """

    models: tuple[str, ...]
    reference_models: tuple[ReferenceModel, ...]
    calibration_cost: CalibrationCostConfig
    batch_sizes: tuple[int, ...] = (1, 16, 64)
    repetitions: int = 20
    min_repetitions: int = 5
    max_seconds_per_cell: float = 15.0
    warmup: int = 1
    calibration_images: int = 512
    device: Literal["cpu", "cuda", "auto"] = "cpu"
    seed: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.min_repetitions <= self.repetitions:
            raise ValueError(
                f"need 1 <= min_repetitions <= repetitions, got {self.min_repetitions} and {self.repetitions}"
            )
        labels = self.labels
        if len(set(labels)) != len(labels):
            raise ValueError(f"models and reference_models name one model twice: {list(labels)}")
        unknown = [m for m in self.calibration_cost.models if m not in labels]
        if unknown:
            raise ValueError(
                f"calibration_cost.models {unknown} are not timed here; choose among {list(labels)} "
                "(study keys and reference labels name@resolution)"
            )

    @property
    def labels(self) -> tuple[str, ...]:
        """Every timed model's table label: study keys, then reference labels."""
        return (*self.models, *(m.label for m in self.reference_models))


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
class UNetContractConfig:
    """The sigma contract on the diffusion study's U-Net blocks at fixed timesteps (rule calibration_contract_unet).

    The contract's splits, batch sizes and batch counts apply; this section says which trained U-Net, at which
    noise levels, on how many held-out images.

    Attributes:
        n_train, seed: the diffusion run ``N<n_train>_s<seed>`` whose last EMA checkpoint is checked (a run of the
            diffusion section's sizes and seeds).
        timesteps: the noise levels; each is one row of the contract, like a model.
        n_pool: images of the diffusion study's reserved held-out pool that each split re-partitions.
        n_calib: calibration images per split (the classifiers' contract calibrates on ``data.n_calib``).
    """

    n_train: int = 1000
    seed: int = 0
    timesteps: tuple[int, ...] = (50, 200, 500)
    n_pool: int = 6000
    n_calib: int = 2000

    def __post_init__(self) -> None:
        if not self.timesteps or min(self.timesteps) < 0:
            raise ValueError(f"timesteps must be a non-empty list of timesteps >= 0, got {list(self.timesteps)}")
        if not 2 <= self.n_calib < self.n_pool:
            raise ValueError(f"need 2 <= n_calib < n_pool, got n_calib={self.n_calib} and n_pool={self.n_pool}")


@dataclass(frozen=True)
class CalibrationStudyConfig:
    """The ``calibration`` section: which models the contract runs on, the contract (and its U-Net part), and the
    overhead timing."""

    models: tuple[str, ...]
    overhead: OverheadConfig
    contract: ContractConfig = field(default_factory=ContractConfig)
    soak: SoakSettings = field(default_factory=SoakSettings)
    unet_contract: UNetContractConfig = field(default_factory=UNetContractConfig)

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], path: str = "calibration") -> CalibrationStudyConfig:
        return from_mapping(cls, cfg, path)
