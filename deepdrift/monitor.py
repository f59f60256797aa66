"""``DeepDriftMonitor``: the public facade tying taps, calibration, scores and per-layer FSMs together.

``DeepDriftMonitor(model, arch_name='ResNet-18', drift_config=ObserverConfig(...))``, ``calibrate(loader,
max_batches=50)``, ``status, alerts = step(batch)``. The model's output is kept (``last_output``), hooks are attached
only for the duration of each call, and drift is reported in calibrated sigma units.

Thread safety: ``calibrate``, ``score`` and ``step`` on one monitor are serialised by a lock, so concurrent calls
give exactly the results of some sequential order; ``last_output`` is per thread, and a forward of the same model
that another thread runs directly (outside the monitor) is never captured.
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .calibration import Calibration, CalibrationAccumulator, CalibrationConfig
from .calibrator import ContextSpec, calibrate_contexts, calibration_metadata, check_pooling, context_of
from .corrections import Correction, adjust_pvalues, check_correction
from .distributed import unwrap_ddp
from .errors import DeepDriftWarning, NotCalibratedError
from .fingerprint import check_fingerprint, fingerprint_differences, fingerprint_model
from .history import DEFAULT_MAX_STEPS, DriftHistory
from .inputs import ForwardFn, call_model, input_batch_size, primary_input
from .layer_selection import LayerRequest
from .modes import evaluation_mode
from .observer import Alert, AlertKind, LayerObserver, MonitorState, ObserverConfig
from .pooling import Layout, PoolingConfig
from .scores import DriftScorer, DriftStatistic, LayerScore, SampleScores
from .status import LayerStatus, Status
from .taps import LayerTaps, Tap
from .usage_checks import UsageChecks
from .validation import require_int

logger = logging.getLogger(__name__)

AlertCallback = Callable[[Alert], None]


@dataclass
class Observation:
    """What a ``monitor.observe()`` block saw; filled when the block ends.

    Attributes:
        status: per-tap ``LayerStatus`` (as ``step`` returns it).
        alerts: the alert events of this step.
        scores: the raw per-tap ``LayerScore``s.
    """

    status: Status = field(default_factory=dict)
    alerts: list[Alert] = field(default_factory=list)
    scores: dict[str, LayerScore] = field(default_factory=dict)


class DeepDriftMonitor:
    """Watch a model's layers for distribution drift, batch by batch.

    Args:
        model: any ``nn.Module`` (torchvision, timm, diffusers U-Nets, plain ``nn.Sequential`` ...).
        arch_name: optional hint such as ``'ResNet-18'`` (layers are chosen from the model's own structure).
        drift_config: per-layer FSM thresholds.
        layers: explicit module names to watch (one name or a list; default: automatic selection).
        layers_map: the original's ``{label: module name}``; labels appear in alerts.
        pooling: how layer outputs become one vector per sample.
        calibration_config: held-out share, reservoir size, seed.
        correction: multiple-testing correction across layers for ``p_adjusted`` (``'holm'`` or ``'bh'``).
        on_alert: called with every ``Alert`` as it happens (one callable or several; a callback that raises is
            logged and the others still run).
        forward_fn: ``forward_fn(model, batch)`` for models whose call needs more than ``model(x)``.
        history_size: steps (and alert events) kept for timelines; None keeps all (memory then grows).
        n_null_draws: resampled clean batches behind each layer's null law, per batch size (>= 100).
        statistic: per-layer test: ``combined`` (mean, peak and principal-axes shift, min-p), or one of
            ``mean_shift``, ``peak_shift``, ``principal``.
        layouts: per-tap memory layout where the output's axes cannot be told from the module or the batch size,
            e.g. ``{"encoder": "LNC"}`` for a sequence-first transformer (see ``PoolingConfig.layout``).
        taps: an already built ``LayerTaps`` (replaces ``layers``/``layers_map``/``pooling``/``layouts``).
        scorer: an already built ``DriftScorer`` (replaces ``calibration_config``/``n_null_draws``/``statistic``).
        every_n: ``step`` scores one batch in ``every_n`` (the first, then every ``every_n``-th); the others only run
            the model and return the latest status with no alerts. The FSM, history and alert steps count scored
            batches. For production serving where even a small per-batch cost matters (see also ``preset("fast")``).

    Example:
        >>> monitor = DeepDriftMonitor(model).calibrate(clean_loader, max_batches=50)  # doctest: +SKIP
        >>> status, alerts = monitor.step(batch)  # doctest: +SKIP
        >>> status["layer3"]["drift"], status["layer3"].state  # doctest: +SKIP
    """

    def __init__(
        self,
        model: nn.Module,
        arch_name: str | None = None,
        drift_config: ObserverConfig | None = None,
        *,
        layers: LayerRequest | str = None,
        layers_map: Mapping[str, str] | None = None,
        pooling: PoolingConfig = PoolingConfig(),
        calibration_config: CalibrationConfig = CalibrationConfig(),
        correction: Correction = "holm",
        on_alert: AlertCallback | Sequence[AlertCallback] | None = None,
        forward_fn: ForwardFn | None = None,
        history_size: int | None = DEFAULT_MAX_STEPS,
        n_null_draws: int = 4000,
        statistic: DriftStatistic = "combined",
        layouts: Mapping[str, Layout] | None = None,
        taps: LayerTaps | None = None,
        scorer: DriftScorer | None = None,
        every_n: int = 1,
    ) -> None:
        _check_arguments(model, arch_name, drift_config, layers, layers_map, pooling, forward_fn, history_size)
        self.every_n = require_int("every_n", every_n, minimum=1)
        self.model = model
        self.arch_name = arch_name
        self.config = drift_config or ObserverConfig()
        self.correction = check_correction(correction)
        self.on_alert = on_alert
        self.forward_fn = forward_fn
        if isinstance(layers, str):
            layers = [layers]
        self._taps = taps or LayerTaps(
            model, arch_name=arch_name, layers=layers_map or layers, pooling=pooling, layouts=layouts
        )
        template = scorer or DriftScorer(calibration_config, n_null_draws=n_null_draws, statistic=statistic)
        self._scorers: dict[Hashable, DriftScorer] = {None: template}
        self.history_size = history_size
        self._lock = threading.RLock()
        self._local = threading.local()
        self._checks = UsageChecks()
        self._running: dict[Hashable, CalibrationAccumulator] = {}  # kept only for contexts calibrated with update=True
        self._closed = False
        self._module_list = tuple(model.modules())  # refreshed by calibrate/load; see modes.evaluation_mode
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
    def on_alert(self) -> tuple[AlertCallback, ...]:
        """Callbacks called with every ``Alert``; assign one callable, several, or None."""
        return self._on_alert

    @on_alert.setter
    def on_alert(self, callbacks: AlertCallback | Sequence[AlertCallback] | None) -> None:
        self._on_alert = _callbacks(callbacks)

    @property
    def scorer(self) -> DriftScorer:
        """The scorer of the default context (``context=None``)."""
        return self._scorers[None]

    @scorer.setter
    def scorer(self, scorer: DriftScorer) -> None:
        self._scorers[None] = scorer

    @property
    def contexts(self) -> list[Hashable]:
        """Contexts with reference statistics (``None`` is the default context)."""
        return [c for c, s in self._scorers.items() if s.is_calibrated]

    @property
    def is_calibrated(self) -> bool:
        """True once any context (usually the default one) has reference statistics."""
        return bool(self.contexts)

    @property
    def calibration(self) -> Calibration:
        """Reference statistics of the default context."""
        if self.scorer.calibration is None:
            raise NotCalibratedError("the monitor is not calibrated yet: call `calibrate(loader)` first")
        return self.scorer.calibration

    @property
    def state(self) -> MonitorState:
        """Model-level state: the worst state of any layer."""
        return max((o.state for o in self._observers.values()), key=lambda s: s.severity, default=MonitorState.NORMAL)

    @property
    def last_output(self) -> Any:
        """The model's output of this thread's latest ``step``/``score`` (no second forward pass needed)."""
        return getattr(self._local, "output", None)

    @last_output.setter
    def last_output(self, value: Any) -> None:
        self._local.output = value

    # --------------------------------------------------------------- calibration
    def calibrate(
        self,
        loader: Iterable[Any],
        max_batches: int | None = None,
        progress: bool | None = None,
        *,
        context: ContextSpec = None,
        weights_digest: bool = False,
        update: bool = False,
        distributed: bool = False,
    ) -> DeepDriftMonitor:
        """Learn per-layer reference statistics from clean data.

        Args:
            loader: yields tensors, ``(x, y)`` pairs, ``(x, t)`` tuples or dicts; inputs go to the model's device.
            max_batches: stop after this many batches (None: the whole loader).
            progress: show a progress bar (None: only in a terminal, and only on rank 0).
            context: calibrate the reference of one context (e.g. a diffusion timestep bucket or a class group),
                or a function ``batch -> context`` that splits one loader into several contexts. Scoring then
                passes the same ``context=``. Other contexts keep their calibration; this one is replaced
                (or continued, with ``update=True``).
            weights_digest: also record a hash of the model's weights, so loading the file into a retrained
                model of the same architecture is refused too (reads every weight once).
            update: add this loader's samples to the context's calibration instead of replacing it; the result
                equals one pass over all loaders so far (moments exactly, held-out reservoir a uniform sample of
                all held-out samples). A finished calibration keeps no M2 or co-moments, so the monitor keeps the
                accumulator of contexts calibrated with ``update=True`` (as much memory as while calibrating) and
                only those can be continued: pass ``update=True`` from the first call on.
            distributed: every rank of the initialised ``torch.distributed`` default group calls ``calibrate``
                with its own shard of the data (e.g. a ``DistributedSampler``); the float64 moments are
                all-reduced exactly and the reservoirs merged into a uniform sample of all ranks' held-out
                samples, so every rank gets the same calibration (see ``deepdrift.distributed``). A
                ``DistributedDataParallel`` model is run through its ``.module`` (no buffer broadcast at each
                forward, so shards may hold different numbers of batches).

        Example:
            >>> monitor.calibrate(shard_loader, distributed=True)  # doctest: +SKIP
            >>> for loader in loaders:  # doctest: +SKIP
            ...     monitor.calibrate(loader, update=True)
        """
        if max_batches is not None:
            require_int("max_batches", max_batches, minimum=1)
        with self._lock:
            self._check_open()
            self._module_list = tuple(self.model.modules())
            model = unwrap_ddp(self.model)
            calibrations = calibrate_contexts(
                self._taps,
                lambda batch: call_model(model, batch, self.forward_fn),
                self.model,
                loader,
                max_batches,
                progress,
                context,
                self.scorer.calibration_config,
                metadata=lambda: calibration_metadata(self.model, self.arch_name, self._taps),
                weights_digest=weights_digest,
                update=update,
                distributed=distributed,
                running=self._running,
                current=lambda key: self._scorers[key].calibration if key in self._scorers else None,
            )
            for key, calibration in calibrations.items():
                self._scorer_for(key, create=True).set_calibration(calibration)
                self._checks.calibration_size(calibration, key)
            self._reset_observers()
        return self

    def save_calibration(self, path: str | Path, *, context: Hashable = None) -> Path:
        """Save one context's reference statistics as one safetensors file with JSON metadata (never pickle)."""
        return self._calibration_of(context).save(path)

    def load_calibration(
        self, path: str | Path, *, context: Hashable = None, allow_transfer: bool = False
    ) -> DeepDriftMonitor:
        """Load reference statistics saved by ``save_calibration`` (into ``context``).

        The taps and pooling must match this monitor, and the model must match the fingerprint recorded in the
        file (class, tapped parameter shapes, weights digest if recorded); otherwise ``CalibrationMismatchError``
        names what differs. ``allow_transfer=True`` applies a calibration made on another model deliberately
        (with a ``DeepDriftWarning`` listing the differences).
        """
        calibration = Calibration.load(path)
        calibration.check_compatible(self.layer_names)
        check_pooling(calibration, self.pooling, path)
        saved_context = calibration.metadata.get("context")
        if saved_context != (None if context is None else repr(context)):
            warnings.warn(
                f"{path} holds the calibration of context {saved_context or 'None (the default)'} but is loaded into "
                f"context {context!r}; pass `context=` to load it where it belongs",
                DeepDriftWarning,
                stacklevel=2,
            )
        saved = calibration.fingerprint
        if saved is not None:
            current = fingerprint_model(self.model, self.layer_names, weights_digest=saved.weights_digest is not None)
            if not allow_transfer:
                check_fingerprint(saved, current, str(path))
            elif differences := fingerprint_differences(saved, current):
                warnings.warn(
                    f"{path} was calibrated on a different model ({'; '.join(differences[:5])}); applied "
                    "anyway because allow_transfer=True",
                    DeepDriftWarning,
                    stacklevel=2,
                )
        with self._lock:
            self._module_list = tuple(self.model.modules())
            self._taps.set_order(calibration.names)
            self._scorer_for(context, create=True).set_calibration(calibration)
            self._reset_observers()
        return self

    # ------------------------------------------------------------------ scoring
    def score(self, batch: Any, *, context: ContextSpec = None) -> dict[str, LayerScore]:
        """Drift of every layer for one batch, without touching the FSM (research mode)."""
        with self._lock:
            self._check_open()
            key = context_of(context, batch)
            scorer = self._require_calibrated(key)
            calibration = scorer.calibration
            assert calibration is not None
            x, n = primary_input(batch), input_batch_size(self.model, batch)
            if x is not None and x.ndim >= 1:
                self._checks.input_shape(_calibrated_input_shape(calibration), tuple(x.shape[1:]))
            if n is not None:
                self._checks.batch_size(calibration, n, key)
            if self.model.training:  # monitoring must not update batch-norm buffers or sample dropout
                self._checks.training_mode()
            with evaluation_mode(self.model, self._module_list), torch.no_grad():
                output, features = self._taps.run(
                    lambda: call_model(unwrap_ddp(self.model), batch, self.forward_fn), batch_size=n
                )
            scores = scorer.score_features(features)
        self.last_output = output
        return scores

    def score_samples(self, batch: Any, *, context: ContextSpec = None) -> SampleScores:
        """Drift of every sample alone, per layer, from the batch-size-1 null (OOD-style scoring, no FSM).

        ``scores.drift`` is ``(samples, layers)`` in tap order; ``scores['layer3']`` is one layer's column.
        """
        with self._lock:
            self._check_open()
            key = context_of(context, batch)
            scorer = self._require_calibrated(key)
            with evaluation_mode(self.model, self._module_list), torch.no_grad():
                output, features = self._taps.run(
                    lambda: call_model(unwrap_ddp(self.model), batch, self.forward_fn),
                    batch_size=input_batch_size(self.model, batch),
                )
            scores = scorer.score_samples(features)
        self.last_output = output
        return scores

    def step(self, batch: Any, *, context: ContextSpec = None) -> tuple[Status, list[Alert]]:
        """Score one batch, advance every layer's FSM, and return ``(status, alerts)``.

        ``status`` maps each tap (depth order) to a ``LayerStatus``: ``drift``, ``p_value``, ``p_adjusted``,
        ``breach`` (this batch alone reached ``theta_high``), ``state``, ``slope``, ``zone``, ``depth``, ``label``
        and ``nonfinite``; it reads like a dict (``status['layer1']['drift']``). By default a layer enters ALERT
        only when ``persistence=2`` of the last ``persistence_window=3`` batches breach, so one extreme batch
        sets ``breach`` but not the state. The model's output is kept in ``last_output``.
        """
        with self._lock:
            self._batches += 1
            if self._last_status is not None and (self._batches - 1) % self.every_n:
                return self._run_unscored(batch), []
            scores = self.score(batch, context=context)
            status, alerts = self._advance(scores)
            self._last_status = status
        self._notify(alerts)
        return status, alerts

    @contextmanager
    def observe(self, *, context: Hashable = None, batch_size: int | None = None) -> Iterator[Observation]:
        """Watch the model's own forward pass in a ``with`` block, without a second forward.

        The hooks record the one forward the block runs (with gradients enabled, in a training loop or under
        ``torch.inference_mode``: features are detached); when the block ends, the batch is scored and every
        layer's FSM advances, exactly as ``step`` would. The model runs in whatever mode it is in: features of a
        model in training mode (dropout, batch-norm batch statistics) differ from an eval-mode calibration.

        Args:
            context: the calibrated context of this batch (a value, not a function: the batch is not seen).
            batch_size: samples in the batch, to check each output's batch axis (recommended).

        Example:
            >>> with monitor.observe() as seen:  # doctest: +SKIP
            ...     logits = model(x)
            ...     loss = criterion(logits, y)
            >>> loss.backward(); seen.status["layer3"].drift, seen.alerts  # doctest: +SKIP
        """
        if callable(context):
            raise TypeError("observe() takes a context value; the batch is not seen, so a function cannot pick one")
        if batch_size is not None:
            require_int("batch_size", batch_size, minimum=1)
        observation = Observation()
        with self._lock:
            self._check_open()
            scorer = self._require_calibrated(context_of(context, None))
            if self.model.training:
                self._checks.warn_once(
                    "observe_training",
                    "observing a model in training mode: dropout and batch-norm batch statistics make its features "
                    "differ from the eval-mode calibration, so drift is partly the mode. Observe in eval mode, or "
                    "read drift relative to a clean training-mode baseline.",
                )
            with self._taps.capture(batch_size=batch_size) as captured:
                yield observation
            observation.scores = scorer.score_features(captured.features)
            observation.status, observation.alerts = self._advance(observation.scores)
        self._notify(observation.alerts)

    def reset(self) -> None:
        """Forget FSM states and history; keep the calibration."""
        with self._lock:
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
        state = f"calibrated contexts {self.contexts}" if self.is_calibrated else "not calibrated"
        return f"DeepDriftMonitor({type(self.model).__name__}, taps={self.layer_names}, {state})"

    # --------------------------------------------------------------- internals
    def _advance(self, scores: dict[str, LayerScore]) -> tuple[Status, list[Alert]]:
        self._step += 1
        p_adjusted = adjust_pvalues(np.array([scores[t.name].p_value for t in self.taps]), self.correction)
        status: Status = {}
        alerts: list[Alert] = []
        for tap, p_adj in zip(self.taps, p_adjusted, strict=True):
            score, observer = scores[tap.name], self._observers[tap.name]
            alerts.extend(observer.update(score.drift, self._step))
            status[tap.name] = LayerStatus(
                name=tap.name,
                label=tap.label,
                zone=tap.zone,
                depth=tap.depth,
                drift=score.drift,
                p_value=score.p_value,
                p_adjusted=float(p_adj),
                breach=bool(score.drift >= self.config.theta_high),
                state=observer.state,
                slope=observer.slope,
                statistic=score.statistic,
                peak_statistic=score.peak_statistic,
                principal_statistic=score.principal_statistic,
                nonfinite=score.nonfinite,
            )
        self.history.record(
            self._step, np.array([d.drift for d in status.values()]), [d.state.value for d in status.values()], alerts
        )
        return status, alerts

    def _notify(self, alerts: list[Alert]) -> None:
        for alert in alerts:
            logger.log(logging.INFO if alert.kind is AlertKind.RECOVERY else logging.WARNING, "%s", alert)
            for callback in self.on_alert:
                try:
                    callback(alert)
                except Exception:  # a broken callback must not cost the status of this step or other callbacks
                    logger.exception("on_alert callback %r raised on %s; continuing", callback, alert)

    def _run_unscored(self, batch: Any) -> Status:
        """A batch that ``every_n`` skips: the model runs (its output is kept), nothing is scored."""
        self._check_open()
        with evaluation_mode(self.model, self._module_list), torch.no_grad():
            self.last_output = call_model(unwrap_ddp(self.model), batch, self.forward_fn)
        assert self._last_status is not None
        return self._last_status

    def _reset_observers(self) -> None:
        self._observers = {t.name: LayerObserver(t.name, t.label, t.zone, self.config) for t in self.taps}
        self._step = 0
        self._batches = 0
        self._last_status: Status | None = None
        labels = [t.label for t in self.taps]
        self.history = DriftHistory(self.layer_names, labels, self.history_size, self.history_size)

    def _scorer_for(self, context: Hashable, create: bool = False) -> DriftScorer:
        scorer = self._scorers.get(context)
        if scorer is None and create:
            template = self.scorer
            scorer = DriftScorer(
                template.calibration_config, n_null_draws=template.n_null_draws, statistic=template.statistic
            )
            self._scorers[context] = scorer
        if scorer is None:
            raise NotCalibratedError(self._not_calibrated_message(context))
        return scorer

    def _calibration_of(self, context: Hashable) -> Calibration:
        calibration = self._scorer_for(context).calibration
        if calibration is None:
            raise NotCalibratedError(self._not_calibrated_message(context))
        return calibration

    def _require_calibrated(self, context: Hashable) -> DriftScorer:
        scorer = self._scorers.get(context)
        if scorer is None or not scorer.is_calibrated:
            raise NotCalibratedError(self._not_calibrated_message(context))
        return scorer

    def _not_calibrated_message(self, context: Hashable) -> str:
        if context is None and not self.contexts:
            return (
                "the monitor is not calibrated: call `monitor.calibrate(clean_loader, max_batches=50)` or "
                "`monitor.load_calibration(path)` before `step()`."
            )
        return (
            f"no calibration for context {context!r}; calibrated contexts: {self.contexts}. Pass one of them "
            f"as `context=`, or `monitor.calibrate(loader, context={context!r})`."
        )

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this monitor was closed; create a new DeepDriftMonitor")


def _calibrated_input_shape(calibration: Calibration) -> tuple[int, ...] | None:
    shape = calibration.metadata.get("input_shape")
    if shape is None and calibration.fingerprint is not None:
        shape = calibration.fingerprint.input_shape
    return None if shape is None else tuple(shape)


def _callbacks(on_alert: AlertCallback | Sequence[AlertCallback] | None) -> tuple[AlertCallback, ...]:
    if on_alert is None:
        return ()
    callbacks = tuple(on_alert) if isinstance(on_alert, Sequence) else (on_alert,)
    for callback in callbacks:
        if not callable(callback):
            raise TypeError(f"on_alert must be a callable or a list of callables, got {callback!r}")
    return callbacks


def _check_arguments(
    model: Any,
    arch_name: Any,
    drift_config: Any,
    layers: Any,
    layers_map: Any,
    pooling: Any,
    forward_fn: Any,
    history_size: Any,
) -> None:
    """Fail at construction with a message that names the argument, instead of late inside ``step``."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if arch_name is not None and not isinstance(arch_name, str):
        raise TypeError(f"arch_name must be a string such as 'ResNet-18' or None, got {arch_name!r}")
    if drift_config is not None and not isinstance(drift_config, ObserverConfig):
        raise TypeError(f"drift_config must be an ObserverConfig, got {type(drift_config).__name__}")
    if layers is not None and layers_map is not None:
        raise ValueError("pass either `layers` or `layers_map`, not both")
    if not isinstance(pooling, PoolingConfig):
        raise TypeError(f"pooling must be a PoolingConfig, got {type(pooling).__name__}")
    if forward_fn is not None and not callable(forward_fn):
        raise TypeError(f"forward_fn must be callable as forward_fn(model, batch), got {forward_fn!r}")
    if history_size is not None:
        require_int("history_size", history_size, minimum=1)
