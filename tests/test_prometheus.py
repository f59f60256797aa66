"""The Prometheus exposition carries the latest drift, state and p-value of every layer."""

from __future__ import annotations

import pytest
from library_fixtures import clean_batches

prometheus_client = pytest.importorskip("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from deepdrift import DeepDriftMonitor  # noqa: E402
from deepdrift.integrations.prometheus import PrometheusExporter  # noqa: E402


def test_exposition_has_every_layer_after_a_step(small_cnn, calib_batches):
    monitor = DeepDriftMonitor(small_cnn, arch_name="small-cnn", n_null_draws=500).calibrate(calib_batches)
    exporter = PrometheusExporter(monitor)
    x = clean_batches(1, seed=5)[0] * 6
    for _ in range(3):
        status, _ = monitor.step(x)
        exporter.update(status)
    families = {f.name: f for f in text_string_to_metric_families(exporter.exposition())}
    drift = {s.labels["layer"]: s.value for s in families["deepdrift_drift_sigma"].samples}
    assert drift == pytest.approx({name: d.drift for name, d in status.items()})
    states = {s.labels["layer"]: s.value for s in families["deepdrift_state"].samples}
    assert max(states.values()) == 2  # the shifted stream is in ALERT
    assert {s.labels["model"] for s in families["deepdrift_p_value"].samples} == {"small-cnn"}
    assert families["deepdrift_steps_total"].samples[0].value == 3
