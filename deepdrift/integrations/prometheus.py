"""Expose a monitor's latest per-layer drift, state and p-value to Prometheus (needs ``prometheus-client``).

A serving process calls ``monitor.step`` per request batch; Prometheus scrapes the latest reading of every layer.

Example:
    >>> from prometheus_client import start_http_server  # doctest: +SKIP
    >>> exporter = PrometheusExporter(monitor)  # doctest: +SKIP
    >>> start_http_server(9100, registry=exporter.registry)  # doctest: +SKIP
    >>> status, alerts = monitor.step(batch); exporter.update(status)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..observer import MonitorState
from ..status import LayerStatus

try:
    from prometheus_client import CollectorRegistry, Gauge, generate_latest
except ImportError as exc:  # pragma: no cover - optional extra
    raise ImportError("the Prometheus exporter needs prometheus-client: pip install 'deepdrift[serve]'") from exc

_STATE_CODE = {MonitorState.NORMAL: 0, MonitorState.WARNING: 1, MonitorState.ALERT: 2}


class PrometheusExporter:
    """Gauges ``deepdrift_drift_sigma``, ``deepdrift_p_value`` and ``deepdrift_state`` (0 normal, 1 warning,
    2 alert) per layer, plus ``deepdrift_steps_total``; labels ``model``, ``layer`` and ``zone``.

    Args:
        monitor: the ``DeepDriftMonitor`` whose steps are exported (its model class names the ``model`` label).
        registry: where the gauges live (a fresh ``CollectorRegistry`` by default, so tests and several monitors
            do not collide in the global one).
        model_label: value of the ``model`` label (default: the monitor's ``arch_name`` or model class).
    """

    def __init__(self, monitor: Any, registry: CollectorRegistry | None = None, model_label: str | None = None):
        self.registry = registry or CollectorRegistry()
        self.model_label = model_label or monitor.arch_name or type(monitor.model).__name__
        labels = ("model", "layer", "zone")
        self._drift = Gauge(
            "deepdrift_drift_sigma",
            "Latest drift of the layer (sigma units, ~N(0,1) on clean data)",
            labels,
            registry=self.registry,
        )
        self._p = Gauge(
            "deepdrift_p_value", "Latest one-sided p-value of the layer's drift", labels, registry=self.registry
        )
        self._state = Gauge(
            "deepdrift_state", "Layer state: 0 normal, 1 warning, 2 alert", labels, registry=self.registry
        )
        self._steps = Gauge("deepdrift_steps_total", "Steps exported so far", ("model",), registry=self.registry)
        self._n = 0

    def update(self, status: Mapping[str, LayerStatus]) -> None:
        """Record one step's status (what ``monitor.step`` returned first)."""
        for name, layer in status.items():
            labels = (self.model_label, name, layer.zone)
            self._drift.labels(*labels).set(layer.drift)
            self._p.labels(*labels).set(layer.p_value)
            self._state.labels(*labels).set(_STATE_CODE[MonitorState(layer.state)])
        self._n += 1
        self._steps.labels(self.model_label).set(self._n)

    def exposition(self) -> str:
        """The Prometheus text exposition of the gauges (what an HTTP scrape returns)."""
        return generate_latest(self.registry).decode("utf-8")
