"""Run each detector over a stream and return its per-step alarm state.

* DeepDrift: the library's ``DeepDriftMonitor`` (on replayed features); alarm = model-level state ALERT.
* river ADWIN / Page-Hinkley, each fed two inputs, warmed up on calibration data first (as DeepDrift is
  calibrated) and checked at every value (``clock=1``); two-sided Page-Hinkley, since a detector should not be told
  which way a corruption moves its input:

  - per-sample MSP: every image's maximum softmax probability, a batch's worth in order (16 values per batch);
  - DeepDrift's drift series: the largest per-tap drift of each batch (one value per batch).

  Each input is standardised by the mean and standard deviation of its values on calibration data, so ADWIN's
  bound (which assumes values of unit range) and Page-Hinkley's thresholds mean the same for both inputs. A batch
  raises an alarm when any of its values does.
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


def adwin(delta: float) -> river_drift.ADWIN:
    return river_drift.ADWIN(delta=delta, clock=1, grace_period=5, min_window_length=5)


def page_hinkley(threshold: float) -> river_drift.PageHinkley:
    return river_drift.PageHinkley(min_instances=10, delta=0.005, threshold=threshold, mode="both")


@dataclass(frozen=True)
class RiverInput:
    """What a river detector is fed: calibration warm-up values and a standardisation learnt from them."""

    name: str
    warmup: np.ndarray  # (values,) fed before the stream, in order
    mean: float
    std: float

    def standardise(self, values: np.ndarray) -> np.ndarray:
        return (np.asarray(values, dtype=np.float64) - self.mean) / self.std


def river_input(name: str, calibration_values: np.ndarray, n_warmup: int) -> RiverInput:
    """Standardise by all ``calibration_values``; warm up on the last ``n_warmup`` of them."""
    values = np.asarray(calibration_values, dtype=np.float64).reshape(-1)
    std = float(values.std(ddof=1))
    if not std > 0:
        raise ValueError(f"{name}: calibration values are constant; cannot standardise a river input")
    mean = float(values.mean())
    return RiverInput(name, (values[-n_warmup:] - mean) / std, mean, std)


def calibration_msp(bank: FeatureBank, n_values: int, seed: int) -> np.ndarray:
    """Per-sample MSP of ``n_values`` calibration images in random order (repeats once the split is used up)."""
    rng = np.random.default_rng(seed)
    return bank.calib_msp[rng.integers(0, len(bank.calib_msp), n_values)]


def river_alarms(factory: Callable[[], object], source: RiverInput, values: np.ndarray) -> np.ndarray:
    """Whether a fresh river detector reports ``drift_detected`` on any value of each batch.

    Args:
        factory: builds the detector.
        source: warm-up values and standardisation of the input.
        values: ``(batches, values per batch)`` raw values of the stream, in order.
    """
    detector = factory()
    for value in source.warmup.tolist():
        detector.update(value)
    per_batch = values.shape[1]
    alarms = np.zeros(len(values), dtype=bool)
    for i, value in enumerate(source.standardise(values).reshape(-1).tolist()):
        detector.update(value)
        if detector.drift_detected:
            alarms[i // per_batch] = True
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
