"""Hugging Face ``transformers.Trainer`` callback: score each evaluation's batches with a ``DeepDriftMonitor``.

After every evaluation (``on_evaluate``) the callback steps the monitor over the evaluation dataloader's batches as
they come (dicts of tensors: label keys are dropped, the inputs go to ``forward`` as keywords), then adds
``<prefix>_deepdrift_max_drift``, ``<prefix>_deepdrift_drift/<layer>``, ``<prefix>_deepdrift_state`` and
``<prefix>_deepdrift_alerts`` (``<prefix>`` is the evaluation's ``metric_key_prefix``, ``eval`` by default) to the
metrics ``Trainer.evaluate`` returns and to that evaluation's ``state.log_history`` entry. ``monitor.step`` runs a
second forward pass under ``no_grad`` in eval mode, so evaluation costs about twice as much.

The Trainer calls ``on_log`` (and with it TensorBoard, W&B and the other reporters) *before* ``on_evaluate``, so
the reporters do not receive these keys; ``evaluate()``'s return value, ``state.log_history`` (saved as
``trainer_state.json`` with every checkpoint), ``metric_for_best_model="deepdrift_max_drift"`` (with
``greater_is_better=False``) and callbacks listed after this one (``EarlyStoppingCallback``) do.

Example:
    >>> monitor = DeepDriftMonitor(model, layers=["vit.encoder.layer.0", "vit.encoder.layer.1"])  # doctest: +SKIP
    >>> monitor.calibrate(clean_loader)  # doctest: +SKIP
    >>> callback = DeepDriftTrainerCallback(monitor)  # doctest: +SKIP
    >>> trainer = Trainer(model, args, eval_dataset=eval_set, callbacks=[callback])  # doctest: +SKIP
    >>> trainer.evaluate()["eval_deepdrift_max_drift"]  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Iterable
from typing import Any

from ..errors import DeepDriftWarning, NotCalibratedError
from ..observer import Alert, MonitorState
from ..status import Status
from ..validation import require_int

try:
    from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments
except ImportError as exc:  # pragma: no cover - depends on what is installed
    raise ImportError(
        "DeepDriftTrainerCallback needs transformers: pip install 'deepdrift[huggingface]' (or pip install "
        "transformers)"
    ) from exc

logger = logging.getLogger(__name__)


class DeepDriftTrainerCallback(TrainerCallback):
    """Step a ``DeepDriftMonitor`` over every evaluation and add the drift to the evaluation's metrics.

    Per evaluation: ``drift/<layer>`` is the layer's mean drift over the evaluated batches (sigma units, ~N(0, 1)
    per batch on clean data), ``max_drift`` the largest of those means, ``state`` the worst layer state reached
    (0 normal, 1 warning, 2 alert) and ``alerts`` the number of alert events. Each evaluation starts the layers'
    states afresh; alert events accumulate in ``alerts``, the latest status is ``last_status``.

    Args:
        monitor: a ``DeepDriftMonitor`` of the Trainer's model (or one of its submodules).
        eval_batches: step at most this many evaluation batches per evaluation (None: all of them).
        calibrate_loader: clean batches (e.g. a training-set loader) to calibrate the monitor from when it is not
            calibrated, before the first evaluation.
        calibrate_batches: batches of ``calibrate_loader`` used per calibration.
        recalibrate: with a ``calibrate_loader``, calibrate again before an evaluation when training has moved the
            weights since the last calibration (a reference from other weights measures the training, not the
            data). Without one, the callback warns once instead.
    """

    def __init__(
        self,
        monitor: Any,
        eval_batches: int | None = None,
        *,
        calibrate_loader: Iterable[Any] | None = None,
        calibrate_batches: int | None = 50,
        recalibrate: bool = True,
    ) -> None:
        for name, value in (("eval_batches", eval_batches), ("calibrate_batches", calibrate_batches)):
            if value is not None:
                require_int(name, value, minimum=1)
        if not hasattr(monitor, "step") or not hasattr(monitor, "calibrate"):
            raise TypeError(f"monitor must be a DeepDriftMonitor, got {type(monitor).__name__}")
        self.monitor = monitor
        self.eval_batches = eval_batches
        self.calibrate_loader = calibrate_loader
        self.calibrate_batches = calibrate_batches
        self.recalibrate = recalibrate
        self.alerts: list[Alert] = []
        self.last_status: Status | None = None
        self._anchor: tuple[int, Any] | None = None  # (global step, calibration) the calibration describes
        self._warned: set[str] = set()

    def on_evaluate(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        metrics: dict[str, float] | None = None,
        model: Any = None,
        eval_dataloader: Iterable[Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if metrics is None or eval_dataloader is None:
            self._warn_once("inputs", "on_evaluate got no metrics or eval_dataloader; drift is not scored")
            return
        if model is not None and not any(module is self.monitor.model for module in model.modules()):
            self._warn_once(
                "model",
                f"the monitor watches a {type(self.monitor.model).__name__} that is not part of the Trainer's "
                f"{type(model).__name__}; build it with DeepDriftMonitor(trainer.model) or one of its submodules",
            )
        self._prepare(state.global_step)
        drift_metrics = self._score(eval_dataloader)
        key_prefix = _metric_key_prefix(metrics)
        added = {f"{key_prefix}_{name}": value for name, value in drift_metrics.items()}
        metrics.update(added)  # the dict Trainer.evaluate returns
        _amend_log_history(state, key_prefix, metrics, added)
        logger.info(
            "evaluation at step %d: max drift %.2f sigma, worst state %s, %d alert(s)",
            state.global_step,
            drift_metrics["deepdrift_max_drift"],
            next(s.value for s in MonitorState if s.severity == drift_metrics["deepdrift_state"]),
            int(drift_metrics["deepdrift_alerts"]),
        )

    def _prepare(self, global_step: int) -> None:
        """Calibrate (first time, or after training moved the weights) and start fresh layer states."""
        calibrated = self.monitor.is_calibrated
        calibration = self.monitor.scorer.calibration
        if calibrated and (self._anchor is None or self._anchor[1] is not calibration):
            self._anchor = (global_step, calibration)  # a calibration first seen describes the current weights
        stale = calibrated and self._anchor is not None and self._anchor[0] != global_step
        if self.calibrate_loader is not None and (not calibrated or (stale and self.recalibrate)):
            logger.info("calibrating the drift monitor at global step %d", global_step)
            self.monitor.calibrate(self.calibrate_loader, max_batches=self.calibrate_batches)
            self._anchor = (global_step, self.monitor.scorer.calibration)
        elif not calibrated:
            raise NotCalibratedError(
                "DeepDriftTrainerCallback got an uncalibrated monitor: call monitor.calibrate(clean_loader) before "
                "trainer.train()/evaluate(), or pass DeepDriftTrainerCallback(monitor, calibrate_loader=clean_loader)"
            )
        else:
            if stale:
                self._warn_once(
                    "stale",
                    f"the monitor was calibrated at global step {self._anchor[0]} and training has moved the weights "
                    f"since (step {global_step}): drift now measures the training as well as the data. Pass "
                    "DeepDriftTrainerCallback(monitor, calibrate_loader=clean_loader, recalibrate=True)",
                )
            self.monitor.reset()

    def _score(self, batches: Iterable[Any]) -> dict[str, float]:
        """Step the monitor over the evaluation batches; summarise per layer and overall."""
        sums: dict[str, list[float]] = {}
        worst, n_alerts = 0, 0
        for index, batch in enumerate(batches):
            if self.eval_batches is not None and index >= self.eval_batches:
                break
            status, alerts = self.monitor.step(batch)
            self.last_status = status
            self.alerts.extend(alerts)
            n_alerts += len(alerts)
            for name, layer in status.items():
                total = sums.setdefault(name, [0.0, 0])
                if math.isfinite(layer.drift):  # non-finite layers show in the state (ALERT), not in the mean
                    total[0] += layer.drift
                    total[1] += 1
                worst = max(worst, MonitorState(layer.state).severity)
        means = {name: total / count if count else math.nan for name, (total, count) in sums.items()}
        out = {f"deepdrift_drift/{name}": value for name, value in means.items()}
        out["deepdrift_max_drift"] = max((v for v in means.values() if not math.isnan(v)), default=math.nan)
        out["deepdrift_state"] = float(worst)
        out["deepdrift_alerts"] = float(n_alerts)
        return out

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(message, DeepDriftWarning, stacklevel=3)


def _metric_key_prefix(metrics: dict[str, float]) -> str:
    """The evaluation's ``metric_key_prefix`` (``eval``, ``eval_<dataset name>`` ...), read off its runtime key."""
    prefixes = [key[: -len("_runtime")] for key in metrics if key.endswith("_runtime")]
    return min(prefixes, key=len) if prefixes else "eval"


def _amend_log_history(state: TrainerState, key_prefix: str, metrics: dict[str, float], added: dict) -> None:
    """Add the drift metrics to the log-history entry the Trainer already wrote for this evaluation."""
    runtime = metrics.get(f"{key_prefix}_runtime")
    for entry in reversed(state.log_history):
        if runtime is not None and entry.get(f"{key_prefix}_runtime") == runtime:
            entry.update(added)
            return
    state.log_history.append({**added, "step": state.global_step})  # no matching entry: keep them on record


__all__ = ["DeepDriftTrainerCallback"]
