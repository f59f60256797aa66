"""PyTorch Lightning callback: score validation, test and predict batches with a ``DeepDriftMonitor`` and log the drift.

The monitor watches the ``LightningModule`` itself or one of its submodules. ``monitor.step(batch)`` runs its own,
second forward pass under ``no_grad`` in eval mode (hooks are attached only for that call), so the model's own step
is untouched. That suits validation, test and prediction; training batches are not monitored (the weights move
under them, and every optimiser step would pay a second forward pass).

Example:
    >>> from lightning.pytorch.loggers import CSVLogger  # doctest: +SKIP
    >>> monitor = DeepDriftMonitor(lit_model.net)  # doctest: +SKIP
    >>> callback = DeepDriftCallback(monitor, calibrate_loader=clean_loader)  # doctest: +SKIP
    >>> trainer = pl.Trainer(callbacks=[callback], logger=CSVLogger("logs"))  # doctest: +SKIP
    >>> trainer.fit(lit_model, train_loader, val_loader)  # logs deepdrift/drift/<layer> per epoch  # doctest: +SKIP
    >>> trainer.predict(lit_model, incoming_loader); callback.alerts  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math
import warnings
import weakref
from collections.abc import Iterable
from typing import Any

from ..errors import DeepDriftWarning, NotCalibratedError
from ..observer import Alert, MonitorState
from ..status import Status
from ..validation import require_int

try:
    import lightning.pytorch as pl
except ImportError:  # pragma: no cover - depends on what is installed
    try:
        import pytorch_lightning as pl  # the package's name before Lightning 2.0
    except ImportError as exc:
        raise ImportError(
            "DeepDriftCallback needs PyTorch Lightning: pip install 'deepdrift[lightning]' (or pip install lightning)"
        ) from exc

logger = logging.getLogger(__name__)

STAGES = ("validate", "test", "predict")
"""Trainer stages whose batches the callback can monitor."""


class _PassSummary:
    """Running per-layer drift means, worst states and alert counts of one validation/test pass, per dataloader."""

    def __init__(self) -> None:
        self.sums: dict[int, dict[str, list[float]]] = {}  # dataloader -> layer -> [sum of finite drift, count]
        self.state: dict[int, dict[str, int]] = {}
        self.alerts: dict[int, int] = {}

    def add(self, status: Status, alerts: list[Alert], dataloader_idx: int) -> None:
        sums = self.sums.setdefault(dataloader_idx, {})
        state = self.state.setdefault(dataloader_idx, {})
        for name, layer in status.items():
            total = sums.setdefault(name, [0.0, 0])
            if math.isfinite(layer.drift):  # non-finite layers show in their state (ALERT), not in the mean
                total[0] += layer.drift
                total[1] += 1
            state[name] = max(state.get(name, 0), MonitorState(layer.state).severity)
        self.alerts[dataloader_idx] = self.alerts.get(dataloader_idx, 0) + len(alerts)

    def metrics(self, prefix: str) -> dict[str, dict[str, float]]:
        """Mean drift and worst state per layer, alert count and the largest layer mean, per dataloader; grouped by
        how ranks combine them (``mean``, ``max``, ``sum``)."""
        out: dict[str, dict[str, float]] = {"mean": {}, "max": {}, "sum": {}}
        several = len(self.sums) > 1
        for idx, layers in self.sums.items():
            suffix = f"/dataloader_idx_{idx}" if several else ""
            means = {name: total / count if count else math.nan for name, (total, count) in layers.items()}
            out["mean"].update({f"{prefix}/drift/{name}{suffix}": value for name, value in means.items()})
            out["max"].update({f"{prefix}/state/{name}{suffix}": float(s) for name, s in self.state[idx].items()})
            out["max"][f"{prefix}/max_drift{suffix}"] = max(
                (v for v in means.values() if not math.isnan(v)), default=math.nan
            )
            out["sum"][f"{prefix}/alerts{suffix}"] = float(self.alerts[idx])
        return out


def batch_metrics(status: Status, alerts: list[Alert], prefix: str = "deepdrift") -> dict[str, float]:
    """One step's metrics: ``<prefix>/drift/<layer>``, ``<prefix>/state/<layer>`` (0 normal, 1 warning, 2 alert),
    ``<prefix>/alerts`` (alert events of this step) and ``<prefix>/max_drift``."""
    out = {f"{prefix}/drift/{name}": float(layer.drift) for name, layer in status.items()}
    out.update({f"{prefix}/state/{name}": float(MonitorState(layer.state).severity) for name, layer in status.items()})
    out[f"{prefix}/alerts"] = float(len(alerts))
    finite = [layer.drift for layer in status.values() if math.isfinite(layer.drift)]
    out[f"{prefix}/max_drift"] = max(finite, default=math.nan)
    return out


class DeepDriftCallback(pl.Callback):
    """Step a ``DeepDriftMonitor`` on validation/test/predict batches and send its drift to Lightning's loggers.

    Validation and test passes log, once per pass through ``pl_module.log_dict``: ``<prefix>/drift/<layer>`` (mean
    drift over the pass, sigma units), ``<prefix>/state/<layer>`` (worst state reached: 0 normal, 1 warning,
    2 alert), ``<prefix>/alerts`` (alert events) and ``<prefix>/max_drift`` (the largest layer mean), with
    ``/dataloader_idx_<i>`` appended when there are several dataloaders. Prediction cannot use ``self.log``, so
    every monitored predict batch goes to ``trainer.loggers`` via ``log_metrics`` with its own values. Sanity-check
    batches are skipped. Every alert event is kept in ``alerts``; the latest status in ``last_status``.

    Args:
        monitor: a ``DeepDriftMonitor`` of the LightningModule or one of its submodules.
        log_every_n: step the monitor on every n-th batch of a monitored stage (each step is one extra forward pass).
        stages: which of ``"validate"``, ``"test"``, ``"predict"`` to monitor.
        prefix: first part of every metric name.
        calibrate_loader: clean batches (e.g. a training-set loader) to calibrate the monitor from when it is not
            calibrated: before the first monitored pass, on the weights that pass sees (at ``on_fit_start`` when
            ``recalibrate=False``).
        calibrate_batches: batches of ``calibrate_loader`` used per calibration.
        recalibrate: with a ``calibrate_loader``, calibrate again before a monitored pass when training has moved
            the weights since the last calibration: a reference taken from other weights measures the training,
            not the data. Without one, the callback warns once instead.
        reset_each_pass: start every monitored pass (and each of its dataloaders) with fresh layer states
            (``monitor.reset()``, which also clears ``monitor.history``): a validation pass is one evaluation, not
            the continuation of the previous one.
            False carries states (and hysteresis) from pass to pass, as for one long stream.
    """

    def __init__(
        self,
        monitor: Any,
        log_every_n: int = 1,
        stages: Iterable[str] = ("validate", "predict"),
        prefix: str = "deepdrift",
        *,
        calibrate_loader: Iterable[Any] | None = None,
        calibrate_batches: int | None = 50,
        recalibrate: bool = True,
        reset_each_pass: bool = True,
    ) -> None:
        require_int("log_every_n", log_every_n, minimum=1)
        if calibrate_batches is not None:
            require_int("calibrate_batches", calibrate_batches, minimum=1)
        stages = (stages,) if isinstance(stages, str) else tuple(stages)
        if unknown := [s for s in stages if s not in STAGES]:
            raise ValueError(f"unknown stages {unknown}; choose from {list(STAGES)}")
        if not hasattr(monitor, "step") or not hasattr(monitor, "calibrate"):
            raise TypeError(f"monitor must be a DeepDriftMonitor, got {type(monitor).__name__}")
        self.monitor = monitor
        self.log_every_n = log_every_n
        self.stages = stages
        self.prefix = prefix
        self.calibrate_loader = calibrate_loader
        self.calibrate_batches = calibrate_batches
        self.recalibrate = recalibrate
        self.reset_each_pass = reset_each_pass
        self.alerts: list[Alert] = []
        self.last_status: Status | None = None
        # (trainer, global step, calibration): the weights the monitor's current calibration describes
        self._anchor: tuple[weakref.ref[Any], int, Any] | None = None
        self._warned_stale = False
        self._warned_watch = False
        self._summary = _PassSummary()
        self._predict_steps = 0

    # ------------------------------------------------------------ calibration
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._check_watches(pl_module)
        if self.monitor.is_calibrated:
            self._is_stale(trainer)  # anchors a calibration made before fit to the weights fit starts from
        elif self.calibrate_loader is not None and not self.recalibrate:
            self._calibrate(trainer)  # with recalibrate, wait for the weights the first pass will see

    def _prepare(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Before a monitored pass: calibrate if needed (or stale), else fail with how to fix it."""
        self._check_watches(pl_module)
        stale = self.monitor.is_calibrated and self._is_stale(trainer)
        if self.calibrate_loader is not None and (not self.monitor.is_calibrated or (stale and self.recalibrate)):
            self._calibrate(trainer)  # also starts the FSMs afresh
        elif self.monitor.is_calibrated:
            if stale and not self._warned_stale:
                self._warned_stale = True
                warnings.warn(
                    f"the monitor was calibrated at global step {self._anchor[1]} and training has moved the "
                    f"weights since (step {trainer.global_step}): drift now measures the training as well as the "
                    "data. Pass DeepDriftCallback(calibrate_loader=clean_loader, recalibrate=True) to recalibrate "
                    "before each monitored pass",
                    DeepDriftWarning,
                    stacklevel=2,
                )
            if self.reset_each_pass:
                self.monitor.reset()
        if not self.monitor.is_calibrated:
            raise NotCalibratedError(
                "DeepDriftCallback got an uncalibrated monitor: call monitor.calibrate(clean_loader) before the "
                "trainer runs, or pass DeepDriftCallback(monitor, calibrate_loader=clean_loader)"
            )

    def _is_stale(self, trainer: pl.Trainer) -> bool:
        """True when this trainer has taken optimiser steps since the monitor's current calibration was made.

        A calibration first seen (new, or made by the user between runs) or a new trainer is taken to describe the
        current weights.
        """
        calibration = self.monitor.scorer.calibration
        if self._anchor is None or self._anchor[0]() is not trainer or self._anchor[2] is not calibration:
            self._anchor = (weakref.ref(trainer), trainer.global_step, calibration)
            return False
        return self._anchor[1] != trainer.global_step

    def _calibrate(self, trainer: pl.Trainer) -> None:
        assert self.calibrate_loader is not None
        logger.info("calibrating the drift monitor at global step %d", trainer.global_step)
        self.monitor.calibrate(self.calibrate_loader, max_batches=self.calibrate_batches)
        self._anchor = (weakref.ref(trainer), trainer.global_step, self.monitor.scorer.calibration)

    # ---------------------------------------------------------------- passes
    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if "validate" in self.stages and not trainer.sanity_checking:
            self._prepare(trainer, pl_module)

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if "test" in self.stages:
            self._prepare(trainer, pl_module)

    def on_predict_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if "predict" in self.stages:
            self._prepare(trainer, pl_module)

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._summary = _PassSummary()

    def on_test_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._summary = _PassSummary()

    def on_validation_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if "validate" in self.stages and not trainer.sanity_checking:
            self._step_pass(batch, batch_idx, dataloader_idx)

    def on_test_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if "test" in self.stages:
            self._step_pass(batch, batch_idx, dataloader_idx)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if "validate" in self.stages and not trainer.sanity_checking:
            self._log_pass(trainer, pl_module)

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if "test" in self.stages:
            self._log_pass(trainer, pl_module)

    def on_predict_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if "predict" not in self.stages:
            return
        result = self._step(batch, batch_idx)
        if result is None:
            return
        metrics = batch_metrics(*result, prefix=self.prefix)
        for lightning_logger in trainer.loggers:  # self.log is not allowed in predict hooks
            lightning_logger.log_metrics(metrics, step=self._predict_steps)
        self._predict_steps += 1

    def on_predict_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if "predict" in self.stages:
            for lightning_logger in trainer.loggers:
                lightning_logger.save()

    # --------------------------------------------------------------- helpers
    def _step_pass(self, batch: Any, batch_idx: int, dataloader_idx: int) -> None:
        if self.reset_each_pass and self._summary.sums and dataloader_idx not in self._summary.sums:
            self.monitor.reset()  # another dataloader is another stream
        if (result := self._step(batch, batch_idx)) is not None:
            self._summary.add(*result, dataloader_idx)

    def _step(self, batch: Any, batch_idx: int) -> tuple[Status, list[Alert]] | None:
        if batch_idx % self.log_every_n:
            return None
        status, alerts = self.monitor.step(batch)
        self.last_status = status
        self.alerts.extend(alerts)
        return status, alerts

    def _log_pass(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """One value per metric and pass; across ranks drift is averaged, states and max_drift maxed, alerts summed."""
        for reduce_fx, metrics in self._summary.metrics(self.prefix).items():
            if metrics:
                pl_module.log_dict(
                    metrics,
                    on_step=False,
                    on_epoch=True,
                    reduce_fx=reduce_fx,
                    sync_dist=trainer.world_size > 1,
                    add_dataloader_idx=False,
                )

    def _check_watches(self, pl_module: pl.LightningModule) -> None:
        """Warn once when the monitor watches a model outside the module being run (a common wiring slip)."""
        if self._warned_watch or any(module is self.monitor.model for module in pl_module.modules()):
            return
        self._warned_watch = True
        warnings.warn(
            f"the monitor watches a {type(self.monitor.model).__name__} that is not part of the "
            f"{type(pl_module).__name__} the trainer runs; build it with DeepDriftMonitor(lit_module) or "
            "DeepDriftMonitor(lit_module.<submodule>)",
            DeepDriftWarning,
            stacklevel=3,
        )


__all__ = ["STAGES", "DeepDriftCallback", "batch_metrics"]
