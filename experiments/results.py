"""Where a config set's raw results live, and readers for them, shared by the studies' reports and the notebooks.

The workflow writes a config set's intermediate results under its ``results_dir`` (``results/<set>`` in a
checkout, next to ``workflow/``). :class:`Results` names the files the rules write there, so a notebook never
spells the layout itself. One environment variable moves every reader to another folder (a copied or cluster
run)::

    DEEPDRIFT_RESULTS_DIR=/scratch/deepdrift/results/default jupyter lab notebooks/

The layout mirrors ``workflow/rules/*.smk``; ``tests/experiments/test_results.py`` checks it against the rules.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

RESULTS_DIR_ENV = "DEEPDRIFT_RESULTS_DIR"
"""Environment variable naming a results folder (one config set's ``results_dir``); it overrides the default."""

REPO_ROOT = Path(__file__).resolve().parents[1]
"""The checkout the workflow runs in (its ``results_dir`` is relative to it)."""

DIFFUSION_FRAMES: tuple[str, ...] = ("memorisation", "loss", "drift", "geometry")
"""The per-run tables of the diffusion study (``diffusion/N<n>_s<seed>/<frame>.csv``)."""

_RUN = re.compile(r"N(\d+)_s(\d+)")


def diffusion_run(n_train: int, seed: int) -> str:
    """Folder name of one diffusion run (``N32_s0``), as the rules' ``{run}`` wildcard spells it."""
    return f"N{n_train}_s{seed}"


def parse_diffusion_run(name: str) -> tuple[int, int]:
    """``(n_train, seed)`` of a diffusion run's folder name.

    Raises:
        ValueError: the name is not ``N<n>_s<seed>``.
    """
    match = _RUN.fullmatch(name)
    if match is None:
        raise ValueError(f"{name!r} is not a diffusion run name like 'N32_s0'")
    return int(match[1]), int(match[2])


def read_frames(paths: Mapping[str, Sequence[str | os.PathLike]]) -> dict[str, pd.DataFrame]:
    """Concatenate the CSVs of every run per frame name: ``{frame: [path, ...]}`` -> ``{frame: table}``."""
    return {name: pd.concat([pd.read_csv(p) for p in files], ignore_index=True) for name, files in paths.items()}


@dataclass(frozen=True)
class Results:
    """The raw results of one config set.

    Example:
        >>> results = Results.of("test")  # doctest: +SKIP
        >>> profile = pd.read_csv(results.corruption_profile)  # doctest: +SKIP
    """

    root: Path

    @classmethod
    def of(cls, config_set: str = "default", root: str | os.PathLike | None = None) -> Results:
        """``root``, else ``$DEEPDRIFT_RESULTS_DIR``, else the config set's own ``results_dir`` in this checkout."""
        root = root if root is not None else os.environ.get(RESULTS_DIR_ENV)
        if root is None:
            from experiments.workflow_config import load_config_set

            root = REPO_ROOT / load_config_set(config_set).results_dir
        return cls(Path(root))

    @property
    def corruption_profile(self) -> Path:
        """Mean drift per model, tap, corruption and severity (rule ``corruption_report``)."""
        return self.root / "corruption" / "drift_profile.csv.gz"

    def diffusion_dir(self, n_train: int, seed: int) -> Path:
        """Folder of one diffusion run (rules ``diffusion_train`` and ``diffusion_evaluate``)."""
        return self.root / "diffusion" / diffusion_run(n_train, seed)

    def diffusion_manifest(self, n_train: int, seed: int) -> Path:
        """The training manifest of one run: checkpoint steps and files, training loss."""
        return self.diffusion_dir(n_train, seed) / "train.json"

    def diffusion_frames(self) -> dict[str, pd.DataFrame]:
        """Every evaluated run's tables per frame name (empty when no run has been evaluated)."""
        paths = {name: sorted((self.root / "diffusion").glob(f"N*_s*/{name}.csv")) for name in DIFFUSION_FRAMES}
        return read_frames(paths) if all(paths.values()) else {}
