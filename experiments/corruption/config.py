"""The corruption study's settings (``config["corruption"]``) as a frozen dataclass."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from experiments.baselines.layerwise import FOOTING_STATISTICS
from experiments.baselines.registry import OPTION_SOURCES, available_detectors, detector_options
from experiments.config import ConfigError, convert_value, from_mapping, join, parsed, unknown_key, unknown_name
from experiments.data.corruptions import config_corruption_subsets, corruption_names

DEFAULT_METHODS: tuple[str, ...] = available_detectors()
"""Every registered detector: DeepDrift's two rules and its fast preset, and the peers' seven methods."""


def method_names(raw: Any, path: str) -> Any:
    """Check ``methods`` against the detector registry (close matches for a typo)."""
    if isinstance(raw, (list, tuple)):
        for i, name in enumerate(raw):
            if isinstance(name, str) and name not in DEFAULT_METHODS:
                raise unknown_name(name, DEFAULT_METHODS, f"{path}[{i}]", "detector")
    return raw


def method_options(raw: Any, path: str) -> dict[str, dict[str, Any]]:
    """Check ``method_options`` against the detectors' own keyword arguments (their types and names)."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path}: expected a mapping of detector name -> options, got {raw!r}")
    options: dict[str, dict[str, Any]] = {}
    for name, given in raw.items():
        if name not in OPTION_SOURCES:
            raise unknown_key(name, OPTION_SOURCES, path)
        known = detector_options(name)
        if not isinstance(given, Mapping):
            raise ConfigError(f"{join(path, name)}: expected a mapping of options, got {given!r}")
        for option in given:
            if option not in known:
                raise unknown_key(option, known, join(path, name))
        options[name] = {k: convert_value(known[k], v, join(join(path, name), k)) for k, v in given.items()}
    return options


def footing_statistics(raw: Any, path: str) -> Any:
    """Check ``footing.statistics`` against the equal-footing statistics (close matches for a typo)."""
    if isinstance(raw, (list, tuple)):
        for i, name in enumerate(raw):
            if isinstance(name, str) and name not in FOOTING_STATISTICS:
                raise unknown_name(name, FOOTING_STATISTICS, f"{path}[{i}]", "statistic")
    return raw


@dataclass(frozen=True)
class FootingConfig:
    """The equal-footing comparison: every statistic on every layer DeepDrift watches, same reference rows.

    Attributes:
        statistics: names of :data:`experiments.baselines.layerwise.FOOTING_STATISTICS` (empty: skip it).
        null_draws: clean batches resampled per batch size for each peer statistic's null on each layer
            (DeepDrift's library draws 4000 for its own).
        knn_k: neighbours of the per-layer KNN statistic.
    """

    statistics: tuple[str, ...] = parsed(footing_statistics, default=FOOTING_STATISTICS)
    null_draws: int = 4000
    knn_k: int = 50

    def __post_init__(self) -> None:
        if self.null_draws < 100:
            raise ValueError(
                f"footing.null_draws must be at least 100 (the tail splice needs them), got {self.null_draws}"
            )
        if self.knn_k < 1:
            raise ValueError(f"footing.knn_k must be at least 1, got {self.knn_k}")


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
        method_options: keyword arguments per detector (``deepdrift`` for both DeepDrift rules), each checked
            against the detector's signature; options of detectors that ``methods`` leaves out are unused. A config's
            mapping replaces the default whole. The default bounds the reference sets of torchdrift's MMD and KS,
            which cost O(reference x features) per batch.
        mri_severity: severity shown in the drift MRI.
        source: ``"generate"`` (imagecorruptions on the held-out split) or ``"cifar10c"`` (the released CIFAR-10-C;
            needs ``data.dataset: cifar10``).
        forward_batch_size: batch size of feature extraction (does not change results).
        footing: the equal-footing comparison (:class:`FootingConfig`).
    """

    models: tuple[str, ...]
    corruptions: tuple[str, ...] = parsed(config_corruption_subsets, default_factory=lambda: corruption_names("all"))
    severities: tuple[int, ...] = (1, 2, 3, 4, 5)
    n_images: int = 256
    seed: int = 0
    batch_sizes: tuple[int, ...] = (1, 16, 64)
    n_batches: int = 30
    n_clean_batches: int = 100
    profile_batch_size: int = 16
    methods: tuple[str, ...] = parsed(method_names, default=DEFAULT_METHODS)
    method_options: Mapping[str, Mapping[str, Any]] = parsed(
        method_options,
        default_factory=lambda: {"knn": {"k": 50}, "mmd": {"reference_size": 250}, "ks": {"reference_size": 500}},
    )
    mri_severity: int = 3
    source: Literal["generate", "cifar10c"] = "generate"
    forward_batch_size: int = 256
    footing: FootingConfig = field(default_factory=FootingConfig)

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
    def from_config(cls, cfg: Mapping[str, Any], path: str = "corruption") -> CorruptionConfig:
        """Build from the YAML mapping; ``corruptions`` may be a list or a subset name such as ``"all"``."""
        return from_mapping(cls, cfg, path)
