"""What a monitor gives back beyond the status: per-sample scores and its history as tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from library_fixtures import clean_batches


@pytest.fixture
def monitor(small_cnn, calib_batches):
    from deepdrift import DeepDriftMonitor

    return DeepDriftMonitor(small_cnn, n_null_draws=1000).calibrate(calib_batches)


def test_score_samples_equals_scoring_each_sample_alone(monitor):
    x = clean_batches(1, seed=21)[0][:6]
    x[3] = x[3] * 8  # one outlying sample
    per_sample = monitor.score_samples(x)
    assert per_sample.drift.shape == (6, len(monitor.taps)) and per_sample.layers == tuple(monitor.layer_names)
    alone = np.array([[s.drift for s in monitor.score(x[i : i + 1]).values()] for i in range(6)])
    np.testing.assert_allclose(per_sample.drift, alone, rtol=1e-5, atol=1e-6)
    assert per_sample.drift[3].max() > 5 and np.abs(np.delete(per_sample.drift, 3, axis=0)).max() < 4.5
    np.testing.assert_array_equal(per_sample[monitor.layer_names[0]], per_sample.drift[:, 0])


def test_history_exports_to_tables(monitor, tmp_path):
    clean = clean_batches(1, seed=3)[0]
    for i in range(6):
        monitor.step(clean if i < 2 else clean * 6)
    frame = monitor.history.to_frame()
    assert len(frame) == 6 * len(monitor.taps) and set(frame.columns) == {"step", "layer", "label", "drift", "state"}
    alerts = monitor.history.alerts_frame()
    assert len(alerts) == len(monitor.history.alerts) > 0 and "ALERT" in set(alerts["kind"])
    path = monitor.history.save(tmp_path / "run.csv")
    back = pd.read_csv(path)
    np.testing.assert_allclose(back["drift"], frame["drift"])
    assert len(pd.read_csv(tmp_path / "run.alerts.csv")) == len(alerts)
    with pytest.raises(ValueError, match=r"csv or \.parquet"):
        monitor.history.save(tmp_path / "run.json")
