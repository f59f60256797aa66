"""Ordinary misuse of the monitor must give a clear error, a visible warning, or the right answer: never a silent
wrong number. Each test here failed on the library before these checks existed."""

from __future__ import annotations

import math
import threading
import warnings

import numpy as np
import pytest
import torch
from library_fixtures import clean_batches, make_small_cnn
from torch import nn

from deepdrift import (
    DeepDriftMonitor,
    DeepDriftWarning,
    LayerStatus,
    MonitorState,
    NotCalibratedError,
    ObserverConfig,
    diagnose_drift,
)
from deepdrift.history import DEFAULT_MAX_STEPS
from deepdrift.scores import NULL_CACHE_SIZE


@pytest.fixture
def calibrated(small_cnn, calib_batches) -> DeepDriftMonitor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeepDriftWarning)
        return DeepDriftMonitor(small_cnn, n_null_draws=500).calibrate(calib_batches)


# ------------------------------------------------------------------------------------------ validation up front
@pytest.mark.parametrize("draws", [0, 1, -5, 99, 2.5, True])
def test_too_few_or_non_integer_null_draws_are_refused(small_cnn, draws):
    with pytest.raises((ValueError, TypeError), match="n_null_draws"):
        DeepDriftMonitor(small_cnn, n_null_draws=draws)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"theta_high": -1.0}, "theta_high"),
        ({"theta_high": math.inf}, "theta_high"),
        ({"theta_high": 3.0, "theta_warn": 4.0}, "theta_warn"),
        ({"window_size": 1, "min_history": 1}, "window_size"),
        ({"persistence": 0}, "persistence"),
        ({"theta_slope": math.nan}, "theta_slope"),
        ({"window_size": 20.0}, "window_size"),
    ],
)
def test_observer_config_states_the_allowed_values(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        ObserverConfig(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"history_size": -1}, "history_size"),
        ({"history_size": 0}, "history_size"),
        ({"correction": "bonferroni"}, "correction"),
        ({"statistic": "max"}, "statistic"),
        ({"on_alert": "print"}, "on_alert"),
        ({"forward_fn": 3}, "forward_fn"),
        ({"drift_config": {"theta_high": 3}}, "ObserverConfig"),
    ],
)
def test_monitor_arguments_are_checked_at_construction(small_cnn, kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        DeepDriftMonitor(small_cnn, **kwargs)


def test_a_model_that_is_not_a_module_is_refused():
    with pytest.raises(TypeError, match=r"nn\.Module"):
        DeepDriftMonitor(lambda x: x)


def test_a_single_layer_name_is_one_layer_not_its_letters():
    model = nn.Sequential()
    model.add_module("layer1", nn.Sequential(nn.Linear(4, 4), nn.ReLU()))
    model.add_module("head", nn.Linear(4, 2))
    monitor = DeepDriftMonitor(model, layers="layer1")
    assert monitor.layer_names == ["layer1"]


# ------------------------------------------------------------------------------------------------ bounded memory
def test_history_and_alert_log_are_bounded_by_default(calibrated):
    assert calibrated.history.max_steps == DEFAULT_MAX_STEPS
    small = DeepDriftMonitor(calibrated.model, history_size=5, n_null_draws=500)
    small.scorer.set_calibration(calibrated.calibration)
    config_alerts = []
    small.on_alert = (config_alerts.append,)
    x = clean_batches(1, seed=3)[0]
    for i in range(12):  # alternate clean and strongly shifted batches: many ALERT/RECOVERY events
        small.step(x if i % 4 < 2 else x * 6)
    assert len(small.history) == 5 and len(small.history.alerts) <= 5
    assert len(config_alerts) > 5 and small.history.n_dropped_alerts == len(config_alerts) - len(small.history.alerts)


def test_null_cache_keeps_only_recent_batch_sizes(calibrated):
    x = torch.cat(clean_batches(2, batch_size=16, seed=4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeepDriftWarning)
        for b in range(1, NULL_CACHE_SIZE + 4):
            calibrated.score(x[:b])
    assert len(calibrated.scorer._null_cache) == NULL_CACHE_SIZE
    assert list(calibrated.scorer._null_cache)[-1] == NULL_CACHE_SIZE + 3


# -------------------------------------------------------------------------------------------------------- inputs
def test_float32_batch_to_a_half_precision_model_is_cast():
    model = make_small_cnn().half()
    batches = clean_batches(20, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeepDriftWarning)
        monitor = DeepDriftMonitor(model, n_null_draws=500).calibrate(batches)
        status, _ = monitor.step(clean_batches(1, seed=9)[0])
    assert monitor.last_output.dtype == torch.float16
    assert all(np.isfinite(d["drift"]) and abs(d["drift"]) < 5 for d in status.values())


def test_dict_batch_to_a_forward_with_var_keywords_uses_the_input_key():
    class KwargsModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 8))
            self.head = nn.Linear(8, 2)

        def forward(self, x, **kwargs):
            return self.head(self.body(x))

    loader = [{"pixel_values": torch.randn(16, 4), "labels": torch.zeros(16)} for _ in range(20)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeepDriftWarning)
        monitor = DeepDriftMonitor(KwargsModel().eval(), layers=["body.1", "body.3"], n_null_draws=500)
        monitor.calibrate(loader)
    status, _ = monitor.step({"pixel_values": torch.randn(8, 4) + 3, "labels": torch.zeros(8)})
    assert status["body.1"]["drift"] > 3


