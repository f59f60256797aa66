import logging

import pytest
import torch
import torchvision.models as models
from library_fixtures import clean_batches
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from deepdrift import (
    DeepDriftMonitor,
    DeepDriftWarning,
    MonitorState,
    NotCalibratedError,
    ObserverConfig,
    diagnose_drift,
    plot_drift_profile,
)


def test_readme_quick_start_runs_as_written(tmp_path, capsys):
    model = models.resnet18(weights=None)
    model.eval()
    config = ObserverConfig(theta_high=3.0, theta_slope=0.05, window_size=20)
    monitor = DeepDriftMonitor(model, arch_name="ResNet-18", drift_config=config)
    train_loader = DataLoader(TensorDataset(torch.cat(clean_batches(10, size=32)), torch.zeros(160)), batch_size=16)
    monitor.calibrate(train_loader, max_batches=50)
    incoming_batch = clean_batches(1, size=32, seed=99)[0]
    status, alerts = monitor.step(incoming_batch)
    for alert in alerts:
        print(alert)
    ood_batch = incoming_batch + 2.0 * torch.randn_like(incoming_batch)
    drift_profile = monitor.step(ood_batch)[0]
    diagnosis = diagnose_drift([d["drift"] for d in drift_profile.values()])
    print(f"Diagnosis: {diagnosis}")
    plot_drift_profile(drift_profile, save=tmp_path / "profile.png")
    assert "Diagnosis: WARNING" in capsys.readouterr().out
    assert (tmp_path / "profile.png").stat().st_size > 1000
    assert set(status["layer1"]) >= {"drift", "p_value", "slope", "state", "zone", "depth"}
    assert list(status) == ["maxpool", "layer1", "layer2", "layer3", "layer4"]
    assert drift_profile["maxpool"]["drift"] > 5


def test_step_keeps_the_model_output(small_cnn, calib_batches):
    monitor = DeepDriftMonitor(small_cnn).calibrate(calib_batches)
    x = calib_batches[0]
    monitor.step(x)
    with torch.no_grad():
        torch.testing.assert_close(monitor.last_output, small_cnn(x))


def test_uncalibrated_step_says_how_to_fix(small_cnn):
    with pytest.raises(NotCalibratedError, match="calibrate"):
        DeepDriftMonitor(small_cnn).step(torch.zeros(2, 3, 16, 16))


def test_calibrate_accepts_tensors_pairs_and_dicts_and_restores_mode(small_cnn, calib_batches):
    small_cnn.train()
    small_cnn[4].eval()  # a user's frozen batch-norm must stay frozen
    for loader in (
        calib_batches[:12],
        [(x, torch.zeros(len(x))) for x in calib_batches[:12]],
        [{"image": x, "label": torch.zeros(len(x))} for x in calib_batches[:12]],
    ):
        monitor = DeepDriftMonitor(small_cnn).calibrate(loader, max_batches=10)
        assert monitor.calibration.n_seen == 160
    assert small_cnn.training and not small_cnn[4].training


def test_dict_batches_go_to_keyword_models():
    class KeywordModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU())
            self.head = nn.Linear(8, 2)

        def forward(self, pixel_values, scale=1.0):
            return self.head(self.body(pixel_values * scale))

    model = KeywordModel()
    loader = [{"pixel_values": torch.randn(16, 4), "labels": torch.zeros(16)} for _ in range(12)]
    monitor = DeepDriftMonitor(model, layers=["body.1", "body.3"]).calibrate(loader)
    status, _ = monitor.step({"pixel_values": torch.randn(8, 4) + 3, "labels": torch.zeros(8)})
    assert status["body.1"]["drift"] > 3


def test_batch_size_one_works(small_cnn, calib_batches):
    monitor = DeepDriftMonitor(small_cnn).calibrate(calib_batches)
    status, _ = monitor.step(calib_batches[0][:1])
    assert all(abs(d["drift"]) < 6 for d in status.values())


def test_alerts_are_logged_and_sent_to_the_callback(small_cnn, calib_batches, caplog_deepdrift):
    received = []
    monitor = DeepDriftMonitor(small_cnn, on_alert=received.append).calibrate(calib_batches)
    noisy = calib_batches[0] + 3 * torch.randn_like(calib_batches[0])
    for _ in range(3):
        monitor.step(noisy)
    assert received and all(a.kind.value == "ALERT" for a in received)
    assert "Threshold Breach" in caplog_deepdrift.text
    assert monitor.state is MonitorState.ALERT
    assert len(monitor.history) == 3 and monitor.history.drift_matrix.shape == (3, 3)


def test_nan_activations_raise_a_nonfinite_alert(small_cnn, calib_batches, caplog):
    caplog.set_level(logging.WARNING, logger="deepdrift")
    monitor = DeepDriftMonitor(small_cnn).calibrate(calib_batches)
    x = calib_batches[0].clone()
    x[0, 0, 0, 0] = float("nan")
    status, alerts = monitor.step(x)
    assert all(d["nonfinite"] for d in status.values())
    assert [a.kind.value for a in alerts] == ["NONFINITE"] * 3


def test_save_and_load_calibration_gives_identical_scores(tmp_path, small_cnn, calib_batches):
    a = DeepDriftMonitor(small_cnn).calibrate(calib_batches)
    path = a.save_calibration(tmp_path / "cal.safetensors")
    b = DeepDriftMonitor(small_cnn).load_calibration(path)
    x = calib_batches[3] * 1.3
    assert [s.drift for s in a.score(x).values()] == [s.drift for s in b.score(x).values()]


def test_context_manager_closes_and_no_hooks_remain(small_cnn, calib_batches):
    with DeepDriftMonitor(small_cnn) as monitor:
        monitor.calibrate(calib_batches[:12])
        monitor.step(calib_batches[0])
    assert sum(len(m._forward_hooks) for m in small_cnn.modules()) == 0
    with pytest.raises(RuntimeError, match="closed"):
        monitor.step(calib_batches[0])


def test_layers_and_layers_map_are_exclusive(small_cnn):
    with pytest.raises(ValueError, match="either"):
        DeepDriftMonitor(small_cnn, layers=["2"], layers_map={"UV": "2"})


def test_reset_clears_state_but_keeps_calibration(small_cnn, calib_batches):
    monitor = DeepDriftMonitor(small_cnn).calibrate(calib_batches)
    for _ in range(3):
        monitor.step(calib_batches[0] * 5)
    monitor.reset()
    assert monitor.state is MonitorState.NORMAL and len(monitor.history) == 0 and monitor.is_calibrated


def test_step_on_a_training_model_does_not_touch_batchnorm_buffers(small_cnn, calib_batches):
    monitor = DeepDriftMonitor(small_cnn).calibrate(calib_batches)
    small_cnn.train()
    before = small_cnn[4].running_mean.clone()
    with pytest.warns(DeepDriftWarning, match="training mode"):
        _status, _ = monitor.step(calib_batches[0] * 4)
    torch.testing.assert_close(small_cnn[4].running_mean, before)
    assert small_cnn.training
    small_cnn.eval()
    clean, _ = monitor.step(calib_batches[1])
    assert all(abs(d["drift"]) < 5 for d in clean.values())


def test_unknown_correction_is_refused_at_construction(small_cnn):
    with pytest.raises(ValueError, match="holm"):
        DeepDriftMonitor(small_cnn, correction="BH")
