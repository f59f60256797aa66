"""Corruption benchmark: detection metrics, batch sampling, config checks, summaries and the measurement loop."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from experiments.corruption import (
    CorruptionConfig,
    accuracy_vs_drift,
    build_corrupted_set,
    corruption_report,
    detection_metrics,
    detection_results,
    draw_batches,
    drift_accuracy_correlation,
    measure_model,
    severity_table,
)
from experiments.corruption.config import FootingConfig
from experiments.corruption.images import heldout_subset, load_entry, load_manifest
from experiments.corruption.run import REPORT_OUTPUTS
from experiments.data import MEAN, STD, DataSpec, make_splits, to_model_input
from experiments.data.tensors import pad_images
from experiments.models import build_model


def test_detection_metrics_perfect_reversed_and_chance() -> None:
    clean, shifted = np.arange(10.0), np.arange(10.0) + 100
    assert detection_metrics(clean, shifted) == (1.0, 1.0)
    auroc, tpr = detection_metrics(shifted, clean)  # a method that scores shift *lower* is reported as such
    assert auroc == 0.0 and tpr == 0.0
    assert detection_metrics(np.zeros(5), np.zeros(5))[0] == 0.5


def test_tpr_at_5_percent_fpr_uses_the_clean_tail() -> None:
    clean = np.arange(100.0)  # the threshold for FPR <= 5% is above 94 (five clean scores 95..99 exceed it at most)
    shifted = np.array([94.5, 96.5, 200.0, 300.0])
    auroc, tpr = detection_metrics(clean, shifted)
    assert tpr == pytest.approx(1.0)  # all four beat 94; FPR at threshold 94.5 is 5/100
    assert auroc == pytest.approx((95 + 97 + 100 + 100) / 400)
    _, tpr_strict = detection_metrics(clean, shifted, fpr=0.01)
    assert tpr_strict == pytest.approx(0.5)


def test_detection_metrics_report_undefined_scores_as_missing() -> None:
    auroc, tpr = detection_metrics(np.array([np.nan, 1.0]), np.array([2.0, 3.0]))
    assert np.isnan(auroc) and np.isnan(tpr)
    with pytest.raises(ValueError, match="at least one"):
        detection_metrics(np.array([]), np.array([1.0]))


def test_draw_batches_no_repeats_within_a_batch() -> None:
    batches = draw_batches(20, 16, 30, np.random.default_rng(0))
    assert batches.shape == (30, 16) and batches.max() < 20
    assert all(len(set(row)) == 16 for row in batches)
    with pytest.raises(ValueError, match="exceeds the pool"):
        draw_batches(8, 16, 2, np.random.default_rng(0))


def test_config_from_yaml_mapping_and_validation() -> None:
    cfg = CorruptionConfig.from_config({"models": ["cnn"], "corruptions": "noise", "batch_sizes": [1, 16]})
    assert cfg.corruptions == ("gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise")
    assert CorruptionConfig.from_config({"models": ["cnn"]}).corruptions.__len__() == 19
    with pytest.raises(ValueError, match="profile_batch_size"):
        CorruptionConfig(models=("cnn",), batch_sizes=(1, 64), profile_batch_size=16)
    with pytest.raises(ValueError, match="exceeds n_images"):
        CorruptionConfig(models=("cnn",), n_images=32)


def _long_scores() -> pd.DataFrame:
    rows = []
    rng = np.random.default_rng(0)
    for batch_size in (1, 16):
        for b in range(20):
            rows.append(("m", "clean", "clean", 0, batch_size, b, "good", rng.normal()))
            rows.append(("m", "clean", "clean", 0, batch_size, b, "bad", rng.normal()))
        for severity in (1, 3):
            for b in range(10):
                rows.append(("m", "fog", "weather", severity, batch_size, b, "good", 10 + rng.normal()))
                rows.append(("m", "fog", "weather", severity, batch_size, b, "bad", -10 + rng.normal()))
    return pd.DataFrame(
        rows, columns=["model", "corruption", "family", "severity", "batch_size", "batch", "method", "score"]
    )


def test_detection_results_and_severity_table_keep_the_measured_direction() -> None:
    results = detection_results(_long_scores())
    assert len(results) == 2 * 2 * 2  # method x batch size x severity
    assert (results.loc[results["method"] == "good", "auroc"] == 1.0).all()
    assert (results.loc[results["method"] == "bad", "auroc"] == 0.0).all()  # never flipped
    table = severity_table(results)
    assert list(table.columns) == ["model", "method", "batch_size", "severity 1", "severity 3", "mean", "status"]
    assert table.loc[table["method"] == "bad", "mean"].eq(0.0).all()


def test_severity_table_keeps_undefined_cells() -> None:
    results = detection_results(_long_scores())
    results.loc[(results["method"] == "good") & (results["batch_size"] == 1), "auroc"] = np.nan
    table = severity_table(results)
    row = table[(table["method"] == "good") & (table["batch_size"] == 1)]
    assert len(row) == 1 and row["mean"].isna().all()


def test_accuracy_vs_drift_and_correlation() -> None:
    profile = pd.DataFrame(
        {
            "model": "m",
            "tap": ["a", "b"] * 4,
            "label": ["UV", "IR"] * 4,
            "depth": [0.0, 1.0] * 4,
            "zone": ["UV", "IR"] * 4,
            "corruption": ["clean"] * 2 + ["fog"] * 2 + ["fog"] * 2 + ["snow"] * 2,
            "family": ["clean"] * 2 + ["weather"] * 6,
            "severity": [0, 0, 1, 1, 3, 3, 1, 1],
            "drift": [0.0, 0.0, 2.0, 4.0, 10.0, 20.0, 1.0, 1.0],
        }
    )
    accuracy = pd.DataFrame(
        {
            "model": "m",
            "corruption": ["clean", "fog", "fog", "snow"],
            "family": ["clean", "weather", "weather", "weather"],
            "severity": [0, 1, 3, 1],
            "accuracy": [0.9, 0.8, 0.5, 0.85],
            "n_images": 10,
        }
    )
    cells = accuracy_vs_drift(profile, accuracy).sort_values(["corruption", "severity"])
    np.testing.assert_allclose(cells["accuracy_drop"], [10.0, 40.0, 5.0])
    np.testing.assert_allclose(cells["drift_all"], [3.0, 15.0, 1.0])
    np.testing.assert_allclose(cells["drift_IR"], [4.0, 20.0, 1.0])
    corr = drift_accuracy_correlation(cells).set_index("drift of")
    assert corr.loc["all", "spearman_rho"] == pytest.approx(1.0) and corr.loc["all", "cells"] == 3


def test_corrupted_heldout_set_is_cached_and_disjoint_from_calibration(tmp_path: Path) -> None:
    data = DataSpec(img_size=32, n_train=100, n_calib=64, n_heldout=64, split_seed=0)
    study = CorruptionConfig(
        models=("cnn",),
        corruptions=("contrast", "gaussian_noise"),
        severities=(2,),
        n_images=6,
        batch_sizes=(1, 2),
        profile_batch_size=2,
        mri_severity=2,
    )
    manifest = build_corrupted_set(data, study, tmp_path / "cache", tmp_path / "manifest.json")
    splits = make_splits(0, 64, 64, n_train=100)
    indices = np.asarray(manifest["indices"])
    assert len(indices) == 6 and np.isin(indices, splits.heldout).all() and not np.isin(indices, splits.calib).any()
    assert [(e["corruption"], e["severity"]) for e in manifest["entries"]] == [("contrast", 2), ("gaussian_noise", 2)]
    first = load_entry(load_manifest(tmp_path / "manifest.json")["entries"][1])
    assert first.shape == (6, 32, 32) and first.dtype == np.uint8
    again = build_corrupted_set(data, study, tmp_path / "cache", tmp_path / "manifest2.json")
    assert again["entries"] == manifest["entries"]  # same cache files, no recomputation
    assert json.loads((tmp_path / "manifest.json").read_text())["seed"] == 0
    Path(manifest["entries"][0]["file"]).unlink()
    with pytest.raises(FileNotFoundError, match="rerun the corruption_images rule"):
        load_manifest(tmp_path / "manifest.json")


def test_heldout_subset_is_seeded() -> None:
    data = DataSpec(n_calib=100, n_heldout=200)
    assert np.array_equal(heldout_subset(data, 10, 1), heldout_subset(data, 10, 1))
    assert not np.array_equal(heldout_subset(data, 10, 1), heldout_subset(data, 10, 2))


@pytest.fixture(scope="module")
def tiny_measurement(fmnist_test) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, CorruptionConfig]:
    """Scores of an untrained small CNN: 16 real images, clean and under heavy pixel noise / darkening."""
    images, labels = fmnist_test
    calib = (pad_images(images[:128], 32), labels[:128])
    clean = (pad_images(images[200:216], 32), labels[200:216])
    noisy = np.clip(clean[0].astype(int) + np.random.default_rng(0).integers(-120, 120, clean[0].shape), 0, 255)
    dark = (clean[0] // 4).astype(np.uint8)
    corrupted = [
        ({"corruption": "gaussian_noise", "family": "noise", "severity": 5}, noisy.astype(np.uint8)),
        ({"corruption": "brightness", "family": "weather", "severity": 5}, dark),
    ]
    cfg = CorruptionConfig(
        models=("cnn",),
        corruptions=("gaussian_noise", "brightness"),
        severities=(5,),
        n_images=16,
        batch_sizes=(1, 8),
        n_batches=4,
        n_clean_batches=6,
        profile_batch_size=8,
        mri_severity=5,
        methods=("deepdrift_max", "msp", "mmd"),
        footing=FootingConfig(null_draws=200, knn_k=5),
    )
    torch.manual_seed(0)
    model = build_model("small_cnn").eval()
    scores, accuracy, taps = measure_model(
        model, lambda x: to_model_input(x, size=32, mean=MEAN, std=STD), calib, clean, corrupted, cfg
    )
    return scores, accuracy, taps, cfg


def test_measure_model_on_a_tiny_untrained_cnn(tiny_measurement) -> None:
    scores, accuracy, taps, _ = tiny_measurement
    assert len(scores) == (6 + 4 + 4) * 2 and {"deepdrift_max", "msp", "mmd", "tap:2", "tap:8"} <= set(scores.columns)
    assert scores.loc[scores["batch_size"] == 1, "mmd"].isna().all()
    assert scores.loc[scores["batch_size"] == 8, "mmd"].notna().all()
    assert list(taps["tap"]) == ["2", "5", "8"] and taps["depth"].tolist() == [0.0, 0.5, 1.0]
    assert accuracy["accuracy"].between(0, 1).all() and accuracy["n_images"].eq(16).all()
    assert accuracy.loc[accuracy["corruption"] == "clean", "changed_share"].eq(0).all()
    assert accuracy.loc[accuracy["corruption"] != "clean", "mean_abs_change"].gt(10).all()
    footing = [c for c in scores.columns if c.startswith("footing:")]
    assert {"footing:deepdrift:penultimate", "footing:mahalanobis:8", "footing:ks:2"} <= set(footing)
    assert scores.loc[scores["batch_size"] == 1, ["footing:mmd:2", "footing:ks:2"]].isna().all().all()
    assert scores.loc[scores["batch_size"] == 8, footing].notna().all().all()
    at_8 = scores[scores["batch_size"] == 8]
    shifted = at_8.loc[at_8["corruption"] == "gaussian_noise", "tap:2"]
    assert shifted.min() > at_8.loc[at_8["corruption"] == "clean", "tap:2"].max()  # heavy noise moves the first tap


def test_report_writes_every_figure_and_table(tiny_measurement, tmp_path: Path) -> None:
    scores, accuracy, taps, cfg = tiny_measurement
    inputs: dict[str, dict[str, Path]] = {"scores": {}, "accuracy": {}, "taps": {}, "metrics": {}}
    for model in ("a", "b"):  # two "models" with the same measurements exercise the per-model panels
        folder = tmp_path / model
        folder.mkdir()
        for key, frame in (
            ("scores", scores),
            ("accuracy", accuracy.assign(model=model)),
            ("taps", taps.assign(model=model)),
        ):
            inputs[key][model] = folder / f"{key}.csv"
            frame.to_csv(inputs[key][model], index=False)
        inputs["metrics"][model] = folder / "metrics.json"
        inputs["metrics"][model].write_text(json.dumps({"arch": "small_cnn", "heldout_accuracy": 0.1, "steps": 0}))
    out = {key: tmp_path / "out" / f"{key}.csv.gz" for key in ("detection", "detection_layers", "drift_profile")}
    stems = ("mri", "severity", "detection_figure", "clean_accuracy", "auroc", "tpr", "layer_auroc", "drift_accuracy",
             "footing", "footing_versus", "footing_figure")  # fmt: skip
    out |= {key: tmp_path / "fig" / key for key in stems}
    assert set(out) == set(REPORT_OUTPUTS)
    study = CorruptionConfig(
        models=("a", "b"),
        corruptions=cfg.corruptions,
        severities=(5,),
        n_images=16,
        batch_sizes=(1, 8),
        profile_batch_size=8,
        mri_severity=5,
    )
    results = corruption_report(study, inputs["scores"], inputs["accuracy"], inputs["taps"], inputs["metrics"], out)
    assert set(results["method"]) == {"deepdrift_max", "msp", "mmd"} and results["n_clean"].eq(6).all()
    for key in ("mri", "severity", "detection_figure", "footing_figure"):
        assert (tmp_path / "fig" / f"{key}.pdf").stat().st_size > 1000
    auroc = pd.read_csv(tmp_path / "fig" / "auroc.csv")
    assert auroc.loc[(auroc["method"] == "MMD (torchdrift)") & (auroc["batch_size"] == 1), "mean"].isna().all()
    assert set(pd.read_csv(tmp_path / "fig" / "layer_auroc.csv")["label"]) == {"UV", "Mid", "Deep"}
    footing = pd.read_csv(tmp_path / "fig" / "footing.csv")
    at_1 = footing[footing["batch_size"] == 1].set_index(["statistic", "layers"])["status"]
    assert at_1["mmd"].eq("undefined").all() and at_1["ks"].eq("degenerate").all() and at_1["knn"].eq("ok").all()
    scored = footing[footing["status"] == "ok"]
    assert scored["auroc"].between(scored["low"] - 1e-12, scored["high"] + 1e-12).all()
    assert "degenerate" in (tmp_path / "fig" / "footing.md").read_text()
    versus = pd.read_csv(tmp_path / "fig" / "footing_versus.csv")
    assert set(versus["layers"]) == {"penultimate", "last tap", "all taps (max)", "all taps (Stouffer)"}
