"""The default monitor's acceptance checks on real data: quiet on clean streams, quick on a clear corruption, and a
WARNING before the ALERT on a slow ramp, with the measurements that explain the ramp check's outcome.

Each check names its target beside the measured value, so the table reads as pass/fail without this code. The
warning can also be tuned (``theta_warn`` x ``theta_slope``) on separate ramp and clean streams and is then reported
on fresh ones: rows of a tuned setting say so.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pandas as pd

from deepdrift import ObserverConfig
from deepdrift.observer import trend_slope
from experiments.streams.config import StreamStudyConfig
from experiments.streams.generate import Pools, Stream, change_stream
from experiments.streams.series import DriftSeries, fsm_trace

CHECK_SEED = 10_000_000
"""Stream seeds of the checks, far from those of the benchmark's streams."""
STRONG, RAMP_TEST, RAMP_TUNE = 1_000, 2_000, 3_000
"""Seed offsets of the strong sudden changes, the reported slow ramps and the ramps the warning is tuned on."""


def _row(model: str, check: str, target: str, value: object) -> dict[str, object]:
    return {"model": model, "check": check, "target": target, "value": value}


def slow_ramps(pools: Pools, cfg: StreamStudyConfig, offset: int) -> list[Stream]:
    """``cfg.ramp_streams`` share ramps of the first corruption, 0 -> 100% over ``cfg.slow_ramp`` batches."""
    name, severity, b = cfg.corruptions[0], [cfg.ramp_severity], cfg.batch_size
    post, ramp = cfg.slow_ramp + 10, cfg.slow_ramp
    return [
        change_stream(pools, "share_ramp", name, severity, cfg.pre, post, ramp, b, CHECK_SEED + offset + r)
        for r in range(cfg.ramp_streams)
    ]


def warned_first(drift: np.ndarray, change: int, config: ObserverConfig) -> bool:
    """A model-level WARNING after the change and before any ALERT (a warning with no ALERT counts too)."""
    trace = fsm_trace(drift, config)
    first_warn = np.flatnonzero(trace.warning[change:])
    first_alert = np.flatnonzero(trace.alert[change:])
    return bool(first_warn.size and (not first_alert.size or first_warn[0] < first_alert[0]))


def _clean_counts(clean: Sequence[np.ndarray], config: ObserverConfig) -> tuple[int, int, int]:
    """(ALERT events, WARNING events over all layers, batches) on clean drift series."""
    traces = [fsm_trace(d, config) for d in clean]
    return sum(t.layer_alerts for t in traces), sum(t.layer_warnings for t in traces), sum(len(d) for d in clean)


def tune_warning(
    ramps: Sequence[tuple[Stream, np.ndarray]], clean: Sequence[np.ndarray], cfg: StreamStudyConfig
) -> tuple[ObserverConfig, int]:
    """The (theta_warn, theta_slope) of the grid that warns first on most tuning ramps while raising at most
    ``cfg.clean_warnings`` WARNING events per 1000 clean tuning batches; ties keep the earlier grid point."""
    base = ObserverConfig()
    best, best_count = base, -1
    for warn, slope in itertools.product(cfg.theta_warn_grid, cfg.theta_slope_grid):
        config = replace(base, theta_warn=min(warn, base.theta_high), theta_slope=slope)
        _, warnings, batches = _clean_counts(clean, config)
        if 1000 * warnings / batches > cfg.clean_warnings:
            continue
        count = sum(warned_first(d, s.change, config) for s, d in ramps)
        if count > best_count:
            best, best_count = config, count
    return best, best_count


def _ramp_anatomy(ramps: Sequence[tuple[Stream, np.ndarray]], pools: Pools, config: ObserverConfig) -> dict[str, float]:
    """Medians over ramps of what the warning needs: a gradual rise through [theta_warn, theta_high)."""
    start, size = pools.spans["clean"]
    jump, band, slope = [], [], []
    for stream, drift in ramps:
        top = drift.max(axis=1)
        corrupted = ((stream.index < start) | (stream.index >= start + size)).any(axis=1)
        first = np.flatnonzero(corrupted)
        if first.size:
            jump.append(top[first[0]])
        after = top[stream.change :]
        high = np.flatnonzero(after >= config.theta_high)
        stop = high[0] if high.size else len(after)
        band.append(int(((after[:stop] >= config.theta_warn) & (after[:stop] < config.theta_high)).sum()))
        alert = np.flatnonzero(fsm_trace(drift, config).alert[stream.change :])
        end = stream.change + (alert[0] + 1 if alert.size else len(after))
        slope.append(trend_slope(top[max(stream.change, end - config.window_size) : end]))
    return {"jump": float(np.median(jump)) if jump else float("nan"), "band": float(np.median(band)),
            "slope": float(np.median(slope))}  # fmt: skip


