"""Every detector at every setting over the same streams: alarm states -> delays and false alarms (long tables)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from deepdrift import ObserverConfig
from experiments.streams.bank import FeatureBank
from experiments.streams.detectors import (
    RiverInput,
    adwin,
    fit_window_detectors,
    page_hinkley,
    river_alarms,
    window_scores,
)
from experiments.streams.generate import Stream
from experiments.streams.metrics import alarm_events, censored_delay, detection_delay, warning_lead
from experiments.streams.series import fsm_trace

DEEPDRIFT = "DeepDrift (model-level ALERT)"
RIVER_INPUTS = {"msp": "per-sample MSP", "drift": "DeepDrift drift"}
"""River inputs: every image's MSP (a batch's worth in order), and the largest per-tap drift of each batch."""


@dataclass(frozen=True)
class Scored:
    """One stream with its role (tune / test / change) and DeepDrift's per-layer drift series."""

    role: str
    stream: Stream
    drift: np.ndarray  # (batches, layers)


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
        row["delay_censored"] = censored_delay(alarm, stream.change)
        if warning is not None:
            row["warning_delay"] = detection_delay(warning, stream.change)
            row["warning_lead"] = warning_lead(warning, alarm, stream.change)
    return row


def labelled(streams: dict[str, Sequence[Stream]]) -> Iterator[tuple[str, Stream]]:
    for role, items in streams.items():
        for stream in items:
            yield role, stream


def deepdrift_rows(scored: Sequence[Scored], thetas: Sequence[float]) -> list[dict]:
    """The library's FSM at each theta_high over each stream's drift series (one calibration, one scoring)."""
    rows = []
    for theta in tqdm(thetas, desc="deepdrift thetas", disable=None, leave=False):
        config = observer_config(theta)
        for item in scored:
            trace = fsm_trace(item.drift, config)
            row = _row(DEEPDRIFT, theta, item.stream, item.role, trace.alert, trace.warning)
            row.update(layer_alert_events=trace.layer_alerts, layer_warning_events=trace.layer_warnings)
            rows.append(row)
    return rows


def river_rows(
    bank: FeatureBank,
    scored: Sequence[Scored],
    inputs: dict[str, RiverInput],
    deltas: Sequence[float],
    ph_thresholds: Sequence[float],
) -> list[dict]:
    """ADWIN (per delta) and Page-Hinkley (per threshold) on each input of :data:`RIVER_INPUTS`."""
    rows = []
    for key, source in inputs.items():
        label = RIVER_INPUTS[key]
        methods = [(f"ADWIN (river, {label})", d, partial(adwin, d)) for d in deltas]
        methods += [(f"Page-Hinkley (river, {label})", t, partial(page_hinkley, t)) for t in ph_thresholds]
        for item in tqdm(scored, desc=f"river on {label}", disable=None, leave=False):
            values = river_values(key, bank, item)
            for name, setting, factory in methods:
                rows.append(_row(name, setting, item.stream, item.role, river_alarms(factory, source, values)))
    return rows


def river_values(key: str, bank: FeatureBank, item: Scored) -> np.ndarray:
    """``(batches, values per batch)``: per-sample MSP in stream order, or each batch's largest tap drift."""
    if key == "msp":
        return bank.msp[item.stream.index]
    if key == "drift":
        return item.drift.max(axis=1, keepdims=True)
    raise ValueError(f"unknown river input {key!r}; use one of {sorted(RIVER_INPUTS)}")


def window_rows(
    bank: FeatureBank,
    streams: dict[str, Sequence[Stream]],
    window: int,
    n_reference: int,
    quantiles: Sequence[float],
    seed: int,
    clean_streams: int | None = None,
) -> list[dict]:
    """MMD / KS scores per window; thresholds at upper quantiles of the clean tuning streams' scores.

    ``clean_streams`` limits the clean tuning and test streams scored (the first ones of each role; None: all).
    """
    streams = {role: items if role == "change" or clean_streams is None else items[:clean_streams]
               for role, items in streams.items()}  # fmt: skip
    rows = []
    for name, detector in fit_window_detectors(bank, n_reference, seed).items():
        scores = [(role, stream, window_scores(detector, bank, stream, window)) for role, stream in labelled(streams)]
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
