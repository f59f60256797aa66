"""What the monitor remembers of past steps, for timelines and post-hoc analysis."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from .observer import Alert


@dataclass
class DriftHistory:
    """Per-step drift and states of every tap, plus every alert event.

    Attributes:
        layers: tap names in depth order (rows of ``drift_matrix``).
        labels: their display labels.
        max_steps: keep only the most recent steps (None keeps everything).
    """

    layers: list[str]
    labels: list[str]
    max_steps: int | None = None
    steps: deque[int] = field(init=False)
    drift: deque[np.ndarray] = field(init=False)
    states: deque[list[str]] = field(init=False)
    alerts: list[Alert] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.steps = deque(maxlen=self.max_steps)
        self.drift = deque(maxlen=self.max_steps)
        self.states = deque(maxlen=self.max_steps)

    def record(self, step: int, drift: np.ndarray, states: list[str], alerts: list[Alert]) -> None:
        self.steps.append(step)
        self.drift.append(np.asarray(drift, dtype=np.float64))
        self.states.append(list(states))
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
