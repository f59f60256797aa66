"""The detector registry: every method fits, scores batches (higher = more shifted) and fails loudly when misused."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from experiments.baselines import (
    DETECTORS,
    DeepDriftDetector,
    NotFittedError,
    PerSampleDetector,
    combine_drift,
    make_detector,
    make_detectors,
)
from experiments.baselines.drift_tests import KernelMMD
from experiments.features import FeatureSet, extract_features


def tiny_net() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 12),
        nn.ReLU(),
        nn.Linear(12, 3),
    )
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
    calib = extract_features(net, x[:500], taps, labels=labels[:500])
    clean = extract_features(net, x[500:], taps, labels=labels[500:])
    shifted = extract_features(net, 3.0 * x[500:] + 2.0, taps, labels=labels[500:])
    return net, calib, clean, shifted


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


def test_deepdrift_rules_share_one_scorer_fitted_and_scored_once(pools) -> None:
    net, calib, clean, _ = pools
    detectors = make_detectors(["msp", "deepdrift_max", "deepdrift_stouffer"], net, {"deepdrift": {"chunk_size": 64}})
    by_max, by_sum = detectors["deepdrift_max"], detectors["deepdrift_stouffer"]
    assert by_max.scorer is by_sum.scorer and by_sum.name == "DeepDrift (stouffer)"
    by_max.fit(calib)
    calibration = by_max.scorer.calibration
    by_sum.fit(calib)  # the sibling's fit on the same features is a no-op
    assert by_sum.scorer.calibration is calibration
    batches = np.arange(32).reshape(4, 8)
    drift = by_max.layer_drifts(clean, batches)
    assert by_sum.layer_drifts(clean, batches) is drift  # scored once for both rules
    np.testing.assert_allclose(by_sum.batch_scores(clean, batches), combine_drift(drift, "stouffer"))
    alone = DeepDriftDetector(combine="stouffer", chunk_size=64).fit(calib)
    np.testing.assert_allclose(alone.batch_scores(clean, batches), by_sum.batch_scores(clean, batches))


def test_registry_options_are_keyed_by_option_source() -> None:
    with pytest.raises(ValueError, match="not requested"):
        make_detectors(["msp"], None, {"deepdrift": {"chunk_size": 8}})
    assert make_detectors(["deepdrift_stouffer"], None, {"deepdrift": {"chunk_size": 8}})
