"""The detector registry: every method fits, scores batches (higher = more shifted) and fails loudly when misused."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from experiments.baselines import (
    DETECTORS,
    DeepDriftDetector,
    FeatureSet,
    NotFittedError,
    PerSampleDetector,
    classifier_layer,
    combine_drift,
    extract_features,
    make_detector,
    make_detectors,
)
from experiments.baselines.drift_tests import KernelMMD
from experiments.models import build_model


def tiny_net() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(8, 16, 3, padding=1),
                        nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 12),
                        nn.ReLU(), nn.Linear(12, 3))
    return net.eval()


@pytest.fixture(scope="module")
def pools() -> tuple[nn.Module, FeatureSet, FeatureSet, FeatureSet]:
    """A tiny net; calibration, clean and strongly shifted (brightened + noisy) feature pools."""
    from deepdrift import LayerTaps

    net = tiny_net()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(700, 1, 8, 8, generator=g)
    labels = torch.arange(700) % 3
    taps = LayerTaps(net, layers=["1", "3", "7"])
    calib = extract_features(net, x[:500], labels[:500], taps)
    clean = extract_features(net, x[500:], labels[500:], taps)
    shifted = extract_features(net, 3.0 * x[500:] + 2.0, labels[500:], taps)
    return net, calib, clean, shifted


def test_extract_features_keeps_logits_penultimate_and_taps(pools) -> None:
    net, calib, _, _ = pools
    assert calib.logits.shape == (500, 3) and calib.penultimate.shape == (500, 12)
    assert list(calib.taps) == ["1", "3", "7"] and calib.taps["3"].shape == (500, 48)  # 16 channels: mean, std, max
    x = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(net[-1](net[:-1](x)), extract_features(net, x).logits, atol=1e-6)
    assert not any(m._forward_pre_hooks or m._forward_hooks for m in net.modules())  # hooks removed


def test_subset_picks_rows_of_every_tensor(pools) -> None:
    _, calib, _, _ = pools
    part = calib.subset([4, 1])
    assert len(part) == 2 and torch.equal(part.penultimate[1], calib.penultimate[1])
    assert torch.equal(part.taps["7"][0], calib.taps["7"][4]) and part.labels.tolist() == [1, 1]


def test_classifier_layer_of_timm_and_plain_models() -> None:
    assert classifier_layer(build_model("small_cnn")).out_features == 10
    vit = build_model("vit_tiny")
    assert classifier_layer(vit) is vit.get_classifier()
    with pytest.raises(ValueError, match="linear head"):
        classifier_layer(nn.Sequential(nn.Conv2d(1, 2, 3)))


FEATURE_BASED = [n for n in DETECTORS if n not in ("msp", "energy")]


@pytest.mark.parametrize("name", FEATURE_BASED)
def test_feature_detectors_score_a_strong_shift_higher(pools, name: str) -> None:
    net, calib, clean, shifted = pools
    options = {"k": 10} if name == "knn" else {"reference_size": 200} if name in ("mmd", "ks") else {}
    detector = make_detector(name, net, **options).fit(calib)
    rng = np.random.default_rng(0)
    batches = np.stack([rng.choice(len(clean), 16, replace=False) for _ in range(6)])
    clean_scores = detector.batch_scores(clean, batches)
    shifted_scores = detector.batch_scores(shifted, batches)
    assert np.isfinite(clean_scores).all() and np.isfinite(shifted_scores).all()
    assert shifted_scores.mean() > clean_scores.mean(), name  # the convention all AUROCs rely on


@pytest.mark.parametrize("name", ["msp", "energy"])
def test_logit_detectors_score_unconfident_samples_higher(name: str) -> None:
    """An untrained net gives no reason for MSP/energy to rise under shift, so test their sign on known logits."""
    logits = torch.tensor([[8.0, 0.0, 0.0], [0.1, 0.0, 0.0]])
    features = FeatureSet(logits=logits, penultimate=torch.zeros(2, 4))
    confident, unsure = make_detector(name).fit(features).sample_scores(features)
    assert unsure > confident


@pytest.mark.parametrize("name", ["msp", "mahalanobis", "knn"])
def test_per_sample_fast_path_equals_batch_score(pools, name: str) -> None:
    net, calib, clean, _ = pools
    detector = make_detector(name, net, **({"k": 10} if name == "knn" else {})).fit(calib)
    assert isinstance(detector, PerSampleDetector)
    batches = np.array([[0, 5, 9], [3, 4, 7]])
    slow = [detector.batch_score(clean.subset(b)) for b in batches]
    np.testing.assert_allclose(detector.batch_scores(clean, batches), slow, rtol=1e-6)


def test_mmd_is_undefined_for_single_samples(pools) -> None:
    net, calib, clean, _ = pools
    mmd = KernelMMD(net, reference_size=100).fit(calib)
    assert np.isnan(mmd.batch_scores(clean, np.array([[0], [1]]))).all()


def test_unfitted_detectors_raise(pools) -> None:
    net, _, clean, _ = pools
    for name in ("mahalanobis", "knn", "mmd", "deepdrift_max"):
        with pytest.raises(NotFittedError):
            make_detector(name, net).batch_score(clean.subset([0, 1]))


def test_label_free_calibration_is_refused_for_class_conditional_methods(pools) -> None:
    net, calib, _, _ = pools
    unlabelled = FeatureSet(calib.logits, calib.penultimate, calib.taps, labels=None)
    with pytest.raises(ValueError, match="labels"):
        make_detector("mahalanobis", net).fit(unlabelled)


def test_registry_names_and_errors() -> None:
    with pytest.raises(ValueError, match="Did you mean mahalanobis"):
        make_detector("mahalanobi")
    with pytest.raises(ValueError, match="not requested"):
        make_detectors(["msp"], None, {"knn": {"k": 3}})
    assert set(make_detectors(["msp", "energy"])) == {"msp", "energy"}


def test_combine_rules_use_only_the_drift_values() -> None:
    drift = np.array([[0.0, 3.0, -1.0], [1.0, 1.0, 1.0]])
    np.testing.assert_allclose(combine_drift(drift, "max"), [3.0, 1.0])
    np.testing.assert_allclose(combine_drift(drift, "stouffer"), [2.0 / np.sqrt(3), 3.0 / np.sqrt(3)])
    with pytest.raises(ValueError, match="unknown combine rule"):
        combine_drift(drift, "best_tap")


def test_deepdrift_detector_is_calm_on_clean_and_loud_on_shift(pools) -> None:
    _, calib, clean, shifted = pools
    detector = DeepDriftDetector(combine="max").fit(calib)
    assert detector.tap_names == ["1", "3", "7"]
    idx = np.arange(32)
    assert detector.layer_drift(clean.subset(idx)).max() < 4.0
    assert detector.layer_drift(shifted.subset(idx)).min() > 5.0
