"""Per-layer finite state machine: NORMAL -> WARNING -> ALERT with hysteresis, trend detection and persistence.

Drift arrives in sigma units (~N(0, 1) on clean data), so thresholds mean the same at every layer and batch size.
Entering WARNING or ALERT needs the condition in ``persistence`` of the last ``persistence_window`` steps: with
independent clean steps this turns a 0.13% per-step 3-sigma exceedance into a ~5e-6 chance of an ALERT event, while a
real shift still alerts on its second batch. ALERT clears only at ``theta_low`` (hysteresis), and recovery wipes
the trend history, so stale slopes cannot re-trigger a warning right after recovery.
"""

from __future__ import annotations

import enum
import functools
import math
import operator
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .validation import require_float, require_int


class MonitorState(str, enum.Enum):
    """Health of a layer (or of the whole model: the worst of its layers); compares equal to its name."""

    NORMAL = "NORMAL"
    WARNING = "WARNING"
    ALERT = "ALERT"

    def __str__(self) -> str:
        return self.value

    @property
    def severity(self) -> int:
        return {"NORMAL": 0, "WARNING": 1, "ALERT": 2}[self.value]


class AlertKind(enum.Enum):
    """What an alert event reports."""

    WARNING = "WARNING"
    ALERT = "ALERT"
    NONFINITE = "NONFINITE"
    RECOVERY = "RECOVERY"


@dataclass(frozen=True)
class ObserverConfig:
    """Thresholds of the per-layer FSM (sigma units; slopes in sigma per step).

    Attributes:
        theta_high: ALERT threshold.
        theta_low: an ALERT clears once drift falls to or below this (hysteresis).
        theta_slope: WARNING when the least-squares slope over the window exceeds this ...
        theta_warn: ... while drift is elevated to at least this.
        window_size: steps in the slope window.
        min_history: steps needed before a slope is computed.
        persistence: the entry condition must hold in this many of the last ``persistence_window`` steps.
        persistence_window: see ``persistence``; ``persistence=1`` reacts to single steps like the original.
    """

    theta_high: float = 3.0
    theta_low: float = 1.5
    theta_slope: float = 0.05
    theta_warn: float = 2.0
    window_size: int = 20
    min_history: int = 5
    persistence: int = 2
    persistence_window: int = 3

    def __post_init__(self) -> None:
        require_float("ObserverConfig.theta_high", self.theta_high, minimum=0.0, strict_minimum=True)
        require_float("ObserverConfig.theta_low", self.theta_low)
        require_float("ObserverConfig.theta_slope", self.theta_slope, minimum=0.0)
        require_float("ObserverConfig.theta_warn", self.theta_warn)
        require_int("ObserverConfig.window_size", self.window_size, minimum=2)
        require_int("ObserverConfig.min_history", self.min_history, minimum=2)
        require_int("ObserverConfig.persistence", self.persistence, minimum=1)
        require_int("ObserverConfig.persistence_window", self.persistence_window, minimum=1)
        if not self.theta_low < self.theta_high:
            raise ValueError(f"theta_low ({self.theta_low}) must be below theta_high ({self.theta_high})")
        if not self.theta_warn <= self.theta_high:
            raise ValueError(
                f"theta_warn ({self.theta_warn}) must not exceed theta_high ({self.theta_high}): a "
                "warning is the early stage of an alert"
            )
        if not self.persistence <= self.persistence_window:
            raise ValueError(f"need persistence ({self.persistence}) <= persistence_window ({self.persistence_window})")
        if not self.min_history <= self.window_size:
            raise ValueError(f"need min_history ({self.min_history}) <= window_size ({self.window_size})")


