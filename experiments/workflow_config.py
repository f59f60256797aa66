"""A whole config set (``workflow/config/<set>/*.yaml``) as one typed, strictly checked object.

The workflow's rules read plain mappings and each study parses its own section with its ``from_config``; this
module checks a set as a whole: every section, and the references between sections (a study's models must be
configured; CIFAR-10-C needs the CIFAR-10 dataset). ``load_config_set("paper")`` loads a set the way Snakemake
does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from experiments.calibration_check.config import CalibrationStudyConfig
from experiments.config import ConfigError, from_mapping
from experiments.corruption.config import CorruptionConfig
from experiments.data.spec import DataSpec
from experiments.diffusion.config import DiffusionStudyConfig
from experiments.localisation.config import FaultStudyConfig
from experiments.mode_truth.config import ModeTruthConfig
from experiments.models.zoo import ModelSpec
from experiments.replicates.config import ReplicatesConfig
from experiments.streams.config import StreamStudyConfig

CONFIG_ROOT = Path(__file__).resolve().parents[1] / "workflow" / "config"
"""Where the workflow's config sets live (in a source checkout)."""


@dataclass(frozen=True)
class WorkflowConfig:
    """Every setting of one config set.

    Attributes:
        config_set: the set's name (``test``, ``default``, ``paper``).
        results_dir: where intermediate results go.
        figures_dir: where figures and tables go.
        threads: threads of the multi-threaded jobs.
        models: the classifiers the studies share, by key.
        data: the classifier studies' images.
        calibration, corruption, diffusion, faults, streams, mode_truth, replicates: the studies.
    """

    config_set: str
    results_dir: str
    figures_dir: str
    threads: int
    models: Mapping[str, ModelSpec]
    calibration: CalibrationStudyConfig
    corruption: CorruptionConfig
    diffusion: DiffusionStudyConfig
    faults: FaultStudyConfig
    streams: StreamStudyConfig
    mode_truth: ModeTruthConfig
    replicates: ReplicatesConfig
    data: DataSpec = field(default_factory=DataSpec)

    def __post_init__(self) -> None:
        studies = {
            "calibration.models": self.calibration.models,
            "calibration.overhead.models": self.calibration.overhead.models,
            "corruption.models": self.corruption.models,
            "faults.models": self.faults.models,
            "streams.models": self.streams.models,
            "mode_truth.models": self.mode_truth.models,
            "replicates.groups": self.replicates.models,
        }
        for where, keys in studies.items():
            missing = [k for k in keys if k not in self.models]
            if missing:
                raise ConfigError(
                    f"{where}: {missing} are not configured under models (known: "
                    f"{', '.join(self.models)}); add them there or drop them here"
                )
        self._check_replicates()
        unet = self.calibration.unet_contract
        if unet.n_train not in self.diffusion.sizes or unet.seed not in self.diffusion.seeds:
            raise ConfigError(
                f"calibration.unet_contract: run N{unet.n_train}_s{unet.seed} is not a diffusion run (sizes "
                f"{list(self.diffusion.sizes)}, seeds {list(self.diffusion.seeds)}); pick one of them"
            )
        if self.corruption.source == "cifar10c" and self.data.dataset != "cifar10":
            raise ConfigError(f"corruption.source: 'cifar10c' needs data.dataset: cifar10, got {self.data.dataset!r}")

    def _check_replicates(self) -> None:
        """A replicate group is one recipe trained with different seeds: nothing but ``train.seed`` may differ."""
        for label, keys in self.replicates.groups.items():
            first = self.models[keys[0]]
            seeds = [self.models[k].train.seed for k in keys]
            if len(set(seeds)) != len(seeds):
                raise ConfigError(f"replicates.groups.{label}: models {list(keys)} repeat a training seed {seeds}")
            for key in keys[1:]:
                spec = self.models[key]
                if replace(spec, key=first.key, train=replace(spec.train, seed=first.train.seed)) != first:
                    raise ConfigError(
                        f"replicates.groups.{label}: models.{key} must be models.{first.key} with another "
                        "train.seed and nothing else changed; copy its recipe"
                    )


def load_config(cfg: Mapping[str, Any]) -> WorkflowConfig:
    """Check a merged config mapping (Snakemake's ``config``) strictly and return it typed.

    Raises:
        ConfigError: an unknown key anywhere (with its path and close matches), a wrong type, a failed check.
    """
    return from_mapping(WorkflowConfig, cfg)


def read_config_set(name_or_folder: str | Path) -> dict[str, Any]:
    """The YAML files of a config set merged into one mapping, as Snakemake's ``configfile:`` directives do.

    Args:
        name_or_folder: a set name under :data:`CONFIG_ROOT`, or a folder of YAML files.
    """
    folder = Path(name_or_folder)
    if not folder.is_dir():
        folder = CONFIG_ROOT / str(name_or_folder)
    if not folder.is_dir():
        known = sorted(p.name for p in CONFIG_ROOT.iterdir() if p.is_dir()) if CONFIG_ROOT.is_dir() else []
        raise ConfigError(f"no config set {str(name_or_folder)!r}: {folder} is not a folder (known sets: {known})")
    merged: dict[str, Any] = {}
    for path in sorted(folder.glob("*.yaml")):
        for key, value in (yaml.safe_load(path.read_text()) or {}).items():
            if key in merged:
                raise ConfigError(f"{key}: set twice in config set {folder.name} (again in {path.name})")
            merged[key] = value
    return merged


def load_config_set(name_or_folder: str | Path) -> WorkflowConfig:
    """Read and strictly check a config set (see :func:`read_config_set`)."""
    return load_config(read_config_set(name_or_folder))
