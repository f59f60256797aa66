"""``preset("fast")`` and ``every_n`` sampling: cheaper monitoring that still scores what it claims to."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from library_fixtures import clean_batches, make_small_cnn

from deepdrift import CalibrationConfig, DeepDriftMonitor, PoolingConfig, preset


def test_fast_preset_keeps_channel_means_and_the_mean_shift_only(small_cnn, calib_batches):
    monitor = DeepDriftMonitor(small_cnn, **preset("fast")).calibrate(calib_batches, progress=False)
    assert monitor.pooling.summary == "mean" and monitor.scorer.statistic == "mean_shift"
    for name, ref in monitor.calibration.layers.items():
        channels = monitor._taps._seen[name][1][0]
        assert ref.n_features == channels and ref.principal is None
    status, _ = monitor.step(clean_batches(1, seed=9)[0])
    assert all(np.isfinite(s.drift) for s in status.values())
    shifted, _ = monitor.step(clean_batches(1, seed=9)[0] + 2.0)
    assert max(s.drift for s in shifted.values()) > 5


def test_preset_overrides_and_unknown_names():
    assert preset("default") == {
        "pooling": PoolingConfig(),
        "statistic": "combined",
        "calibration_config": CalibrationConfig(),
    }
    custom = preset("fast", calibration_config=CalibrationConfig(seed=4, principal_max_features=0))
    assert custom["calibration_config"].seed == 4
    with pytest.raises(ValueError, match="unknown preset 'turbo'"):
        preset("turbo")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="layers"):
        preset("fast", layers=["0"])


def test_every_n_scores_one_batch_in_n_and_keeps_every_output(calib_batches):
    model = make_small_cnn()
    sampled = DeepDriftMonitor(model, every_n=3).calibrate(calib_batches, progress=False)
    full = DeepDriftMonitor(model).calibrate(calib_batches, progress=False)
    batches = clean_batches(7, seed=5)
    scored = []
    for i, x in enumerate(batches):
        status, alerts = sampled.step(x)
        torch.testing.assert_close(sampled.last_output, model(x))
        if i % 3 == 0:
            expected, _ = full.step(x)
            assert [s.drift for s in status.values()] == [s.drift for s in expected.values()]
            scored.append(status)
        else:
            assert status is scored[-1] and alerts == []
    assert sampled.history.to_frame()["step"].nunique() == 3  # batches 0, 3 and 6


def test_every_n_must_be_a_positive_integer(small_cnn):
    with pytest.raises(ValueError, match="every_n"):
        DeepDriftMonitor(small_cnn, every_n=0)
