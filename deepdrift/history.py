"""What the monitor remembers of past steps, for timelines and post-hoc analysis.

Memory is bounded by default: a monitor left running in a server keeps the most recent ``max_steps`` steps and
``max_alerts`` alert events, and counts what it dropped.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from .observer import Alert
from .validation import require_int

DEFAULT_MAX_STEPS = 10_000
"""Steps kept by default: a 16-tap timeline of 10k steps is ~1.3 MB."""
DEFAULT_MAX_ALERTS = 10_000


@dataclass
class DriftHistory:
    """Per-step drift and states of every tap, plus the alert events.

    Attributes:
        layers: tap names in depth order (rows of ``drift_matrix``).
        labels: their display labels.
        max_steps: keep only the most recent steps (None keeps everything: memory then grows without bound).
        max_alerts: keep only the most recent alert events (None keeps all).
        n_dropped_alerts: alert events that fell off the end of the log.
    """

    layers: list[str]
    labels: list[str]
    max_steps: int | None = DEFAULT_MAX_STEPS
    max_alerts: int | None = DEFAULT_MAX_ALERTS
    steps: deque[int] = field(init=False)
    drift: deque[np.ndarray] = field(init=False)
    states: deque[list[str]] = field(init=False)
    alerts: deque[Alert] = field(init=False)
    n_dropped_alerts: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        for name in ("max_steps", "max_alerts"):
            if getattr(self, name) is not None:
                require_int(f"DriftHistory.{name}", getattr(self, name), minimum=1)
        self.steps = deque(maxlen=self.max_steps)
        self.drift = deque(maxlen=self.max_steps)
        self.states = deque(maxlen=self.max_steps)
        self.alerts = deque(maxlen=self.max_alerts)

    def record(self, step: int, drift: np.ndarray, states: list[str], alerts: list[Alert]) -> None:
        self.steps.append(step)
        self.drift.append(np.asarray(drift, dtype=np.float64))
        self.states.append(list(states))
        if self.max_alerts is not None:
            self.n_dropped_alerts += max(0, len(self.alerts) + len(alerts) - self.max_alerts)
        self.alerts.extend(alerts)

    def __len__(self) -> int:
        return len(self.steps)

    @property
    def drift_matrix(self) -> np.ndarray:
        """``(layers, steps)`` array of drift in sigma units."""
        if not self.drift:
            return np.zeros((len(self.layers), 0))
        return np.stack(list(self.drift), axis=1)

    @property
    def state_matrix(self) -> np.ndarray:
        """``(layers, steps)`` array of state names."""
        if not self.states:
            return np.zeros((len(self.layers), 0), dtype=object)
        return np.array(list(self.states), dtype=object).T
