import json

import pytest
import torch
from safetensors.torch import save_file

from deepdrift import (
    CalibrationConfig,
    CalibrationMismatchError,
    DeepDriftMonitor,
    DeepDriftWarning,
    NonFiniteActivationError,
    PoolingConfig,
)
from deepdrift.calibration import Calibration, CalibrationAccumulator, read_header


def _features(n, seed=0, d=(5, 3)):
    g = torch.Generator().manual_seed(seed)
    return {"a": torch.randn(n, d[0], generator=g), "b": torch.randn(n, d[1], generator=g) * 2 + 1}


def test_holdout_and_moment_streams_are_disjoint_and_sized():
    acc = CalibrationAccumulator(CalibrationConfig(holdout_fraction=0.25, reservoir_size=1000))
    for i in range(10):
        acc.update(_features(16, seed=i))
    assert acc.moments["a"].count == 120 and len(acc.reservoir) == 40
    cal = acc.finalize()
    all_a = torch.cat([_features(16, seed=i)["a"] for i in range(10)])
    held = cal.layers["a"].holdout
    used = torch.ones(160, dtype=torch.bool)
    for row in held:
        used &= ~(all_a == row).all(dim=1)
    torch.testing.assert_close(cal.layers["a"].mean, all_a[used].double().mean(0))


def test_memory_is_bounded_by_the_reservoir():
    acc = CalibrationAccumulator(CalibrationConfig(reservoir_size=64))
    for i in range(50):
        acc.update(_features(64, seed=i))
    cal = acc.finalize()
    assert cal.layers["a"].holdout.shape == (64, 5)
    assert acc.reservoir.rows["a"].shape[0] == 64


def test_merge_equals_single_pass_moments():
    one, left, right = (CalibrationAccumulator() for _ in range(3))
    for i in range(6):
        one.update(_features(20, seed=i))
        (left if i < 3 else right).update(_features(20, seed=i))
    left.merge(right)
    torch.testing.assert_close(left.moments["b"].mean, one.moments["b"].mean)
    assert left.n_seen == one.n_seen == 120


def test_nan_in_calibration_data_is_refused():
    acc = CalibrationAccumulator()
    bad = _features(8)
    bad["b"][3, 1] = float("nan")
    with pytest.raises(NonFiniteActivationError, match="'b'"):
        acc.update(bad)


def test_save_load_roundtrip_is_exact_and_pickle_free(tmp_path):
    acc = CalibrationAccumulator()
    for i in range(8):
        acc.update(_features(32, seed=i))
    cal = acc.finalize(metadata={"model_class": "Toy"})
    path = cal.save(tmp_path / "cal.safetensors")
    loaded = Calibration.load(path)
    assert loaded.names == cal.names and loaded.config == cal.config and loaded.n_seen == cal.n_seen
    for name in cal.names:
        torch.testing.assert_close(loaded.layers[name].mean, cal.layers[name].mean)
        torch.testing.assert_close(loaded.layers[name].var, cal.layers[name].var)
        torch.testing.assert_close(loaded.layers[name].holdout, cal.layers[name].holdout)
        assert cal.layers[name].principal is not None
        torch.testing.assert_close(loaded.layers[name].principal, cal.layers[name].principal)
    header = read_header(path)
    assert header["metadata"]["model_class"] == "Toy" and header["layers"][0]["n_features"] == 5
    assert b"pickle" not in path.read_bytes()[:200]


def test_foreign_files_are_rejected_with_a_reason(tmp_path):
    plain = tmp_path / "plain.safetensors"
    save_file({"x": torch.zeros(2)}, str(plain))
    with pytest.raises(CalibrationMismatchError, match="not a DeepDrift calibration"):
        Calibration.load(plain)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a tensor file")
    with pytest.raises(CalibrationMismatchError, match="not a safetensors file"):
        Calibration.load(junk)
    future = tmp_path / "future.safetensors"
    save_file(
        {"x": torch.zeros(2)},
        str(future),
        metadata={"deepdrift": json.dumps({"format": "deepdrift.calibration", "format_version": 99})},
    )
    with pytest.raises(CalibrationMismatchError, match="Upgrade"):
        Calibration.load(future)


def test_loading_into_a_model_with_other_taps_says_what_differs(tmp_path, small_cnn, calib_batches):
    monitor = DeepDriftMonitor(small_cnn).calibrate(calib_batches[:10])
    path = monitor.save_calibration(tmp_path / "cnn.safetensors")
    other = DeepDriftMonitor(small_cnn, layers=["2", "9"])
    with pytest.raises(CalibrationMismatchError, match=r"taps in the calibration but not watched here: \['6'\]"):
        other.load_calibration(path)


def test_feature_size_mismatch_is_reported_at_first_step(tmp_path, small_cnn, calib_batches):
    from torch import nn

    monitor = DeepDriftMonitor(small_cnn).calibrate(calib_batches[:10])
    path = monitor.save_calibration(tmp_path / "cnn.safetensors")
    wider = nn.Sequential(*list(small_cnn.children()))
    wider[7] = nn.Conv2d(16, 24, 3, padding=1)
    wider[11] = nn.Linear(24, 10)
    with pytest.warns(DeepDriftWarning, match="different model"):  # the fingerprint refuses it unless asked
        monitor2 = DeepDriftMonitor(wider.eval()).load_calibration(path, allow_transfer=True)
    with pytest.raises(CalibrationMismatchError, match="'9' has 72 features here but 48"):
        monitor2.step(calib_batches[0])


def test_loading_a_calibration_made_with_other_pooling_says_how_to_fix(tmp_path, small_cnn, calib_batches):
    monitor = DeepDriftMonitor(small_cnn).calibrate(calib_batches[:6])
    path = monitor.save_calibration(tmp_path / "cnn.safetensors")
    mean_only = DeepDriftMonitor(small_cnn, layers=monitor.layer_names, pooling=PoolingConfig(summary="mean"))
    with pytest.raises(CalibrationMismatchError, match="summary': 'mean_std_max'"):
        mean_only.load_calibration(path)
    assert DeepDriftMonitor(small_cnn).load_calibration(path).scorer.is_calibrated
