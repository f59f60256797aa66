"""Reference statistics of clean data: accumulate, freeze, save and load (safetensors + JSON, never pickle).

Each calibration sample goes to exactly one of two streams: the *moments* stream (per-feature mean and variance) or
the *held-out* stream (a bounded reservoir used to estimate the null distribution of the drift statistic). Keeping
them disjoint matters: scoring the very samples that defined the mean would make clean data look too clean.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from ._version import __version__
from .calibration_checks import (
    FORMAT_NAME,
    FORMAT_VERSION,
    MAX_METADATA_DEPTH,
    REMEDY,
    check_header,
    check_int,
    check_layers,
    check_real,
    check_tensors_match_header,
    describe,
    json_depth,
    parse_header,
)
from .errors import CalibrationMismatchError, CorruptCalibrationError, NonFiniteActivationError
from .fingerprint import ModelFingerprint
from .principal import principal_axes
from .stats import JointReservoir, RunningMoments

logger = logging.getLogger(__name__)

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "Calibration",
    "CalibrationAccumulator",
    "CalibrationConfig",
    "LayerReference",
    "principal_axes",
    "read_header",
]


@dataclass(frozen=True)
class CalibrationConfig:
    """How reference statistics are gathered.

    Attributes:
        holdout_fraction: share of calibration samples kept apart for the null distribution.
        reservoir_size: at most this many held-out samples are stored (memory bound: size x features x 4 bytes).
        variance_floor: per-feature variance is at least this fraction of the layer's mean variance, so a dead
            channel that wakes up under shift scores high but finite.
        seed: seeds the reservoir and the null resampling.
        principal_variance: the principal-axes statistic keeps the leading axes of the standardised features that
            explain this share of their variance (at most one axis per 10 calibration samples).
        principal_max_features: layers wider than this skip the principal axes (their covariance would need
            features^2 x 8 bytes while calibrating; 4096 -> 128 MiB); 0 disables them everywhere.
    """

    holdout_fraction: float = 0.2
    reservoir_size: int = 2048
    variance_floor: float = 1e-4
    seed: int = 0
    principal_variance: float = 0.99
    principal_max_features: int = 4096

    def __post_init__(self) -> None:
        """Refuse bad values here, not deep inside calibration (``TypeError``/``ValueError`` say what is allowed)."""
        name = "CalibrationConfig."
        checked = {
            "holdout_fraction": check_real(name + "holdout_fraction", self.holdout_fraction, 0.0, 1.0, "()"),
            "reservoir_size": check_int(name + "reservoir_size", self.reservoir_size, 2),
            "variance_floor": check_real(name + "variance_floor", self.variance_floor, 0.0, math.inf, "[)"),
            "seed": check_int(name + "seed", self.seed, 0, 2**32 - 1),
            "principal_variance": check_real(name + "principal_variance", self.principal_variance, 0.0, 1.0, "(]"),
            "principal_max_features": check_int(name + "principal_max_features", self.principal_max_features, 0),
        }
        for key, value in checked.items():  # plain int/float, so equality and the JSON header round-trip exactly
            object.__setattr__(self, key, value)

    @classmethod
    def from_json(cls, data: Any, source: str = "calibration") -> CalibrationConfig:
        """Build from a saved header's ``config``; keys missing from older files take their defaults."""
        if not isinstance(data, dict):
            raise CorruptCalibrationError(f"{source}: config must be an object, got {describe(data)}. {REMEDY}")
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise CorruptCalibrationError(f"{source}: unknown config key(s) {unknown}; known: {known}. {REMEDY}")
        try:
            return cls(**data)
        except (TypeError, ValueError) as exc:
            raise CorruptCalibrationError(f"{source}: config: {exc}. {REMEDY}") from None


@dataclass(frozen=True)
class LayerReference:
    """Frozen clean-data statistics of one layer."""

    mean: torch.Tensor  # (features,) float64
    var: torch.Tensor  # (features,) float64, floored
    holdout: torch.Tensor  # (held-out samples, features) float32, never used for mean/var
    count: int  # samples behind mean/var
    principal: torch.Tensor | None = None  # (features, axes) float32: standardised features -> whitened axes

    @property
    def n_features(self) -> int:
        return int(self.mean.shape[0])


