"""``DeepDriftMonitor``: the public facade tying taps, calibration, scores and per-layer FSMs together.

Seed-compatible: ``DeepDriftMonitor(model, arch_name='ResNet-18', drift_config=ObserverConfig(...))``,
``calibrate(loader, max_batches=50)``, ``status, alerts = step(batch)``. Unlike the original it keeps the model's
output (``last_output``), removes its hooks after every call, and reports drift in calibrated sigma units.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .calibration import Calibration, CalibrationAccumulator, CalibrationConfig
from .errors import CalibrationMismatchError, NotCalibratedError
from .history import DriftHistory
from .inputs import ForwardFn, batch_size_of, call_model
from .layer_selection import LayerRequest
from .null_model import adjust_pvalues
from .observer import Alert, AlertKind, LayerObserver, MonitorState, ObserverConfig
from .pooling import PoolingConfig
from .scores import DriftScorer, DriftStatistic, LayerScore
from .taps import LayerTaps, Tap

logger = logging.getLogger(__name__)

Status = dict[str, dict[str, Any]]


class DeepDriftMonitor:
    """Watch a model's layers for distribution drift, batch by batch.

    Args:
        model: any ``nn.Module`` (torchvision, timm, diffusers U-Nets, plain ``nn.Sequential`` ...).
        arch_name: optional hint such as ``'ResNet-18'`` (layers are chosen from the model's own structure).
        drift_config: per-layer FSM thresholds.
        layers: explicit module names to watch (default: automatic selection).
        layers_map: the original's ``{label: module name}``; labels appear in alerts.
        pooling: how layer outputs become one vector per sample.
        calibration_config: held-out share, reservoir size, seed.
        correction: multiple-testing correction across layers for ``p_adjusted`` (``'holm'`` or ``'bh'``).
        on_alert: called with every ``Alert`` as it happens (they are also logged).
        forward_fn: ``forward_fn(model, batch)`` for models whose call needs more than ``model(x)``.
        history_size: how many past steps to keep for timelines (None: all).
        n_null_draws: resampled clean batches behind each layer's null law, per batch size.
        statistic: per-layer test: ``combined`` (mean, peak and principal-axes shift, min-p), or one of
            ``mean_shift``, ``peak_shift``, ``principal``.
    """

    def __init__(
        self,
        model: nn.Module,
        arch_name: str | None = None,
        drift_config: ObserverConfig | None = None,
        *,
        layers: LayerRequest = None,
        layers_map: Mapping[str, str] | None = None,
        pooling: PoolingConfig = PoolingConfig(),
        calibration_config: CalibrationConfig = CalibrationConfig(),
        correction: str = "holm",
        on_alert: Callable[[Alert], None] | None = None,
        forward_fn: ForwardFn | None = None,
        history_size: int | None = None,
        n_null_draws: int = 4000,
        statistic: DriftStatistic = "combined",
    ) -> None:
        if layers is not None and layers_map is not None:
            raise ValueError("pass either `layers` or `layers_map`, not both")
        if correction not in ("holm", "bh"):
            raise ValueError(f"correction must be 'holm' or 'bh', got {correction!r}")
        self.model = model
        self.arch_name = arch_name
        self.config = drift_config or ObserverConfig()
        self.correction = correction
        self.on_alert = on_alert
        self.forward_fn = forward_fn
        self._taps = LayerTaps(model, arch_name=arch_name, layers=layers_map or layers, pooling=pooling)
        self.scorer = DriftScorer(calibration_config, n_null_draws=n_null_draws, statistic=statistic)
        self.history_size = history_size
        self.last_output: Any = None
        self._closed = False
        self._warned_training = False
        self._reset_observers()

    # ----------------------------------------------------------------- structure
    @property
    def taps(self) -> tuple[Tap, ...]:
        """Watched layers in depth (execution) order."""
        return self._taps.taps

    @property
    def pooling(self) -> PoolingConfig:
        """How each watched output becomes one vector per sample (as recorded in saved calibrations)."""
        return self._taps.pooling

    @property
    def layer_names(self) -> list[str]:
        return self._taps.names

    @property
    def is_calibrated(self) -> bool:
        return self.scorer.is_calibrated

    @property
    def calibration(self) -> Calibration:
        if self.scorer.calibration is None:
            raise NotCalibratedError("the monitor is not calibrated yet: call `calibrate(loader)` first")
        return self.scorer.calibration

    @property
    def state(self) -> MonitorState:
        """Model-level state: the worst state of any layer."""
        return max((o.state for o in self._observers.values()), key=lambda s: s.severity, default=MonitorState.NORMAL)

    # --------------------------------------------------------------- calibration
    def calibrate(self, loader: Iterable[Any], max_batches: int | None = None, progress: bool | None = None,
                  ) -> DeepDriftMonitor:
        """Learn per-layer reference statistics from clean data.

        Args:
            loader: yields tensors, ``(x, y)`` pairs or dicts; inputs are moved to the model's device.
            max_batches: stop after this many batches (None: the whole loader).
            progress: show a progress bar (None: only in a terminal).
        """
        self._check_open()
        accumulator = CalibrationAccumulator(self.scorer.calibration_config)
        total = _length(loader)
        if max_batches is not None:
            total = max_batches if total is None else min(total, max_batches)
        batches = islice(loader, max_batches) if max_batches is not None else loader
        with evaluation_mode(self.model), torch.no_grad():
            for batch in tqdm(batches, total=total, desc="calibrating", unit="batch",
                              disable=None if progress is None else not progress):
                _, features = self._taps.run(lambda b=batch: call_model(self.model, b, self.forward_fn))
                batch_size_of(features)
                accumulator.update(features)
        metadata = {
            "model_class": type(self.model).__name__,
            "arch_name": self.arch_name,
            "selection_rule": self._taps.rule,
            "pooling": asdict(self.pooling),
            "taps": [{"name": t.name, "label": t.label, "depth": t.depth, "zone": t.zone} for t in self.taps],
        }
        self.scorer.set_calibration(accumulator.finalize(order=self.layer_names, metadata=metadata))
        self._reset_observers()
        logger.info("calibrated %d taps on %d samples", len(self.taps), accumulator.n_seen)
        return self

    def save_calibration(self, path: str | Path) -> Path:
        """Save reference statistics as one safetensors file with JSON metadata."""
        return self.calibration.save(path)

    def load_calibration(self, path: str | Path) -> DeepDriftMonitor:
        """Load reference statistics saved by ``save_calibration``; the taps must match."""
        calibration = Calibration.load(path)
        calibration.check_compatible(self.layer_names)
        saved_pooling = calibration.metadata.get("pooling")
        if saved_pooling is not None and saved_pooling != asdict(self.pooling):
            raise CalibrationMismatchError(
                f"{path} was calibrated with pooling {saved_pooling}, but this monitor pools with "
                f"{asdict(self.pooling)}. Create the monitor with `pooling=PoolingConfig(**{saved_pooling})` "
                "or recalibrate."
            )
        self._taps.set_order(calibration.names)
        self.scorer.set_calibration(calibration)
        self._reset_observers()
        return self

    # ------------------------------------------------------------------ scoring
    def score(self, batch: Any) -> dict[str, LayerScore]:
        """Drift of every layer for one batch, without touching the FSM (research mode)."""
        self._require_calibrated()
        self._check_open()
        with contextlib.ExitStack() as stack, torch.no_grad():
            if self.model.training:  # monitoring must not update batch-norm buffers or sample dropout
                if not self._warned_training:
                    logger.warning("model is in training mode; step()/score() run it in eval mode, as calibrate() "
                                   "does (call model.eval() to silence this)")
                    self._warned_training = True
                stack.enter_context(evaluation_mode(self.model))
            output, features = self._taps.run(lambda: call_model(self.model, batch, self.forward_fn))
            scores = self.scorer.score_features(features)
        self.last_output = output
        return scores

    def step(self, batch: Any) -> tuple[Status, list[Alert]]:
        """Score one batch, advance every layer's FSM, and return ``(status, alerts)``.

        ``status`` maps each tap (depth order) to ``drift``, ``p_value``, ``p_adjusted``, ``slope``, ``state``,
        ``zone``, ``depth``, ``label`` and ``nonfinite``. The model's output is kept in ``last_output``.
        """
        scores = self.score(batch)
        self._step += 1
        p_adjusted = adjust_pvalues(np.array([scores[t.name].p_value for t in self.taps]), self.correction)
        status: Status = {}
        alerts: list[Alert] = []
        for tap, p_adj in zip(self.taps, p_adjusted, strict=True):
            score, observer = scores[tap.name], self._observers[tap.name]
            alerts.extend(observer.update(score.drift, self._step))
            status[tap.name] = {
                "drift": score.drift, "p_value": score.p_value, "p_adjusted": float(p_adj),
                "statistic": score.statistic, "peak_statistic": score.peak_statistic,
                "principal_statistic": score.principal_statistic, "slope": observer.slope,
                "state": observer.state.value,
                "zone": tap.zone, "depth": tap.depth, "label": tap.label, "nonfinite": score.nonfinite,
            }
        self.history.record(self._step, np.array([d["drift"] for d in status.values()]),
                            [d["state"] for d in status.values()], alerts)
        for alert in alerts:
            logger.log(logging.INFO if alert.kind is AlertKind.RECOVERY else logging.WARNING, "%s", alert)
            if self.on_alert is not None:
                self.on_alert(alert)
        return status, alerts

    def reset(self) -> None:
        """Forget FSM states and history; keep the calibration."""
        self._reset_observers()

    # -------------------------------------------------------------- lifecycle
    def close(self) -> None:
        """Mark the monitor closed and drop the last output. Hooks are only attached for the duration of each
        call (registered in ``try``, removed in ``finally``), so none remain on the model either way."""
        self._closed = True
        self.last_output = None

    def __enter__(self) -> DeepDriftMonitor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "calibrated" if self.is_calibrated else "not calibrated"
        return f"DeepDriftMonitor({type(self.model).__name__}, taps={self.layer_names}, {state})"

    # --------------------------------------------------------------- internals
    def _reset_observers(self) -> None:
        self._observers = {t.name: LayerObserver(t.name, t.label, t.zone, self.config) for t in self.taps}
        self._step = 0
        self.history = DriftHistory(self.layer_names, [t.label for t in self.taps], self.history_size)

    def _require_calibrated(self) -> None:
        if not self.is_calibrated:
            raise NotCalibratedError(
                "the monitor is not calibrated: call `monitor.calibrate(clean_loader, max_batches=50)` or "
                "`monitor.load_calibration(path)` before `step()`."
            )

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this monitor was closed; create a new DeepDriftMonitor")


def _length(loader: Iterable[Any]) -> int | None:
    try:
        return len(loader)  # type: ignore[arg-type]
    except TypeError:
        return None


@contextmanager
def evaluation_mode(model: nn.Module) -> Iterator[None]:
    """Put a model in eval mode and restore every submodule's own train/eval flag afterwards."""
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        yield
    finally:
        for module, mode in modes.items():
            module.training = mode
