"""Run each detector over a stream and return its per-step alarm state.

* DeepDrift: the library's ``DeepDriftMonitor`` (on replayed features); alarm = model-level state ALERT.
* river ADWIN / Page-Hinkley on the mean maximum softmax probability (MSP) of each batch, warmed up on
  calibration batches first (as DeepDrift is calibrated); checked at every batch (``clock=1``); two-sided
  Page-Hinkley, since a detector should not be told which way a corruption moves the confidence.
* torchdrift ``KernelMMDDriftDetector`` / ``KSDriftDetector`` fit on calibration penultimate features, scored on
  a window of the last ``window`` batches at every batch; alarm = score above a threshold set on clean streams.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from river import drift as river_drift

from deepdrift import AlertKind, DeepDriftMonitor, MonitorState
from experiments.streams.bank import FeatureBank
from experiments.streams.generate import Stream


@dataclass(frozen=True)
class MonitorTrace:
    """Model-level ALERT / WARNING state per step, and event counts summed over all layers."""

    alert: np.ndarray
    warning: np.ndarray
    layer_alerts: int
    layer_warnings: int
    monitor: DeepDriftMonitor


def run_monitor(monitor: DeepDriftMonitor, bank: FeatureBank, stream: Stream) -> MonitorTrace:
    """Step a (reset) monitor through the stream."""
    monitor.reset()
    states = []
    counts = {AlertKind.ALERT: 0, AlertKind.NONFINITE: 0, AlertKind.WARNING: 0, AlertKind.RECOVERY: 0}
    for index in stream.index:
        _, alerts = monitor.step(bank.packed[torch.as_tensor(index)])
        for alert in alerts:
            counts[alert.kind] += 1
        states.append(monitor.state)
    states_arr = np.array([s.value for s in states])
    return MonitorTrace(
        alert=states_arr == MonitorState.ALERT.value,
        warning=states_arr == MonitorState.WARNING.value,
        layer_alerts=counts[AlertKind.ALERT] + counts[AlertKind.NONFINITE],
        layer_warnings=counts[AlertKind.WARNING],
        monitor=monitor,
    )


def batch_msp(bank: FeatureBank, stream: Stream) -> np.ndarray:
    """Mean MSP of every batch of the stream."""
    return bank.msp[stream.index].mean(axis=1)


def calibration_msp(bank: FeatureBank, batch_size: int, n_batches: int, seed: int) -> np.ndarray:
    """Mean MSP of random calibration batches (warm-up of the river detectors)."""
    rng = np.random.default_rng(seed)
    return np.array(
        [bank.calib_msp[rng.choice(len(bank.calib_msp), batch_size, replace=False)].mean() for _ in range(n_batches)]
    )


def adwin(delta: float) -> river_drift.ADWIN:
    return river_drift.ADWIN(delta=delta, clock=1, grace_period=5, min_window_length=5)


def page_hinkley(threshold: float) -> river_drift.PageHinkley:
    return river_drift.PageHinkley(min_instances=10, delta=0.005, threshold=threshold, mode="both")


def river_alarms(factory: Callable[[], object], warmup: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``drift_detected`` of a fresh river detector at every step, after a warm-up that raises no alarms."""
    detector = factory()
    for value in warmup:
        detector.update(float(value))
    alarms = np.zeros(len(values), dtype=bool)
    for t, value in enumerate(values):
        detector.update(float(value))
        alarms[t] = bool(detector.drift_detected)
    return alarms


def window_scores(detector: torch.nn.Module, bank: FeatureBank, stream: Stream, window: int) -> np.ndarray:
    """Score of a fitted torchdrift detector on the last ``window`` batches at every step (NaN until full)."""
    scores = np.full(len(stream.index), np.nan)
    feats = bank.penultimate
    with torch.no_grad():
        for t in range(window - 1, len(stream.index)):
            idx = torch.as_tensor(stream.index[t - window + 1 : t + 1].reshape(-1))
            scores[t] = float(detector(feats[idx]))
    return scores


def fit_window_detectors(bank: FeatureBank, n_reference: int, seed: int) -> dict[str, torch.nn.Module]:
    """torchdrift MMD and KS detectors fit on ``n_reference`` calibration penultimate features."""
    import torchdrift

    rng = np.random.default_rng(seed)
    ref = bank.calib_penultimate[torch.as_tensor(rng.choice(len(bank.calib_msp), n_reference, replace=False))]
    mmd = torchdrift.detectors.KernelMMDDriftDetector()
    ks = torchdrift.detectors.KSDriftDetector()
    mmd.fit(ref)
    ks.fit(ref)
    return {"MMD (torchdrift)": mmd, "KS (torchdrift)": ks}