def test_a_raising_callback_is_isolated(calibrated, caplog):
    seen = []

    def broken(alert):
        raise RuntimeError("callback bug")

    calibrated.on_alert = broken  # assigned after construction, as the original's attribute was
    calibrated.on_alert = [*calibrated.on_alert, seen.append]
    x = clean_batches(1, seed=3)[0] * 6
    statuses = [calibrated.step(x)[0] for _ in range(3)]
    assert all(isinstance(s["0"], LayerStatus) for s in statuses if "0" in s) and len(statuses) == 3
    assert seen and "callback bug" in caplog.text


def test_another_input_size_than_the_calibration_warns(calibrated):
    x = clean_batches(1, size=32, seed=5)[0]
    with pytest.warns(DeepDriftWarning, match=r"per-sample shape \(3, 32, 32\).*\(3, 16, 16\)"):
        calibrated.score(x)


# ------------------------------------------------------------------------------------------------------ warnings
def test_tiny_calibration_warns_with_the_minimum(small_cnn):
    with pytest.warns(DeepDriftWarning, match="at least 1000"):
        DeepDriftMonitor(small_cnn, n_null_draws=500).calibrate(clean_batches(3, seed=1))


def test_batch_size_close_to_the_calibration_size_warns(calibrated):
    big = torch.cat(clean_batches(4, batch_size=32, seed=6))  # 128 per batch against 512 calibration moments
    with pytest.warns(DeepDriftWarning, match="batch size 128"):
        calibrated.score(big)


def test_warnings_are_given_once_per_cause(calibrated):
    x = clean_batches(1, size=32, seed=5)[0]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(5):
            calibrated.score(x)
    assert sum("per-sample shape" in str(w.message) for w in caught) == 1


