"""Replayed features give the real model's drift, and streams are built as specified."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepdrift import DeepDriftMonitor, ObserverConfig
from experiments.features import extract_features, tap_order
from experiments.models import small_cnn
from experiments.streams.generate import Pools, change_stream, clean_stream
from experiments.streams.replay import pack, replay_monitor, with_config


def test_replayed_drift_equals_the_real_monitor() -> None:
    torch.manual_seed(0)
    model = small_cnn(10, 1, 32).eval()
    gen = torch.Generator().manual_seed(1)
    calib, test = torch.randn(256, 1, 32, 32, generator=gen), torch.randn(16, 1, 32, 32, generator=gen) * 1.5
    real = DeepDriftMonitor(model, n_null_draws=500)
    real.calibrate(calib.split(64), progress=False)
    names = tap_order(model, calib[:4])
    assert names == real.layer_names
    feats = extract_features(model, calib, names)
    replay = replay_monitor(
        [x.shape[1] for x in feats.taps.values()], [t.label for t in real.taps], pack(feats.taps), calibration_batch=64
    )
    replay.scorer.n_null_draws = 500
    replay.scorer.set_calibration(replay.calibration)
    want = [s.drift for s in real.score(test).values()]
    got = [s.drift for s in replay.score(pack(extract_features(model, test, names).taps)).values()]
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert max(want) > 3  # the test batch is really shifted, so the comparison is not between zeros


def test_with_config_shares_calibration_but_not_state() -> None:
    calib = torch.randn(512, 6)
    monitor = replay_monitor([3, 3], ["a", "b"], calib)
    other = with_config(monitor, ObserverConfig(theta_high=10.0))
    shifted = torch.randn(16, 6, generator=torch.Generator().manual_seed(0)) + 0.9
    assert 3.5 < min(s.drift for s in monitor.score(shifted).values()) < 9.0
    for _ in range(3):
        monitor.step(shifted)
        other.step(shifted)
    assert monitor.state.value == "ALERT" and other.state.value == "NORMAL"
    assert other.calibration is monitor.calibration


@pytest.fixture
def pools() -> Pools:
    return Pools({"clean": (0, 100), ("fog", 3): (100, 50), ("fog", 5): (150, 50)})


def test_clean_stream_has_distinct_images_per_batch(pools: Pools) -> None:
    stream = clean_stream(pools, 30, 16, seed=0)
    assert stream.index.shape == (30, 16) and stream.change == -1
    assert all(len(set(row)) == 16 for row in stream.index) and stream.index.max() < 100


def test_sudden_and_ramp_streams(pools: Pools) -> None:
    sudden = change_stream(pools, "sudden", "fog", [5], (5, 9), post=10, ramp=4, batch_size=8, seed=1)
    assert 5 <= sudden.change <= 9 and sudden.index.shape == (sudden.change + 10, 8)
    assert (sudden.index[: sudden.change] < 100).all() and (sudden.index[sudden.change :] >= 150).all()
    ramp = change_stream(pools, "share_ramp", "fog", [3], (5, 5), post=6, ramp=4, batch_size=8, seed=2)
    corrupted = (ramp.index[5:] >= 100).sum(axis=1).tolist()
    assert corrupted == [2, 4, 6, 8, 8, 8]
    sev = change_stream(pools, "severity_ramp", "fog", [3, 5], (5, 5), post=6, ramp=4, batch_size=8, seed=3)
    levels = [5 if (row >= 150).all() else 3 if ((row >= 100) & (row < 150)).all() else 0 for row in sev.index[5:]]
    assert levels == [3, 3, 5, 5, 5, 5]
    with pytest.raises(ValueError, match="unknown stream kind"):
        change_stream(pools, "zigzag", "fog", [3], (5, 5), 2, 2, 8, 0)


def test_drift_series_and_fsm_equal_the_monitor_step_by_step() -> None:
    """The vectorised drift series and the FSM run over it reproduce ``monitor.step`` exactly."""
    from experiments.streams.series import DriftSeries, fsm_trace

    gen = torch.Generator().manual_seed(3)
    calib = torch.randn(1024, 8, generator=gen)
    packed = torch.cat([torch.randn(200, 8, generator=gen), torch.randn(100, 8, generator=gen) + 1.5])
    pools = Pools({"clean": (0, 200), ("x", 1): (200, 100)})
    monitor = replay_monitor([3, 5], ["a", "b"], calib)
    stream = change_stream(pools, "share_ramp", "x", [1], (10, 10), post=25, ramp=20, batch_size=8, seed=4)
    drift = DriftSeries(monitor, packed)(stream.index)
    monitor.reset()
    want, states = [], []
    for index in stream.index:
        status, _ = monitor.step(packed[torch.as_tensor(index)])
        want.append([s.drift for s in status.values()])
        states.append(monitor.state.value)
    np.testing.assert_allclose(drift, np.array(want), rtol=1e-9, atol=1e-9)
    trace = fsm_trace(drift, monitor.config)
    got = np.where(trace.alert, "ALERT", np.where(trace.warning, "WARNING", "NORMAL"))
    assert got.tolist() == states and "ALERT" in states  # the comparison covers a real alarm


def test_river_input_is_standardised_on_calibration_values_and_alarms_per_batch() -> None:
    from experiments.streams.detectors import adwin, river_alarms, river_input

    rng = np.random.default_rng(0)
    source = river_input("x", rng.normal(5.0, 2.0, 4000), n_warmup=200)
    assert abs(source.mean - 5.0) < 0.1 and abs(source.std - 2.0) < 0.1 and len(source.warmup) == 200
    values = np.concatenate([rng.normal(5.0, 2.0, (50, 16)), rng.normal(9.0, 2.0, (50, 16))])
    alarms = river_alarms(lambda: adwin(0.002), source, values)
    assert alarms.shape == (100,) and not alarms[:45].any() and alarms[50:60].any()
