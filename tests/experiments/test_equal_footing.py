"""The equal-footing benchmark: per-layer peer statistics, their nulls, the shared reference split, the table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from deepdrift import CalibrationConfig, DriftScorer
from experiments.baselines.layer_statistics import LayerKNN, LayerKS, LayerMahalanobis, LayerMMD
from experiments.baselines.layerwise import PENULTIMATE, LayerwiseScorer, PeerNull, holdout_mask, null_batches
from experiments.baselines.pood import KNN, Mahalanobis
from experiments.corruption.footing import footing_table
from experiments.corruption.measure import FOOTING_PREFIX, pixel_change
from experiments.corruption.summary import drop_cells, identity_cells, identity_note
from experiments.features import FeatureSet


def _features(n: int, shift: float = 0.0, seed: int = 0) -> FeatureSet:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    direction = np.array([1.0, -1.0, 1.0, 0.0, 0.0, 0.0])  # turns the features too (KNN compares directions)
    base = rng.normal(size=(n, 6)) + labels[:, None] * 0.5 + shift * direction
    taps = {"a": base[:, :4] * 2.0, "b": np.tanh(base) + shift * direction}
    return FeatureSet(
        logits=torch.zeros(n, 3),
        penultimate=torch.tensor(base, dtype=torch.float32),
        taps={k: torch.tensor(v, dtype=torch.float32) for k, v in taps.items()},
        labels=torch.tensor(labels),
    )


def test_ks_matches_scipy_with_ties() -> None:
    rng = np.random.default_rng(0)
    reference = np.round(rng.normal(size=(300, 4)), 1)  # rounded: many ties inside and across samples
    pool = np.round(rng.normal(0.4, 1.0, size=(40, 4)), 1)
    batches = np.stack([rng.choice(40, 9, replace=False) for _ in range(25)])
    ks = LayerKS().fit(reference)
    got = ks.batch_statistics(ks.prepare(pool), batches)
    want = [max(stats.ks_2samp(pool[b, f], reference[:, f]).statistic for f in range(4)) for b in batches]
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert ks.status(1) == "degenerate" and np.isnan(ks.batch_statistics(ks.prepare(pool), batches[:, :1])).all()


def test_mmd_is_the_unbiased_estimate_and_undefined_for_one_sample() -> None:
    rng = np.random.default_rng(1)
    reference, pool = rng.normal(size=(60, 3)), rng.normal(0.5, 1.0, size=(20, 3))
    mmd = LayerMMD().fit(reference)
    batches = np.stack([rng.choice(20, 5, replace=False) for _ in range(6)])
    got = mmd.batch_statistics(mmd.prepare(pool), batches)

    def kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.exp(-mmd._gamma * ((a[:, None] - b[None]) ** 2).sum(-1))

    n, m = 5, len(reference)
    want = [
        (kernel(pool[b], pool[b]).sum() - n) / (n * (n - 1))
        + (kernel(reference, reference).sum() - m) / (m * (m - 1))
        - 2 * kernel(pool[b], reference).mean()
        for b in batches
    ]
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    assert mmd.status(1) == "undefined"


def test_mahalanobis_and_knn_rank_samples_as_pytorch_ood_does() -> None:
    calib, pool = _features(300), _features(80, shift=0.3, seed=1)
    ours = LayerMahalanobis().fit(calib.penultimate.double().numpy(), calib.labels.numpy())
    theirs = Mahalanobis().fit(calib)
    rho = stats.spearmanr(ours.prepare(pool.penultimate.numpy()), theirs.sample_scores(pool)).statistic
    assert rho > 0.999
    ours_knn = LayerKNN(k=10).fit(calib.penultimate.double().numpy())
    theirs_knn = KNN(k=10).fit(calib)
    np.testing.assert_allclose(
        ours_knn.prepare(pool.penultimate.numpy()), theirs_knn.sample_scores(pool), rtol=1e-4, atol=1e-5
    )


def test_the_shared_split_is_deepdrifts_own() -> None:
    calib = _features(200)
    scorer = DriftScorer(CalibrationConfig()).fit_features([{"a": calib.taps["a"]}])
    held = holdout_mask(200, CalibrationConfig().holdout_fraction)
    ref = scorer.calibration.layers["a"]
    assert ref.count == (~held).sum() and len(ref.holdout) == held.sum() == 40
    np.testing.assert_allclose(ref.mean.numpy(), calib.taps["a"][~held].double().mean(0).numpy(), atol=1e-9)
    assert torch.equal(ref.holdout.sort(dim=0).values, calib.taps["a"][held].sort(dim=0).values)


def test_peer_null_is_standard_normal_on_its_draws_and_never_capped() -> None:
    draws = np.random.default_rng(2).gamma(3.0, size=4000)
    null = PeerNull.from_draws(draws, 16)
    sigma = null.sigma(np.random.default_rng(3).gamma(3.0, size=4000))
    assert abs(sigma.mean()) < 0.1 and abs(sigma.std() - 1) < 0.1
    far = null.sigma(np.array([draws.max() + 1, draws.max() + 5, np.nan]))
    assert far[1] > far[0] > 3.3 and np.isnan(far[2])
    with pytest.raises(ValueError, match="finite"):
        PeerNull.from_draws(np.array([1.0, np.nan]), 1)


def test_layerwise_scorer_scores_every_statistic_on_every_layer() -> None:
    calib, clean, shifted = _features(400), _features(64, seed=4), _features(64, shift=4.0, seed=5)
    scorer = LayerwiseScorer(null_draws=300, knn_k=10).fit(calib)
    assert scorer.layers == [PENULTIMATE, "a", "b"] and (scorer.n_reference, scorer.n_null) == (320, 80)
    rng = np.random.default_rng(6)
    batches = {1: rng.integers(0, 64, size=(20, 1)), 8: np.stack([rng.choice(64, 8, replace=False) for _ in range(20)])}
    calm, loud = scorer.score(clean, batches), scorer.score(shifted, batches)
    for statistic in scorer.statistics:
        assert calm[8][statistic].shape == (20, 3)
        assert np.nanmean(loud[8][statistic]) > np.nanmean(calm[8][statistic]) + 1, statistic
        assert abs(np.nanmean(calm[8][statistic])) < 1, statistic  # sigma units on clean data
    assert np.isnan(calm[1]["mmd"]).all() and np.isnan(calm[1]["ks"]).all() and np.isfinite(calm[1]["knn"]).all()
    # DeepDrift's per-layer drift, vectorised, is what the library reports batch by batch
    library = DriftScorer(CalibrationConfig()).fit_features([{PENULTIMATE: calib.penultimate, **calib.taps}])
    for row, index in enumerate(batches[8][:5]):
        part = clean.subset(index)
        scores = library.score_features({PENULTIMATE: part.penultimate, **part.taps})
        want = [scores[layer].drift for layer in scorer.layers]
        np.testing.assert_allclose(calm[8]["deepdrift"][row], want, atol=1e-9)
    with pytest.raises(ValueError, match="unknown statistics"):
        LayerwiseScorer(["mahalanobis", "energy"])
    assert null_batches(80, 8, 5, 0).shape == (5, 8)


def _scores(model: str = "m") -> pd.DataFrame:
    rng = np.random.default_rng(7)
    rows = []
    for batch_size in (1, 8):
        for corruption, severity, shift in (("clean", 0, 0.0), ("fog", 3, 3.0), ("snow", 1, 3.0), ("saturate", 1, 0.0)):
            n = 40 if corruption == "clean" else 20
            for b in range(n):
                row = {"corruption": corruption, "family": "x", "severity": severity, "batch_size": batch_size}
                row["batch"] = b
                for statistic in ("deepdrift", "ks"):
                    for layer in (PENULTIMATE, "a", "b"):
                        value = rng.normal() + (shift if layer == "b" else 0.0)
                        row[f"{FOOTING_PREFIX}{statistic}:{layer}"] = (
                            np.nan if (statistic, batch_size) == ("ks", 1) else value
                        )
                rows.append(row)
    return pd.DataFrame(rows)


def test_footing_table_separates_layers_marks_unscored_cells_and_drops_identities() -> None:
    identity = {"m": [("saturate", 1)]}
    table, versus = footing_table({"m": _scores()}, identity, replicates=200)
    ok = table[table["status"] == "ok"].set_index(["batch_size", "statistic", "layers"])
    assert ok.loc[(8, "deepdrift", "last tap"), "auroc"] > 0.95  # only tap b moves
    assert ok.loc[(8, "deepdrift", "penultimate"), "auroc"] < 0.8
    assert (ok["cells"] == 2).all()  # saturate left out, and no empty (fog, 1) / (snow, 3) cell made up
    assert (ok["low"] <= ok["auroc"]).all() and (ok["auroc"] <= ok["high"]).all()
    at_1 = table[(table["batch_size"] == 1) & (table["statistic"] == "ks")]
    assert at_1["status"].eq("degenerate").all() and at_1["auroc"].isna().all()
    assert set(versus["best peer"]) == {"ks"} and set(versus["batch_size"]) == {8}


def test_identity_cells_are_found_by_pixel_change_and_named() -> None:
    clean = np.full((4, 8, 8), 100, dtype=np.uint8)
    assert pixel_change(clean, clean) == {"mean_abs_change": 0.0, "changed_share": 0.0}
    assert pixel_change(clean, clean + 1)["changed_share"] == 1.0
    accuracy = pd.DataFrame(
        {
            "model": ["m"] * 4,
            "corruption": ["clean", "saturate", "saturate", "fog"],
            "severity": [0, 1, 4, 1],
            "changed_share": [0.0, 0.0, 0.4, 0.9],
        }
    )
    cells = identity_cells(accuracy)
    assert cells == {"m": [("saturate", 1)]}
    assert len(drop_cells(accuracy, cells)) == 3
    assert "saturate at severities 1" in identity_note(cells)


def _claim_scores(ours: float, peer: float) -> pd.DataFrame:
    """Raw scores with footing columns: DeepDrift moves by ``ours`` on tap b, Mahalanobis by ``peer``; saturate is
    an identity cell (no pixel changed) that must not count."""
    rng = np.random.default_rng(8)
    rows = []
    for batch_size in (1, 16):
        for corruption, severity, changed in (("clean", 0, 0.0), ("fog", 3, 0.9), ("saturate", 1, 0.0)):
            moves = corruption == "fog"
            for b in range(40 if corruption == "clean" else 20):
                row = {"corruption": corruption, "family": "x", "severity": severity, "batch_size": batch_size}
                row |= {"batch": b, "pool:changed_share": changed, "deepdrift_max": rng.normal()}
                for statistic, shift in (("deepdrift", ours), ("mahalanobis", peer)):
                    for layer in (PENULTIMATE, "a", "b"):
                        value = rng.normal() + (shift if moves and layer == "b" else 0.0)
                        row[f"{FOOTING_PREFIX}{statistic}:{layer}"] = value
                rows.append(row)
    return pd.DataFrame(rows)


def test_the_peers_claim_separates_statistic_from_layers() -> None:
    from experiments.findings.claims import beats_peers
    from experiments.findings.finding import Verdict

    auroc = pd.DataFrame({"model": ["m"], "method": ["DeepDrift (max)"], "batch_size": [16], "mean": [0.9]})
    better = beats_peers(auroc, None, {"m": _claim_scores(ours=3.0, peer=0.5)}, {})
    assert "which statistic" in better.tables[0].caption.lower()
    by_layers = better.tables[0].frame.set_index(["batch size", "layers"])["status"]
    assert by_layers[(16, "all taps (max)")] == "DeepDrift higher"
    assert by_layers[(16, "penultimate")] == "no clear difference"  # neither statistic sees a shift there
    assert better.verdict is Verdict.PARTLY and "saturate s1" in better.notes[-1]
    worse = beats_peers(auroc, None, {"m": _claim_scores(ours=0.5, peer=3.0)}, {})
    assert worse.verdict is Verdict.NOT_SUPPORTED
    layers = worse.tables[1].frame.set_index("statistic")
    assert layers.loc["Mahalanobis", "all taps (max)"] > layers.loc["Mahalanobis", "penultimate"] + 0.2


def test_the_tables_own_status_marks_unscored_peers_once() -> None:
    from experiments.findings.claims import beats_peers

    auroc = pd.DataFrame(
        {
            "model": ["m"] * 4,
            "method": ["DeepDrift (max)", "Mahalanobis", "MMD (torchdrift)", "KS (torchdrift)"],
            "batch_size": [1] * 4,
            "mean": [0.9, 0.8, np.nan, np.nan],
            "status": ["ok", "ok", "undefined", "degenerate"],
        }
    )
    row = beats_peers(auroc).tables[0].frame.iloc[0]
    assert row["best peer"] == "Mahalanobis"
    assert row["not compared"] == "MMD (torchdrift) undefined, KS (torchdrift) degenerate"