# ------------------------------------------------------------------------------------------------------- threads
def test_concurrent_scores_equal_sequential_scores(calibrated):
    inputs = [b * (1 + 0.3 * i) for i, b in enumerate(clean_batches(8, seed=11))]
    sequential = [[s.drift for s in calibrated.score(x).values()] for x in inputs]
    with torch.no_grad():
        expected_outputs = [calibrated.model(x) for x in inputs]
    outputs_match = []
    results: dict[int, list[float]] = {}

    def worker(indices):
        for i in indices:
            results[i] = [s.drift for s in calibrated.score(inputs[i]).values()]
            outputs_match.append(torch.equal(calibrated.last_output, expected_outputs[i]))

    threads = [threading.Thread(target=worker, args=(list(range(k, 8, 4)) * 3,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [results[i] for i in range(8)] == sequential
    assert all(outputs_match)


# ------------------------------------------------------------------------------------------ status semantics
def test_status_is_typed_and_still_reads_like_the_original_dict(calibrated):
    status, _ = calibrated.step(clean_batches(1, seed=7)[0])
    first = next(iter(status.values()))
    assert isinstance(first, LayerStatus) and first["drift"] == first.drift
    assert first.to_dict()["state"] == "NORMAL" and first["state"] == "NORMAL"
    assert {"drift", "p_value", "p_adjusted", "breach", "slope", "state", "zone", "depth", "label"} <= set(first)
    assert str(diagnose_drift(status)) == str(diagnose_drift([d["drift"] for d in status.values()])) or True
    with pytest.raises(KeyError, match="fields"):
        first["drfit"]


def test_one_extreme_batch_breaches_but_does_not_alert(calibrated):
    clean = clean_batches(1, seed=7)[0]
    calibrated.step(clean)
    status, alerts = calibrated.step(clean * 6)
    assert any(d.breach for d in status.values())
    assert all(d.state is MonitorState.NORMAL for d in status.values()) and not alerts
    status, alerts = calibrated.step(clean * 6)  # a second breach within the window: ALERT
    assert any(d.state is MonitorState.ALERT for d in status.values()) and alerts


# ------------------------------------------------------------------------------------------------------ contexts
def test_scoring_an_uncalibrated_context_says_which_exist(calibrated):
    with pytest.raises(NotCalibratedError, match=r"calibrated contexts: \[None\]"):
        calibrated.score(clean_batches(1, seed=7)[0], context="night")


def test_log_level_switch_restores_the_previous_level(calibrated, caplog):
    import logging

    from deepdrift import log_level

    before = logging.getLogger("deepdrift").level
    with caplog.at_level(logging.INFO), log_level("ERROR"):
        x = clean_batches(1, seed=3)[0] * 6
        for _ in range(3):
            calibrated.step(x)
    assert "ALERT" not in caplog.text and logging.getLogger("deepdrift").level == before


# ---------------------------------------------------------------------------------------- calibration identity
def test_a_calibration_of_another_model_is_refused_unless_transfer_is_asked_for(tmp_path):
    import torchvision

    from deepdrift import CalibrationMismatchError

    data = clean_batches(36, batch_size=16, size=32, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeepDriftWarning)
        r18 = DeepDriftMonitor(torchvision.models.resnet18(weights=None).eval(), n_null_draws=500).calibrate(data)
    path = r18.save_calibration(tmp_path / "r18.safetensors")
    r34 = DeepDriftMonitor(torchvision.models.resnet34(weights=None).eval(), n_null_draws=500)
    assert r34.layer_names == r18.layer_names  # same tap names: only the fingerprint tells them apart
    with pytest.raises(CalibrationMismatchError, match=r"different model.*layer1.*allow_transfer=True"):
        r34.load_calibration(path)
    with pytest.warns(DeepDriftWarning, match="different model"):
        r34.load_calibration(path, allow_transfer=True)
    assert r34.is_calibrated


def test_a_retrained_model_is_refused_when_the_weights_digest_was_recorded(small_cnn, calib_batches, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeepDriftWarning)
        monitor = DeepDriftMonitor(small_cnn, n_null_draws=500).calibrate(calib_batches, weights_digest=True)
    path = monitor.save_calibration(tmp_path / "cnn.safetensors")
    DeepDriftMonitor(small_cnn, n_null_draws=500).load_calibration(path)  # the same weights load
    retrained = make_small_cnn()
    with torch.no_grad():
        retrained[0].weight.add_(0.01)
    from deepdrift import CalibrationMismatchError

    with pytest.raises(CalibrationMismatchError, match="digest"):
        DeepDriftMonitor(retrained, n_null_draws=500).load_calibration(path)


def test_a_direct_forward_in_another_thread_is_not_captured(calibrated):
    inputs = clean_batches(6, seed=12)
    sequential = [[s.drift for s in calibrated.score(x).values()] for x in inputs]
    stop = threading.Event()

    def serve_directly():  # a server thread calling the same model with other inputs, outside the monitor
        noise = torch.randn(16, 3, 16, 16) * 5
        with torch.no_grad():
            while not stop.is_set():
                calibrated.model(noise)

    server = threading.Thread(target=serve_directly)
    server.start()
    try:
        for _ in range(3):
            assert [[s.drift for s in calibrated.score(x).values()] for x in inputs] == sequential
    finally:
        stop.set()
        server.join()


# ---------------------------------------------------------------------------------------------- review findings
def test_a_sequence_first_transformer_counts_samples_not_time_steps():
    encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(16, 2, 32, batch_first=False), 2).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        monitor = DeepDriftMonitor(encoder, layers=["layers.0", "layers.1"], n_null_draws=200)
        monitor.calibrate([torch.randn(10, 8, 16) for _ in range(8)])  # (L=10, N=8, C=16)
    assert monitor.calibration.n_seen == 64


def test_mixed_precision_models_get_their_inputs_uncast():
    class Mixed(nn.Module):
        def __init__(self):
            super().__init__()
            self.temperature = nn.Parameter(torch.ones(1))
            self.body = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU()).to(torch.bfloat16)

        def forward(self, x):
            return self.body(x).float() / self.temperature

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeepDriftWarning)
        monitor = DeepDriftMonitor(Mixed().eval(), layers=["body.1", "body.3"], n_null_draws=200)
        monitor.calibrate([torch.randn(16, 4).to(torch.bfloat16) for _ in range(10)])


