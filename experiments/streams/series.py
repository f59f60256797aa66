"""DeepDrift's drift series of a whole stream at once, and the library's per-layer FSM run over it.

``DeepDriftMonitor.step`` scores one batch and advances every layer's ``LayerObserver``. Its scores depend only
on each batch's mean features, so for tens of thousands of replayed batches we compute every batch mean of a
stream in one array operation and turn them into drift with the monitor's own ``StackedReference`` and null
table (the same functions ``score_features`` calls). The FSM is the library's ``LayerObserver``, stepped exactly
as ``DeepDriftMonitor._advance`` steps it; the model-level state is the worst layer's, as ``monitor.state``.
``tests/experiments/test_streams_replay.py`` checks both against ``monitor.step``. One drift series then serves
every ALERT threshold and warning setting, instead of one pass of the monitor per setting.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from deepdrift import DeepDriftMonitor, ObserverConfig
from deepdrift.observer import LayerObserver
from deepdrift.stacked_reference import StackedReference

_CHUNK_VALUES = 50_000_000
"""Feature values gathered at once when forming batch means (about 200 MB of float32)."""


class DriftSeries:
    """Per-layer drift of every batch of an index array ``(batches, batch_size)`` into packed features."""

    def __init__(self, monitor: DeepDriftMonitor, packed: torch.Tensor) -> None:
        calibration = monitor.calibration
        self.names = list(calibration.names)
        self.labels = [t.label for t in monitor.taps]
        self.zones = [t.zone for t in monitor.taps]
        self._stacked = StackedReference.build([calibration.layers[n] for n in self.names], torch.device("cpu"))
        self._scorer = monitor.scorer
        self._packed = packed

    def __call__(self, index: np.ndarray) -> np.ndarray:
        """``(batches, layers)`` drift in sigma units, equal to ``monitor.score`` batch by batch."""
        n_batches, batch_size = index.shape
        table = self._scorer.null_table(batch_size)
        step = max(1, _CHUNK_VALUES // (batch_size * self._packed.shape[1]))
        parts = []
        for start in range(0, n_batches, step):
            chunk = torch.as_tensor(index[start : start + step])
            means = self._packed[chunk].mean(dim=1, dtype=torch.float64)
            statistics = self._stacked.statistics(self._stacked.shift(means), batch_size).numpy()
            parts.append(table.sigma_and_pvalue(statistics)[0])
        return np.concatenate(parts) if parts else np.zeros((0, len(self.names)))


@dataclass(frozen=True)
class StateTrace:
    """Model-level ALERT / WARNING flags per step and state-change events summed over layers."""

    alert: np.ndarray
    warning: np.ndarray
    layer_alerts: int
    layer_warnings: int


def fsm_trace(drift: np.ndarray, config: ObserverConfig, labels: list[str] | None = None) -> StateTrace:
    """Step fresh ``LayerObserver``s (one per column of ``drift``) through the series.

    A NaN drift is a non-finite layer, as in the monitor; the model-level state is the worst layer's.
    """
    n_layers = drift.shape[1]
    names = labels or [str(i) for i in range(n_layers)]
    observers = [LayerObserver(name, name, "", config) for name in names]
    severity = np.zeros(len(drift), dtype=np.int8)
    alerts = warnings = 0
    for t, row in enumerate(drift.tolist()):
        worst = 0
        for observer, value in zip(observers, row, strict=True):
            for event in observer.update(value, t + 1):
                kind = event.kind.value
                alerts += kind in ("ALERT", "NONFINITE")
                warnings += kind == "WARNING"
            worst = max(worst, observer.state.severity)
        severity[t] = worst
    return StateTrace(alert=severity == 2, warning=severity == 1, layer_alerts=alerts, layer_warnings=warnings)
