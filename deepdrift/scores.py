"""Per-layer drift scores in sigma units, with p-values, for batches of pooled features.

``DriftScorer`` follows pytorch-ood's split: ``fit_features`` / ``score_features`` work on tensors, so the
statistics are testable without a model; the monitor feeds them from forward hooks.

Each layer gets three statistics from the standardised batch-mean shift ``z_d = (mean_d - mu_d) / sigma_d``: the
*mean shift* ``B/D * sum_d z_d^2`` (many features move a little: corruptions, input changes), the *peak shift*
``B * max_d z_d^2`` (a few features move a lot: dead or stuck channels, one broken attention head) and the
*principal-axes shift* ``B/K * |z W|^2``, with ``W`` whitening the K leading principal axes of the clean features (a
Hotelling-type statistic: a change along a quiet direction counts as much as one along a loud one). By default the
layer's p-value is their calibrated min-p combination (see ``null_model``); ``paper_figures/faults_*`` measure what
each statistic adds.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import torch

from .calibration import Calibration, CalibrationAccumulator, CalibrationConfig
from .errors import NotCalibratedError
from .inputs import batch_size_of
from .null_model import CombinedNull, fit_combined_null, resample_statistics, shift_statistics_from_means
from .null_table import NullTable
from .stacked_reference import StackedReference
from .validation import require_choice, require_int

logger = logging.getLogger(__name__)

DriftStatistic = Literal["combined", "mean_shift", "peak_shift", "principal"]
_STATISTICS = get_args(DriftStatistic)
_COLUMN = {"mean_shift": 0, "peak_shift": 1, "principal": 2}
MIN_NULL_DRAWS = 100
"""Fewer resampled batches cannot place the 90% junction of the spliced null (``null_model.TAIL_QUANTILE``)."""
NULL_CACHE_SIZE = 8
"""Batch sizes whose null fits are kept (least recently used ones are refitted when they come back)."""


@dataclass(frozen=True)
class LayerScore:
    """Drift of one layer for one batch.

    Attributes:
        drift: sigma units, ~N(0, 1) on clean data at any batch size; NaN when activations were non-finite.
        p_value: one-sided probability of a statistic at least this large on clean data.
        statistic: the raw mean-shift statistic (mean ~1 on clean data).
        nonfinite: the layer produced NaN/Inf activations in this batch.
        peak_statistic: the raw peak-shift statistic ``B * max_d z_d^2``.
        principal_statistic: the raw principal-axes statistic ``B/K * |z W|^2`` (mean ~1 on clean data).
    """

    drift: float
    p_value: float
    statistic: float
    nonfinite: bool
    peak_statistic: float = float("nan")
    principal_statistic: float = float("nan")


@dataclass(frozen=True)
class SampleScores:
    """Per-sample drift of a batch: ``drift[i, j]`` is sample ``i`` alone at layer ``layers[j]`` (sigma units).

    ``scores[layer]`` gives that layer's column.
    """

    layers: tuple[str, ...]
    drift: np.ndarray  # (samples, layers)
    p_value: np.ndarray  # (samples, layers)

    def __getitem__(self, layer: str) -> np.ndarray:
        return self.drift[:, self.layers.index(layer)]


def shift_statistics(
    features: torch.Tensor, mean: torch.Tensor, inv_std: torch.Tensor, principal: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean-shift, peak-shift and principal-axes statistics of one batch, in float64 on the features' device."""
    shift = (features.mean(dim=0, dtype=torch.float64) - mean) * inv_std
    return shift_statistics_from_means(shift, features.shape[0], principal)