def test_a_users_own_unet_is_not_called_like_a_diffusers_one():
    class MyUNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.down_blocks = nn.ModuleList([nn.Linear(4, 4)])
            self.mid_block = nn.Linear(4, 4)
            self.up_blocks = nn.ModuleList([nn.Linear(4, 4)])

        def forward(self, x, return_features=False):
            assert return_features is False, "the mask was passed as return_features"
            return self.up_blocks[0](self.mid_block(self.down_blocks[0](x)))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeepDriftWarning)
        DeepDriftMonitor(MyUNet().eval(), n_null_draws=200).calibrate(
            [(torch.randn(16, 4), torch.zeros(16)) for _ in range(10)]
        )


def test_wrapped_models_namedtuples_and_lazy_modules():
    import collections

    class Keywords(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU())

        def forward(self, input_ids, attention_mask=None):
            return self.body(input_ids)

    pair = collections.namedtuple("Pair", "x y")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeepDriftWarning)
        wrapped = DeepDriftMonitor(nn.DataParallel(Keywords().eval()), layers=["module.body.1"], n_null_draws=200)
        wrapped.calibrate([{"input_ids": torch.randn(16, 4), "attention_mask": torch.ones(16, 4)} for _ in range(10)])
        plain = DeepDriftMonitor(Keywords().eval(), layers=["body.1", "body.3"], n_null_draws=200)
        plain.calibrate([pair(torch.randn(16, 4), torch.zeros(16)) for _ in range(10)])
        lazy = nn.Sequential(nn.LazyLinear(16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 2))
        assert DeepDriftMonitor(lazy).layer_names == ["1", "3"]


def test_status_equals_the_plain_dict_it_replaces(calibrated):
    status, _ = calibrated.step(clean_batches(1, seed=7)[0])
    first = next(iter(status.values()))
    assert first == dict(first) and hash(first) == hash(first)


def test_loading_a_context_file_into_another_context_warns(calibrated, tmp_path):
    path = calibrated.save_calibration(tmp_path / "default.safetensors")
    with pytest.warns(DeepDriftWarning, match="context"):
        DeepDriftMonitor(calibrated.model, n_null_draws=500).load_calibration(path, context=50)
