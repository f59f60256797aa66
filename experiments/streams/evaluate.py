"""Every detector at every setting over the same streams: alarm states -> delays and false alarms (long tables)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import partial

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from deepdrift import DeepDriftMonitor, ObserverConfig
from experiments.streams.bank import FeatureBank
from experiments.streams.detectors import (
    adwin,
    batch_msp,
    calibration_msp,
    fit_window_detectors,
    page_hinkley,
    river_alarms,
    run_monitor,
    window_scores,
)
from experiments.streams.generate import Stream
from experiments.streams.metrics import alarm_events, detection_delay, warning_lead
from experiments.streams.replay import with_config

DEEPDRIFT = "DeepDrift (model-level ALERT)"


def observer_config(theta_high: float) -> ObserverConfig:
    """Default FSM with another ALERT threshold (theta_low stays 1.5, or half a sigma below a lower theta_high; the
    warning level at most the alert level)."""
    # a warning is the early stage of an alert: below the default warning level, warn where the alert starts (with
    # equal levels every warning vote is an alert vote too, so the alert comes first, as it did with the warning level
    # above the alert level)
    default = ObserverConfig()
    return ObserverConfig(
        theta_high=theta_high, theta_low=min(1.5, theta_high - 0.5), theta_warn=min(default.theta_warn, theta_high)
    )


def _row(
    method: str, setting: float, stream: Stream, role: str, alarm: np.ndarray, warning: np.ndarray | None = None
) -> dict:
    row = {
        "method": method,
        "setting": setting,
        "role": role,
        "kind": stream.kind,
        "corruption": stream.corruption,
        "severity": stream.severity,
        "seed": stream.seed,
        "change": stream.change,
        "batches": len(alarm),
    }
    if stream.change < 0:
        row["events"] = len(alarm_events(alarm))
    else:
        row["events"] = len(alarm_events(alarm[: stream.change]))
        row["delay"] = detection_delay(alarm, stream.change)
        if warning is not None:
            row["warning_delay"] = detection_delay(warning, stream.change)
            row["warning_lead"] = warning_lead(warning, alarm, stream.change)
    return row


def _labelled(streams: dict[str, Sequence[Stream]]) -> Iterator[tuple[str, Stream]]:
    for role, items in streams.items():
        for stream in items:
            yield role, stream


def deepdrift_rows(
    monitor: DeepDriftMonitor, bank: FeatureBank, streams: dict[str, Sequence[Stream]], thetas: Sequence[float]
) -> list[dict]:
    """The monitor at each theta_high, sharing one calibration."""
    rows = []
    for theta in tqdm(thetas, desc="deepdrift thetas", disable=None, leave=False):
        m = with_config(monitor, observer_config(theta))
        for role, stream in _labelled(streams):
            trace = run_monitor(m, bank, stream)
            row = _row(DEEPDRIFT, theta, stream, role, trace.alert, trace.warning)
            row.update(layer_alert_events=trace.layer_alerts, layer_warning_events=trace.layer_warnings)
            rows.append(row)
    return rows


def river_rows(
    bank: FeatureBank,
    streams: dict[str, Sequence[Stream]],
    deltas: Sequence[float],
    ph_thresholds: Sequence[float],
    batch_size: int,
    warmup_batches: int,
    seed: int,
) -> list[dict]:
    """ADWIN (per delta) and Page-Hinkley (per threshold) on the batch-mean MSP."""
    warmup = calibration_msp(bank, batch_size, warmup_batches, seed)
    rows = []
    methods = [("ADWIN (river, MSP)", d, partial(adwin, d)) for d in deltas]
    methods += [("Page-Hinkley (river, MSP)", t, partial(page_hinkley, t)) for t in ph_thresholds]
    for role, stream in _labelled(streams):
        values = batch_msp(bank, stream)
        for name, setting, factory in methods:
            rows.append(_row(name, setting, stream, role, river_alarms(factory, warmup, values)))
    return rows


def window_rows(
    bank: FeatureBank,
    streams: dict[str, Sequence[Stream]],
    window: int,
    n_reference: int,
    quantiles: Sequence[float],
    seed: int,
) -> list[dict]:
    """MMD / KS scores per window; thresholds at upper quantiles of the clean tuning streams' scores."""
    rows = []
    for name, detector in fit_window_detectors(bank, n_reference, seed).items():
        scores = [(role, stream, window_scores(detector, bank, stream, window)) for role, stream in _labelled(streams)]
        tuning = np.concatenate([s[np.isfinite(s)] for role, _, s in scores if role == "tune"])
        thresholds = {}
        for q in quantiles:  # discrete scores (KS) give equal thresholds for nearby quantiles: keep each once
            thresholds.setdefault(float(np.quantile(tuning, q)), q)
        for threshold, q in thresholds.items():
            for role, stream, s in scores:
                alarm = np.nan_to_num(s, nan=-np.inf) > threshold
                rows.append({**_row(name, threshold, stream, role, alarm), "quantile": q})
    return rows


def results_frame(rows: list[dict], model: str) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    df.insert(0, "model", model)
    return df