class DriftScorer:
    """Calibrated drift statistics for a fixed set of layers.

    Args:
        calibration_config: how reference statistics are gathered (used by ``fit_features``).
        n_null_draws: resampled batches per batch size for the null fit (more: smoother tails, slower first call).
        statistic: ``combined`` (default: min-p of mean, peak and principal-axes shift), or one of them alone
            (``mean_shift`` alone is the classic sum-of-squares test; the single statistics serve ablations).
    """

    def __init__(
        self,
        calibration_config: CalibrationConfig = CalibrationConfig(),
        n_null_draws: int = 4000,
        statistic: DriftStatistic = "combined",
    ) -> None:
        require_choice("statistic", statistic, _STATISTICS)
        if not isinstance(calibration_config, CalibrationConfig):
            raise TypeError(f"calibration_config must be a CalibrationConfig, got {type(calibration_config).__name__}")
        self.calibration_config = calibration_config
        self.n_null_draws = require_int("n_null_draws", n_null_draws, minimum=MIN_NULL_DRAWS)
        self.statistic = statistic
        self.calibration: Calibration | None = None
        self._null_cache: OrderedDict[int, tuple[list[CombinedNull], NullTable]] = OrderedDict()
        self._device_refs: dict[tuple[str, torch.device], tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]] = {}
        self._stacked: dict[torch.device, StackedReference] = {}
        self._nonfinite_layers: set[str] = set()

    @property
    def is_calibrated(self) -> bool:
        return self.calibration is not None

    def fit_features(self, batches: Iterable[Mapping[str, torch.Tensor]]) -> DriftScorer:
        """Calibrate from an iterable of ``{layer: (batch, features)}`` dicts."""
        accumulator = CalibrationAccumulator(self.calibration_config)
        for features in batches:
            accumulator.update(features)
        return self.set_calibration(accumulator.finalize())

    def set_calibration(self, calibration: Calibration) -> DriftScorer:
        """Use frozen reference statistics (fresh or loaded); clears cached null fits."""
        self.calibration = calibration
        self._null_cache.clear()
        self._device_refs.clear()
        self._stacked.clear()
        return self

    def null_fits(self, batch_size: int) -> list[CombinedNull]:
        """Null laws for every layer at this batch size (fitted on first use; the ``NULL_CACHE_SIZE`` most
        recently used batch sizes stay cached, so a stream of ever-new batch sizes cannot grow memory)."""
        return self._nulls(batch_size)[0]

    def null_table(self, batch_size: int) -> NullTable:
        """The null laws of :meth:`null_fits` stacked into arrays (what scoring reads)."""
        return self._nulls(batch_size)[1]

    def _nulls(self, batch_size: int) -> tuple[list[CombinedNull], NullTable]:
        entry = self._null_cache.get(batch_size)
        if entry is None:
            fits = [self._fit_layer(name, batch_size) for name in self._require_calibration().names]
            entry = self._null_cache[batch_size] = (fits, NullTable.from_nulls(fits))
            while len(self._null_cache) > NULL_CACHE_SIZE:
                self._null_cache.popitem(last=False)
        else:
            self._null_cache.move_to_end(batch_size)
        return entry

    def _fit_layer(self, name: str, batch_size: int) -> CombinedNull:
        calibration = self._require_calibration()
        ref = calibration.layers[name]
        if ref.holdout.shape[0] < 2:
            raise NotCalibratedError(f"layer {name!r} has fewer than 2 held-out samples; calibrate on more data")
        z = ((ref.holdout.double() - ref.mean.cpu()) / ref.var.cpu().sqrt()).float()
        z_centred = z - z.mean(dim=0)
        generator = torch.Generator().manual_seed(calibration.config.seed * 1_000_003 + batch_size)
        # the calibration mean is itself estimated from `count` samples: every draw carries an error of that size
        draws = resample_statistics(
            z_centred, batch_size, self.n_null_draws, generator, ref.count, principal=ref.principal
        )
        return fit_combined_null(draws.numpy(), batch_size)

    def statistics(self, features: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Raw ``(layers, 3)`` mean-, peak- and principal-axes statistics as one float64 tensor on the features'
        device (no host synchronisation)."""
        features = self._in_calibration_order(features)
        devices = {x.device for x in features.values()}
        if len(devices) == 1:
            return self._stacked_on(devices.pop()).batch_statistics(features)
        values = []  # taps on several devices (a model split across GPUs): layer by layer
        for name, x in features.items():
            mean, inv_std, principal = self._reference_on(name, x.device)
            values.append(shift_statistics(x, mean, inv_std, principal))
        return torch.stack([v.to(values[0].device) for v in values])

    def _in_calibration_order(self, features: Mapping[str, torch.Tensor]) -> Mapping[str, torch.Tensor]:
        calibration = self._require_calibration()
        if list(features) != calibration.names or any(
            x.shape[1] != calibration.layers[n].n_features for n, x in features.items()
        ):
            calibration.check_compatible({n: int(x.shape[1]) for n, x in features.items()})
            features = {n: features[n] for n in calibration.names}  # same taps, other order
        return features

    def _stacked_on(self, device: torch.device) -> StackedReference:
        stacked = self._stacked.get(device)
        if stacked is None:
            calibration = self._require_calibration()
            stacked = StackedReference.build([calibration.layers[n] for n in calibration.names], device)
            self._stacked[device] = stacked
        return stacked

    def score_features(self, features: Mapping[str, torch.Tensor]) -> dict[str, LayerScore]:
        """Drift in sigma units and p-value for every layer of one batch."""
        batch_size = batch_size_of(features)
        statistic = self.statistics(features).cpu().numpy()  # the one host sync per batch
        return self.scores_from_statistics(statistic, batch_size)

    def scores_from_statistics(self, statistic: np.ndarray, batch_size: int) -> dict[str, LayerScore]:
        """Turn raw ``(layers, 3)`` statistics (in calibration order) into ``LayerScore``s."""
        names = self._require_calibration().names
        statistic = np.asarray(statistic, dtype=np.float64).reshape(len(names), 3)
        drift, p_value = self.null_table(batch_size).sigma_and_pvalue(statistic, _COLUMN.get(self.statistic))
        nonfinite = ~np.isfinite(statistic).all(axis=1)
        for i, name in enumerate(names):  # warn when a layer turns non-finite, not on every batch it stays so
            if nonfinite[i] and name not in self._nonfinite_layers:
                logger.warning("layer %r produced NaN/Inf activations; its drift is reported as NaN", name)
                self._nonfinite_layers.add(name)
            elif not nonfinite[i]:
                self._nonfinite_layers.discard(name)
        return {
            name: LayerScore(
                drift=float(drift[i]),
                p_value=float(p_value[i]),
                statistic=float(statistic[i, 0]),
                nonfinite=bool(nonfinite[i]),
                peak_statistic=float(statistic[i, 1]),
                principal_statistic=float(statistic[i, 2]),
            )
            for i, name in enumerate(names)
        }

    def score_samples(self, features: Mapping[str, torch.Tensor]) -> SampleScores:
        """Drift of every sample alone, per layer, against the batch-size-1 null (OOD-style scoring).

        Each sample is scored as a batch of one, so ``drift[i, j]`` is what ``score_features`` would report for
        sample ``i`` on its own at layer ``j``: ~N(0, 1) for clean samples.
        """
        calibration = self._require_calibration()
        features = {n: features[n] for n in calibration.names} if set(features) == set(calibration.names) else features
        calibration.check_compatible({n: int(x.shape[1]) for n, x in features.items()})
        devices = {x.device for x in features.values()}
        if len(devices) == 1:
            statistic = self._stacked_on(devices.pop()).sample_statistics(features).cpu().numpy()  # (samples, L, 3)
        else:
            columns = []
            for name, x in features.items():
                mean, inv_std, principal = self._reference_on(name, x.device)
                shift = (x.to(torch.float64) - mean) * inv_std
                columns.append(shift_statistics_from_means(shift, 1, principal).cpu())
            statistic = torch.stack(columns, dim=1).numpy()
        drift, p_value = self.null_table(1).sigma_and_pvalue(statistic, _COLUMN.get(self.statistic))
        return SampleScores(tuple(calibration.names), drift, p_value)

    def _reference_on(self, name: str, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        key = (name, device)
        cached = self._device_refs.get(key)
        if cached is None:
            ref = self._require_calibration().layers[name]
            principal = None if ref.principal is None else ref.principal.to(device, torch.float64)
            cached = (ref.mean.to(device, torch.float64), ref.var.to(device, torch.float64).rsqrt(), principal)
            self._device_refs[key] = cached
        return cached

    def _require_calibration(self) -> Calibration:
        if self.calibration is None:
            raise NotCalibratedError(
                "no reference statistics yet: call `fit_features(batches)` on clean features first, or "
                "`set_calibration(Calibration.load(path))` (with a monitor: `calibrate(loader)` / `load_calibration`)."
            )
        return self.calibration
