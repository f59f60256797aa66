"""The corruption benchmark's ``deepdrift_fast`` detector scores exactly what ``preset("fast")`` monitors."""

from __future__ import annotations

import numpy as np
import torch
from library_fixtures import clean_batches
from torch import nn

from deepdrift import DeepDriftMonitor, LayerTaps, preset
from experiments.baselines import make_detectors
from experiments.features import extract_features


def _classifier() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 4),
    ).eval()


def test_channel_means_are_the_fast_pooling_bit_for_bit():
    model = _classifier()
    x = torch.cat(clean_batches(4, batch_size=16, seed=1))
    taps = LayerTaps(model, layers=["1", "3", "5"])
    features = extract_features(model, x, taps)
    assert features.tap_means == {"1": 8, "3": 8, "5": 8}
    fast_taps = LayerTaps(model, layers=["1", "3", "5"], pooling=preset("fast")["pooling"])
    with torch.no_grad():
        _, fast = fast_taps.run(lambda: model(x))
    means = features.channel_means()
    for name in fast:
        assert torch.equal(means.taps[name], fast[name])
    assert torch.equal(features.subset([0, 2]).channel_means().taps["1"], fast["1"][[0, 2]])


def test_fast_detector_equals_a_fast_monitor():
    model = _classifier()
    calib = torch.cat(clean_batches(40, batch_size=16, seed=2))
    layers = ["1", "3"]
    taps = LayerTaps(model, layers=layers)
    calib_features = extract_features(model, calib, taps, batch_size=128)
    detectors = make_detectors(["deepdrift_max", "deepdrift_fast"], model, {"deepdrift": {"chunk_size": 128}})
    fast = detectors["deepdrift_fast"].fit(calib_features)
    assert fast.name == "DeepDrift fast (max)"
    assert fast.scorer is not detectors["deepdrift_max"].scorer and fast.scorer.statistic == "mean_shift"
    monitor = DeepDriftMonitor(model, layers=layers, **preset("fast")).calibrate(calib.split(128), progress=False)
    shifted = clean_batches(1, batch_size=16, seed=3)[0] + 0.7
    batch = extract_features(model, shifted, taps)
    scores = monitor.score(shifted)
    np.testing.assert_allclose(fast.layer_drift(batch), [scores[n].drift for n in layers], rtol=1e-9)
    assert fast.batch_score(batch) == max(scores[n].drift for n in layers)