def monitor_acceptance(
    series: DriftSeries,
    pools: Pools,
    cfg: StreamStudyConfig,
    model: str,
    clean_tune: Sequence[np.ndarray],
    clean_test: Sequence[np.ndarray],
) -> pd.DataFrame:
    """One row per check: the check, its target and the value measured with the default ``ObserverConfig``
    (``clean_*``: drift series of the clean tuning and test streams), then the warning tuned on separate streams."""
    default = ObserverConfig()
    alerts, warnings, batches = _clean_counts(clean_test, default)
    rows = [
        _row(model, f"{batches} clean batches: ALERT events over all layers per 1000", "<= 1",
             f"{1000 * alerts / batches:.2f} ({alerts} events)"),
        _row(model, f"{batches} clean batches: WARNING events over all layers per 1000", "<= 5",
             f"{1000 * warnings / batches:.2f} ({warnings} events)"),
    ]  # fmt: skip
    name, severity = cfg.strong.corruption, cfg.strong.severity
    strong = [
        change_stream(pools, "sudden", name, [severity], cfg.pre, cfg.post, cfg.ramp, cfg.batch_size,
                      CHECK_SEED + STRONG + r)
        for r in range(cfg.repeats)
    ]  # fmt: skip
    delays = []
    for stream in strong:
        after = np.flatnonzero(fsm_trace(series(stream.index), default).alert[stream.change :])
        delays.append(float(after[0] + 1) if after.size else np.inf)
    rows.append(_row(model, f"{name} s{severity} (sudden): batches to first ALERT, worst of {cfg.repeats}", "<= 3",
                     max(delays)))  # fmt: skip
    test = [(s, series(s.index)) for s in slow_ramps(pools, cfg, RAMP_TEST)]
    tune = [(s, series(s.index)) for s in slow_ramps(pools, cfg, RAMP_TUNE)]
    ramp = (
        f"slow ramp ({cfg.corruptions[0]} s{cfg.ramp_severity}, share 0->100% over {cfg.slow_ramp} batches): "
        "WARNING before ALERT"
    )
    target = f">= 90% of {len(test)}"
    warned = sum(warned_first(d, s.change, default) for s, d in test)
    rows.append(_row(model, ramp, target, f"{warned}/{len(test)}"))
    anatomy = _ramp_anatomy(test, pools, default)
    rows += [
        _row(model, "slow ramp: largest tap drift on the first batch holding a corrupted image (median)",
             f"< {default.theta_high:g} for a gradual rise", f"{anatomy['jump']:.1f}"),
        _row(model, f"slow ramp: batches with largest tap drift in [{default.theta_warn:g}, {default.theta_high:g}) "
             "before it first reaches theta_high (median)", f">= {default.persistence} (warning persistence)",
             f"{anatomy['band']:g}"),
        _row(model, f"slow ramp: slope of the largest tap drift over the {default.window_size} batches up to the "
             "first ALERT (sigma/batch, median)", f"> {default.theta_slope:g} (theta_slope)",
             f"{anatomy['slope']:.2f}"),
    ]  # fmt: skip
    tuned, tuned_count = tune_warning(tune, clean_tune, cfg)
    setting = f"theta_warn {tuned.theta_warn:g}, theta_slope {tuned.theta_slope:g}"
    tuned_warned = sum(warned_first(d, s.change, tuned) for s, d in test)
    _, tuned_warnings, _ = _clean_counts(clean_test, tuned)
    rows += [
        _row(model, f"warning tuned on {len(tune)} separate ramps + clean streams: {setting}",
             f"<= {cfg.clean_warnings:g} clean WARNING events per 1000", f"{tuned_count}/{len(tune)} on tuning ramps"),
        _row(model, f"{ramp}, tuned warning ({setting}), fresh streams", target, f"{tuned_warned}/{len(test)}"),
        _row(model, f"{batches} clean batches: WARNING events over all layers per 1000, tuned warning ({setting})",
             "<= 5", f"{1000 * tuned_warnings / batches:.2f} ({tuned_warnings} events)"),
    ]  # fmt: skip
    return pd.DataFrame(rows)