@dataclass(frozen=True)
class Alert:
    """One state-change event of one layer; ``str()`` gives the original's one-line message."""

    layer: str
    label: str
    zone: str
    kind: AlertKind
    value: float
    threshold: float
    step: int

    def __str__(self) -> str:
        if self.kind is AlertKind.WARNING:
            return f"⚠️ WARNING [{self.label}]: Rapid Drift Detected (Slope {self.value:.3f})"
        if self.kind is AlertKind.ALERT:
            return f"🔴 ALERT [{self.label}]: Threshold Breach ({self.value:.1f} >= {self.threshold:.1f})"
        if self.kind is AlertKind.NONFINITE:
            return f"🔴 ALERT [{self.label}]: Non-finite activations (NaN/Inf)"
        return f"🟢 RECOVERY [{self.label}]: Drift back to {self.value:.1f} <= {self.threshold:.1f}"


def trend_slope(values: np.ndarray | Sequence[float]) -> float:
    """Least-squares slope of ``values`` against step index (0 for fewer than two values)."""
    if len(values) < 2:
        return 0.0
    return math.fsum(map(operator.mul, _slope_weights(len(values)), values))


@functools.lru_cache(maxsize=64)
def _slope_weights(n: int) -> tuple[float, ...]:
    """``w_i = (i - mean i) / sum (i - mean i)^2``: the slope is ``sum w_i v_i`` (the weights sum to zero, so the
    values need no centring). Per window length, computed once: this runs for every layer on every step."""
    centred = np.arange(n, dtype=np.float64) - (n - 1) / 2
    return tuple((centred / np.dot(centred, centred)).tolist())


class LayerObserver:
    """FSM of one layer. ``update(drift)`` returns the events this step caused (usually none)."""

    def __init__(self, name: str, label: str, zone: str, config: ObserverConfig = ObserverConfig()) -> None:
        self.name, self.label, self.zone, self.config = name, label, zone, config
        self.reset()

    def reset(self) -> None:
        """Back to NORMAL with no history."""
        self.state = MonitorState.NORMAL
        self.history: deque[float] = deque(maxlen=self.config.window_size)
        self._alert_votes: deque[bool] = deque(maxlen=self.config.persistence_window)
        self._warn_votes: deque[bool] = deque(maxlen=self.config.persistence_window)
        self.slope = 0.0

    def update(self, drift: float, step: int) -> list[Alert]:
        """Advance one step with this layer's drift (NaN means non-finite activations)."""
        cfg = self.config
        if math.isnan(drift):
            return self._enter_nonfinite(step)
        self.history.append(drift)
        self.slope = trend_slope(self.history) if len(self.history) >= cfg.min_history else 0.0
        self._alert_votes.append(drift >= cfg.theta_high)
        self._warn_votes.append(self.slope > cfg.theta_slope and drift >= cfg.theta_warn)
        alert_due = sum(self._alert_votes) >= cfg.persistence
        warn_due = sum(self._warn_votes) >= cfg.persistence

        if self.state is MonitorState.ALERT:
            if drift <= cfg.theta_low:
                return self._recover(drift, step)
            return []
        if alert_due:
            self.state = MonitorState.ALERT
            return [self._event(AlertKind.ALERT, drift, cfg.theta_high, step)]
        if self.state is MonitorState.WARNING:
            if self.slope <= 0.0 or drift <= cfg.theta_low:
                self.state = MonitorState.NORMAL
                self._warn_votes.clear()  # a new warning must earn its persistence again
                self.history.clear()
            return []
        if warn_due:
            self.state = MonitorState.WARNING
            return [self._event(AlertKind.WARNING, self.slope, cfg.theta_slope, step)]
        return []

    def _enter_nonfinite(self, step: int) -> list[Alert]:
        was_alert = self.state is MonitorState.ALERT
        self.state = MonitorState.ALERT
        self._alert_votes.append(True)
        return [] if was_alert else [self._event(AlertKind.NONFINITE, math.nan, self.config.theta_high, step)]

    def _recover(self, drift: float, step: int) -> list[Alert]:
        self.reset()  # stale pre-recovery history must not produce a warning on the next steps
        return [self._event(AlertKind.RECOVERY, drift, self.config.theta_low, step)]

    def _event(self, kind: AlertKind, value: float, threshold: float, step: int) -> Alert:
        return Alert(
            layer=self.name, label=self.label, zone=self.zone, kind=kind, value=value, threshold=threshold, step=step
        )
