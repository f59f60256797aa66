"""The corruption study's settings (``config["corruption"]``) as a frozen dataclass."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from experiments.data import corruption_names

DEFAULT_METHODS: tuple[str, ...] = (
    "deepdrift_max",
    "deepdrift_stouffer",
    "msp",
    "energy",
    "mahalanobis",
    "vim",
    "knn",
    "mmd",
    "ks",
)


@dataclass(frozen=True)
class CorruptionConfig:
    """What to corrupt and how to score it.

    Attributes:
        models: keys of ``config["models"]`` to benchmark.
        corruptions: corruption names, or one subset name of :func:`experiments.data.corruption_names`.
        severities: severities 1..5 to generate.
        n_images: held-out images corrupted per corruption and severity (the pool batches are drawn from);
            the clean pool is the same images uncorrupted, so both pools share content.
        seed: seed of the image subset, the corruptions and the batch draws.
        batch_sizes: batch sizes of the detection benchmark.
        n_batches: corrupted batches per corruption x severity x batch size.
        n_clean_batches: clean batches per batch size (shared by every corruption's AUROC).
        profile_batch_size: batch size whose mean per-tap drift makes the MRI and severity figures.
        methods: detector names of :mod:`experiments.baselines.registry`.
        method_options: keyword arguments per detector (e.g. ``{"knn": {"k": 50}}``).
        mri_severity: severity shown in the drift MRI.
        source: ``"generate"`` (imagecorruptions on the held-out split) or ``"cifar10c"`` (paper config).
        forward_batch_size: batch size of feature extraction (does not change results).
    """

    models: tuple[str, ...]
    corruptions: tuple[str, ...] = field(default_factory=lambda: corruption_names("all"))
    severities: tuple[int, ...] = (1, 2, 3, 4, 5)
    n_images: int = 256
    seed: int = 0
    batch_sizes: tuple[int, ...] = (1, 16, 64)
    n_batches: int = 30
    n_clean_batches: int = 100
    profile_batch_size: int = 16
    methods: tuple[str, ...] = DEFAULT_METHODS
    method_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    mri_severity: int = 3
    source: str = "generate"
    forward_batch_size: int = 256

    def __post_init__(self) -> None:
        if self.profile_batch_size not in self.batch_sizes:
            raise ValueError(
                f"profile_batch_size {self.profile_batch_size} must be one of batch_sizes {list(self.batch_sizes)}"
            )
        if self.mri_severity not in self.severities:
            raise ValueError(f"mri_severity {self.mri_severity} must be one of severities {list(self.severities)}")
        if max(self.batch_sizes) > self.n_images:
            raise ValueError(
                f"batch size {max(self.batch_sizes)} exceeds n_images {self.n_images}; "
                "raise n_images or drop the batch size"
            )
        if self.source not in ("generate", "cifar10c"):
            raise ValueError(f"source must be 'generate' or 'cifar10c', got {self.source!r}")

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> CorruptionConfig:
        """Build from the YAML mapping; ``corruptions`` may be a list or a subset name such as ``"all"``."""
        values = {k: v for k, v in cfg.items() if k in cls.__dataclass_fields__}
        corruptions = values.get("corruptions", "all")
        values["corruptions"] = corruption_names(corruptions) if isinstance(corruptions, str) else corruptions
        for key in ("models", "corruptions", "severities", "batch_sizes", "methods"):
            if key in values:
                values[key] = tuple(values[key])
        values["method_options"] = {k: dict(v) for k, v in dict(values.get("method_options", {})).items()}
        return cls(**values)
