"""Detection delay, false alarms per 1000 clean batches, warning lead time, and threshold matching.

Conventions (the same for every detector):

* an alarm *event* is a step where the detector enters its alarm state (the monitor's model-level state becomes
  ALERT, a river detector reports ``drift_detected``, a windowed test's score rises above its threshold);
* false alarms per 1000 batches = events on clean streams / clean batches x 1000 (1000 / ARL0);
* detection delay = batches seen from the change until the detector is in its alarm state, counting the change
  batch as 1 (an alarm on the first corrupted batch has delay 1); no alarm within the stream: missed (NaN);
* censored delay = the delay, or for a miss the batches the stream had left after the change (a miss never
  counts as faster than an alarm on the stream's last batch);
* warning lead = first ALERT step - first WARNING step after the change (positive: the warning came first).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def alarm_events(alarm: np.ndarray) -> np.ndarray:
    """Steps where ``alarm`` switches from False to True (the first step counts if it is True)."""
    a = np.asarray(alarm, dtype=bool)
    return np.flatnonzero(a & ~np.concatenate([[False], a[:-1]]))


def false_alarms_per_1000(n_events: int, n_batches: int) -> float:
    """Alarm events per 1000 clean batches."""
    if n_batches <= 0:
        raise ValueError("need at least one clean batch to estimate a false-alarm rate")
    return 1000.0 * n_events / n_batches


def detection_delay(alarm: np.ndarray, change: int) -> float:
    """Batches from ``change`` to the first alarm at or after it, counting the change batch as 1 (NaN: missed)."""
    after = np.flatnonzero(np.asarray(alarm, dtype=bool)[change:])
    return float(after[0] + 1) if after.size else float("nan")


def censored_delay(alarm: np.ndarray, change: int) -> float:
    """:func:`detection_delay`, with a miss counted as the ``len(alarm) - change`` batches after the change."""
    delay = detection_delay(alarm, change)
    return delay if np.isfinite(delay) else float(len(alarm) - change)


def warning_lead(warning: np.ndarray, alert: np.ndarray, change: int) -> float:
    """First ALERT minus first WARNING at or after ``change``, in batches (NaN when either never happens)."""
    warned = detection_delay(warning, change)
    alerted = detection_delay(alert, change)
    return alerted - warned if np.isfinite(warned) and np.isfinite(alerted) else float("nan")


def match_threshold(thresholds: Sequence[float], false_alarms: Sequence[float], budget: float) -> float | None:
    """The most sensitive threshold whose false-alarm rate stays within ``budget``.

    Args:
        thresholds: settings ordered from the least to the most sensitive (fewest to most alarms).
        false_alarms: false alarms per 1000 clean batches at each setting.
        budget: allowed false alarms per 1000 clean batches.

    Returns:
        The last setting before the first one that exceeds the budget (so a non-monotone tail cannot be picked
        past a violation), or None when even the least sensitive setting exceeds it.
    """
    if len(thresholds) != len(false_alarms):
        raise ValueError("thresholds and false_alarms must have the same length")
    chosen = None
    for threshold, rate in zip(thresholds, false_alarms, strict=True):
        if rate > budget:
            break
        chosen = threshold
    return chosen