@dataclass(frozen=True)
class Calibration:
    """Reference statistics for every tap, in execution order, plus what is needed to check compatibility."""

    layers: dict[str, LayerReference]
    config: CalibrationConfig
    n_seen: int
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check every invariant the scorer relies on; ``CorruptCalibrationError`` names the first broken one.

        Runs on construction, so NaN means, non-positive variances, mismatched sizes or a ``count`` below 2 fail
        here instead of surfacing later as the model's "non-finite activations".
        """
        if not isinstance(self.config, CalibrationConfig):
            raise CorruptCalibrationError(f"config must be a CalibrationConfig, got {type(self.config).__name__}")
        if not isinstance(self.metadata, dict) or json_depth(self.metadata) > MAX_METADATA_DEPTH:
            raise CorruptCalibrationError(
                f"metadata must be a dict of JSON values nested at most {MAX_METADATA_DEPTH} levels deep"
            )
        check_layers(self.layers, self.n_seen, LayerReference)
        if self.metadata.get("fingerprint") is not None:
            ModelFingerprint.from_json(self.metadata["fingerprint"])

    @property
    def names(self) -> list[str]:
        return list(self.layers)

    @cached_property
    def fingerprint(self) -> ModelFingerprint | None:
        """The model this calibration was made on (``metadata["fingerprint"]``), or None for older files."""
        data = self.metadata.get("fingerprint")
        return None if data is None else ModelFingerprint.from_json(data)

    def check_compatible(self, feature_sizes: Mapping[str, int] | Sequence[str]) -> None:
        """Raise ``CalibrationMismatchError`` saying what differs from the given taps (and sizes, if known)."""
        expected = list(feature_sizes)
        problems = []
        missing = [n for n in expected if n not in self.layers]
        extra = [n for n in self.layers if n not in expected]
        if missing:
            problems.append(f"taps missing from the calibration: {missing}")
        if extra:
            problems.append(f"taps in the calibration but not watched here: {extra}")
        if isinstance(feature_sizes, Mapping):
            for name, size in feature_sizes.items():
                ref = self.layers.get(name)
                if ref is not None and ref.n_features != size:
                    problems.append(f"{name!r} has {size} features here but {ref.n_features} in the calibration")
        if problems:
            raise CalibrationMismatchError(
                "calibration does not match the monitored model: "
                + "; ".join(problems)
                + ". Recalibrate on this model, or watch the same layers (`layers=` as listed in the file)."
            )

    def save(self, path: str | Path) -> Path:
        """Write a single ``.safetensors`` file whose header carries the JSON metadata."""
        path = Path(path)
        tensors: dict[str, torch.Tensor] = {}
        for name, ref in self.layers.items():
            tensors[f"{name}::mean"] = ref.mean.detach().cpu().contiguous()
            tensors[f"{name}::var"] = ref.var.detach().cpu().contiguous()
            tensors[f"{name}::holdout"] = ref.holdout.detach().cpu().contiguous()
            if ref.principal is not None:
                tensors[f"{name}::principal"] = ref.principal.detach().cpu().contiguous()
        header = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "library_version": __version__,
            "config": asdict(self.config),
            "n_seen": self.n_seen,
            "layers": [
                {
                    "name": n,
                    "n_features": r.n_features,
                    "count": r.count,
                    "n_holdout": int(r.holdout.shape[0]),
                    "principal_axes": 0 if r.principal is None else int(r.principal.shape[1]),
                }
                for n, r in self.layers.items()
            ],
            "metadata": self.metadata,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        save_file(tensors, str(tmp), metadata={"deepdrift": json.dumps(header)})
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Calibration:
        """Read a file written by ``save``, checking every header field and tensor.

        Raises:
            FileNotFoundError: no file at ``path``.
            CalibrationMismatchError: not a DeepDrift calibration, or one from a newer format version.
            CorruptCalibrationError: a field or tensor is missing, ill-typed, of the wrong shape or not finite.
        """
        header, entries = _read_checked_header(path)
        source = str(path)
        try:
            tensors = load_file(source)
        except Exception as exc:  # safetensors' own error types: truncated data, unsupported dtypes
            raise CorruptCalibrationError(f"{source}: the tensors cannot be read ({exc}). {REMEDY}") from None
        check_tensors_match_header(tensors, entries, source)
        layers = {
            entry["name"]: LayerReference(
                mean=tensors[f"{entry['name']}::mean"],
                var=tensors[f"{entry['name']}::var"],
                holdout=tensors[f"{entry['name']}::holdout"],
                count=entry["count"],
                principal=tensors.get(f"{entry['name']}::principal"),
            )
            for entry in entries
        }
        try:
            return cls(
                layers=layers,
                config=CalibrationConfig.from_json(header["config"], source),
                n_seen=header["n_seen"],
                metadata=header.get("metadata", {}),
            )
        except CorruptCalibrationError as exc:
            if str(exc).startswith(source):
                raise
            raise CorruptCalibrationError(f"{source}: {exc}. {REMEDY}") from None


def read_header(path: str | Path) -> dict[str, Any]:
    """The JSON metadata of a saved calibration, checked field by field, without loading its tensors.

    Raises the same errors as ``Calibration.load`` (except for problems that only the tensors show).
    """
    return _read_checked_header(path)[0]


def _read_checked_header(path: str | Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The raw header and its checked layer entries (``principal_axes`` filled in for older files)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no calibration file at {path}")
    try:
        with safe_open(str(path), framework="pt") as handle:
            raw = (handle.metadata() or {}).get("deepdrift")
    except Exception as exc:  # safetensors raises its own error types for non-safetensors files
        raise CalibrationMismatchError(f"{path} is not a safetensors file: {exc}") from None
    if raw is None:
        raise CalibrationMismatchError(f"{path} is a safetensors file but not a DeepDrift calibration")
    header = parse_header(raw, str(path))
    entries = check_header(header, str(path))
    CalibrationConfig.from_json(header["config"], str(path))
    fingerprint = header.get("metadata", {}).get("fingerprint")
    if fingerprint is not None:
        ModelFingerprint.from_json(fingerprint, str(path))
    return header, entries


class CalibrationAccumulator:
    """Streams batches of pooled features into moments and a held-out reservoir; mergeable across workers.

    Args:
        config: what to gather; only accumulators with equal configs merge.
        shard: this worker's index when several accumulators will be merged (a rank, a loader), so their
            reservoirs draw independent random streams; None (one accumulator) uses ``config.seed`` alone.
    """

    def __init__(self, config: CalibrationConfig = CalibrationConfig(), shard: int | None = None) -> None:
        self.config = config
        self.shard = None if shard is None else check_int("shard", shard, 0)
        self.moments: dict[str, RunningMoments] = {}
        seed = config.seed if shard is None else (config.seed, 1, shard + 1)  # no trailing 0: SeedSequence pads
        self.reservoir = JointReservoir(config.reservoir_size, seed=seed)
        self.n_seen = 0

    def update(self, features: Mapping[str, torch.Tensor]) -> None:
        """Add one batch: ``{layer: (batch, features)}`` with the same samples in every layer."""
        batch = next(iter(features.values())).shape[0]
        for name, x in features.items():
            if not bool(torch.isfinite(x).all()):
                raise NonFiniteActivationError(
                    f"layer {name!r} produced NaN/Inf activations on calibration data; calibration needs finite "
                    "activations (check the inputs' normalisation and the model's numerical stability)."
                )
        position = self.n_seen + torch.arange(batch)
        f = self.config.holdout_fraction
        held = torch.floor((position + 1) * f) > torch.floor(position * f)  # exactly share f, evenly spread
        for name, x in features.items():
            mask = held.to(x.device)
            track = x.shape[1] <= self.config.principal_max_features
            self.moments.setdefault(name, RunningMoments(track_covariance=track)).update(x[~mask])
        if bool(held.any()):
            self.reservoir.add({name: x[held.to(x.device)] for name, x in features.items()})
        self.n_seen += batch

    def merge(self, other: CalibrationAccumulator) -> CalibrationAccumulator:
        """Fold in an accumulator filled elsewhere (another loader, process or rank), in place.

        Raises ``CalibrationMismatchError`` naming what differs (layers, feature sizes, covariance tracking, config);
        ``deepdrift.merge.merge_accumulators`` merges many without changing them.
        """
        from .merge import check_mergeable  # merge builds on this module

        check_mergeable([self, other])
        for name, moments in other.moments.items():
            self.moments.setdefault(name, RunningMoments(moments.track_covariance)).merge(moments)
        self.reservoir.merge(other.reservoir)
        self.n_seen += other.n_seen
        return self

    def finalize(self, order: Sequence[str] | None = None, metadata: dict[str, Any] | None = None) -> Calibration:
        """Freeze the statistics; ``order`` gives the taps' execution order."""
        if not self.moments:
            raise ValueError("no calibration data was seen; the loader yielded nothing")
        holdout = self.reservoir.samples()
        n_holdout = len(self.reservoir)
        if n_holdout < 2:
            raise ValueError(
                f"only {n_holdout} held-out sample(s) after {self.n_seen} calibration samples; the null distribution "
                "needs at least 2 (>= 32 recommended). Calibrate on more batches or raise holdout_fraction."
            )
        if n_holdout < 32:
            logger.warning(
                "only %d held-out calibration samples; the null distribution will be rough. Calibrate on more "
                "batches (>= 160 samples gives >= 32 held out at the default holdout_fraction).",
                n_holdout,
            )
        layers = {}
        started = time.perf_counter()
        for name in order or list(self.moments):
            moments = self.moments[name]
            var = moments.variance
            floor = self.config.variance_floor * float(var.mean()) + 1e-12
            var = var.clamp_min(floor)
            principal = None
            if moments.comoment is not None:
                principal = principal_axes(
                    moments.covariance, var, self.config.principal_variance, max_axes=max(1, moments.count // 10)
                )
            elif self.config.principal_max_features > 0:
                logger.info(
                    "%s: %d pooled features > principal_max_features=%d; scored without the principal-axes "
                    "statistic (raise the limit, memory features^2 x 8 bytes, to include it)",
                    name,
                    var.shape[0],
                    self.config.principal_max_features,
                )
            layers[name] = LayerReference(
                mean=moments.mean,
                var=var,
                count=moments.count,
                holdout=holdout.get(name, torch.empty(0, var.shape[0])),
                principal=principal,
            )
        logger.info("reference statistics of %d layers frozen in %.2f s", len(layers), time.perf_counter() - started)
        return Calibration(layers=layers, config=self.config, n_seen=self.n_seen, metadata=metadata or {})
