"""The replicate study: nested bootstrap intervals, the replicate-group check, the metric subsets, and the figure."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from experiments.config import ConfigError
from experiments.null_grid import GridCell
from experiments.replicates.config import ReplicatesConfig
from experiments.replicates.figures import replicate_figure
from experiments.replicates.intervals import Cluster, across_seeds, seed_estimate
from experiments.replicates.summary import (
    FALSE_DIAGNOSES,
    ONSET_HARMFUL,
    SIGMA,
    Subject,
    fault_clusters,
    replicate_tables,
    sigma_clusters,
)
from experiments.workflow_config import load_config, read_config_set


def _clusters(rates: list[float], units: int, rng: np.random.Generator) -> list[Cluster]:
    return [Cluster(rng.binomial(1, r, units).astype(float), np.ones(units)) for r in rates]


def test_a_seed_estimate_is_the_pooled_ratio_and_its_interval_covers_it() -> None:
    rng = np.random.default_rng(1)
    clusters = _clusters([0.2, 0.3, 0.25, 0.35], 200, rng)
    estimate = seed_estimate(clusters, np.random.default_rng(0))
    pooled = sum(c.hits.sum() for c in clusters) / sum(c.trials.sum() for c in clusters)
    assert estimate.value == pytest.approx(pooled)
    assert estimate.low < pooled < estimate.high
    assert estimate.clusters == 4 and estimate.draws.shape == (2000,)


def test_the_sparse_draw_for_rare_hits_agrees_with_the_dense_one() -> None:
    """Clusters of many units with constant trials take the sparse path; its interval matches a dense bootstrap."""
    rng = np.random.default_rng(2)
    big = [Cluster(rng.binomial(3, 0.002, 5000).astype(float), np.full(5000, 3.0)) for _ in range(3)]
    sparse = seed_estimate(big, np.random.default_rng(0))
    uneven = [Cluster(c.hits, c.trials + np.r_[1e-9, np.zeros(4999)]) for c in big]  # not constant: dense path
    dense = seed_estimate(uneven, np.random.default_rng(0))
    assert sparse.value == pytest.approx(dense.value, rel=1e-6)
    assert sparse.low == pytest.approx(dense.low, rel=0.15) and sparse.high == pytest.approx(dense.high, rel=0.15)


def test_seeds_that_disagree_widen_the_interval_over_seeds() -> None:
    rng = np.random.default_rng(3)
    same = [seed_estimate(_clusters([0.5] * 5, 100, rng), rng) for _ in range(3)]
    apart = [seed_estimate(_clusters([r] * 5, 100, rng), rng) for r in (0.2, 0.5, 0.8)]
    mean_same, lo_same, hi_same = across_seeds(same, rng)
    mean_apart, lo_apart, hi_apart = across_seeds(apart, rng)
    assert mean_apart == pytest.approx(np.mean([e.value for e in apart]))
    assert lo_same < mean_same < hi_same
    assert hi_apart - lo_apart > 3 * (hi_same - lo_same)


def test_no_clusters_give_no_number_rather_than_zero() -> None:
    estimate = seed_estimate([], np.random.default_rng(0))
    assert np.isnan(estimate.value)
    assert all(np.isnan(v) for v in across_seeds([estimate], np.random.default_rng(0)))


def _verdicts() -> pd.DataFrame:
    rows = []
    for fault, drop, exact in (("a", 5.0, [1, 1, 0]), ("b", 0.5, [0, 0, 0]), ("c", -3.0, [1, 0, 1])):
        for b, hit in enumerate(exact):
            rows.append({"fault_set": "held-out", "fault_id": fault, "kind": "internal", "accuracy_drop": drop,
                         "localiser": "doctor", "batch_size": 16, "batch": b, "onset_exact": bool(hit),
                         "detected": True})  # fmt: skip
    for b in range(4):
        rows.append({"fault_set": "control", "fault_id": "none", "kind": "none", "accuracy_drop": 0.0,
                     "localiser": "doctor", "batch_size": 16, "batch": b, "onset_exact": False,
                     "detected": b == 0})  # fmt: skip
    return pd.DataFrame(rows)


def test_fault_clusters_select_the_harmful_subset_and_the_control() -> None:
    verdicts = _verdicts()
    harmful = fault_clusters(verdicts, 16, "doctor", "onset_exact", "held-out", 2.0)
    assert [c.hits.tolist() for c in harmful] == [[1, 1, 0], [1, 0, 1]]  # |drop| >= 2: a and c, not b
    everything = fault_clusters(verdicts, 16, "doctor", "onset_exact", "held-out", None)
    assert len(everything) == 3
    control = fault_clusters(verdicts, 16, "doctor", "detected", "control", None)
    assert len(control) == 1 and control[0].hits.tolist() == [1, 0, 0, 0]


def test_sigma_clusters_count_taps_above_three_per_batch() -> None:
    drift = np.array([[0.0, 3.5], [4.0, 5.0], [1.0, 2.9]])
    cells = [GridCell("m", 0, 100, 16, drift), GridCell("m", 0, 100, 1, drift[:1])]
    (cluster,) = sigma_clusters(cells, 16)
    assert cluster.hits.tolist() == [1, 2, 0] and cluster.trials.tolist() == [2, 2, 2]


def test_replicate_tables_and_figure_from_synthetic_subjects() -> None:
    rng = np.random.default_rng(4)
    subjects = []
    for seed in range(3):
        cells = [GridCell(f"m{seed}", s, 100, b, rng.standard_normal((400, 3))) for s in range(2) for b in (1, 16)]
        subjects.append(Subject("cnn", f"m{seed}", seed, 0.9 + seed / 100, cells, _verdicts()))
    per_seed, summary = replicate_tables(subjects, {"sigma": (1, 16), "faults": (16,)}, 2.0)
    assert set(per_seed["seed"]) == {0, 1, 2}
    harmful = summary[(summary["metric"] == ONSET_HARMFUL.format(drop=2.0)) & (summary["batch_size"] == 16)].iloc[0]
    assert harmful["mean"] == pytest.approx(4 / 6) and harmful["per_seed"] == "0.667 / 0.667 / 0.667"
    control = summary[summary["metric"] == FALSE_DIAGNOSES].iloc[0]
    assert control["mean"] == pytest.approx(0.25)
    sigma = summary[(summary["metric"] == SIGMA) & (summary["batch_size"] == 16)].iloc[0]
    assert sigma["low"] <= sigma["mean"] <= sigma["high"] and sigma["seeds"] == 3
    accuracy = summary[summary["batch_size"].isna()].iloc[0]
    assert accuracy["mean"] == pytest.approx(0.91) and accuracy["min"] == pytest.approx(0.9)
    assert replicate_figure(per_seed, summary, 2.0).axes


def _config_with(**models: dict) -> dict:
    raw = read_config_set("test")
    raw["models"] = {**raw["models"], **models}
    return raw


def test_a_replicate_group_must_differ_only_in_the_training_seed() -> None:
    recipe = read_config_set("test")["models"]["cnn"]
    other_lr = {**recipe, "train": {**recipe["train"], "seed": 1, "lr": 0.1}}
    raw = _config_with(cnn_s1=other_lr)
    with pytest.raises(ConfigError, match=r"another train\.seed and nothing else"):
        load_config(raw)
    same_seed = {**recipe, "train": {**recipe["train"]}}
    with pytest.raises(ConfigError, match="repeat a training seed"):
        load_config(_config_with(cnn_s1=same_seed))
    raw = read_config_set("test")
    raw["replicates"] = {**raw["replicates"], "groups": {"cnn": ["cnn", "cnn_s9"]}}
    with pytest.raises(ConfigError, match="cnn_s9"):
        load_config(raw)


def test_a_group_needs_two_distinct_models() -> None:
    with pytest.raises(ValueError, match="at least two distinct"):
        ReplicatesConfig(groups={"cnn": ("cnn",)})
    with pytest.raises(ValueError, match="one entry per batch size"):
        ReplicatesConfig(groups={"cnn": ("cnn", "cnn_s1")}, n_batches=(10,))


def test_an_all_miss_or_all_hit_seed_still_gets_an_open_interval() -> None:
    rng = np.random.default_rng(0)
    none = seed_estimate([Cluster(np.zeros(50), np.ones(50)) for _ in range(3)], rng)
    assert none.value == 0.0 and none.low == 0.0 and 0.0 < none.high < 0.05
    every = seed_estimate([Cluster(np.ones(50), np.ones(50)) for _ in range(3)], rng)
    assert every.value == 1.0 and every.high == 1.0 and 0.95 < every.low < 1.0
    mean, _, high = across_seeds([none, none], rng)
    assert mean == 0.0 and 0.0 < high < none.high  # more units over two seeds: a tighter bound


def test_findings_show_the_seeds_beside_claims_one_and_two(tmp_path) -> None:
    """With a replicate summary beside the committed tables, claims 1 and 2 carry a seed table and say which
    architectures have replicates; the README's CNN figure is placed against the seeds' interval."""
    import shutil
    from pathlib import Path

    from experiments.findings.run import from_folder

    folder = tmp_path / "figures"
    shutil.copytree(Path(__file__).resolve().parents[2] / "paper_figures", folder)
    rows = [
        {"architecture": "cnn", "metric": SIGMA, "batch_size": 16, "seeds": 3, "per_seed": "1.0 / 2.0 / 3.0",
         "mean": 2.0, "low": 0.5, "high": 3.9},
        {"architecture": "cnn", "metric": ONSET_HARMFUL.format(drop=2.0), "batch_size": 16, "seeds": 3,
         "per_seed": "0.9 / 0.92 / 0.94", "mean": 0.92, "low": 0.85, "high": 0.94},
    ]  # fmt: skip
    pd.DataFrame(rows).to_csv(folder / "replicates_summary.csv", index=False)
    sigma, localisation = from_folder(folder)[:2]
    assert any("replicated for cnn (3 models)" in n and "resnet, vit: one trained model" in n for n in sigma.notes)
    assert [t.frame["per seed"].tolist() for t in sigma.tables if "per seed" in t.frame] == [["1.0 / 2.0 / 3.0"]]
    assert any("README's 0.96" in n and "lies above" in n for n in localisation.notes)
    (folder / "replicates_summary.csv").unlink()
    sigma, localisation = from_folder(folder)[:2]
    assert any("One trained model per architecture" in n for n in localisation.notes)


def test_a_groups_intervals_do_not_depend_on_the_groups_before_it() -> None:
    """The full set's ResNet group must give the numbers of the same group run alone."""
    rng = np.random.default_rng(5)

    def subjects(architecture: str) -> list[Subject]:
        cells = [GridCell("m", s, 100, 16, rng.standard_normal((300, 2))) for s in range(2)]
        return [Subject(architecture, f"{architecture}{k}", k, 0.9, cells, _verdicts()) for k in range(2)]

    resnet = subjects("resnet")
    alone = replicate_tables(resnet, {"sigma": (16,), "faults": (16,)}, 2.0)[1]
    after = replicate_tables(subjects("cnn") + resnet, {"sigma": (16,), "faults": (16,)}, 2.0)[1]
    after = after[after["architecture"] == "resnet"].reset_index(drop=True)
    pd.testing.assert_frame_equal(alone, after)


def _footing_scores(ours: float, peer: float, seed: int) -> pd.DataFrame:
    """Raw corruption scores with footing columns: on fog, DeepDrift moves by ``ours`` on tap b and Mahalanobis by
    ``peer``; KS is degenerate at batch 1 (NaN), and saturate s1 changes no pixel (an identity cell)."""
    from experiments.baselines.layerwise import PENULTIMATE
    from experiments.corruption.measure import FOOTING_PREFIX

    rng = np.random.default_rng(seed)
    rows = []
    for batch_size in (1, 16):
        for corruption, severity in (("clean", 0), ("fog", 3), ("saturate", 1)):
            for b in range(40 if corruption == "clean" else 20):
                row = {"corruption": corruption, "family": "x", "severity": severity, "batch_size": batch_size}
                row["batch"] = b
                for statistic, shift in (("deepdrift", ours), ("mahalanobis", peer), ("ks", peer)):
                    for layer in (PENULTIMATE, "a", "b"):
                        value = rng.normal() + (shift if corruption == "fog" and layer == "b" else 0.0)
                        row[f"{FOOTING_PREFIX}{statistic}:{layer}"] = (
                            np.nan if statistic == "ks" and batch_size == 1 else value
                        )
                rows.append(row)
    return pd.DataFrame(rows)


def test_a_seeds_detection_is_the_corruption_tables_own_row() -> None:
    from experiments.corruption.footing import footing_table
    from experiments.replicates.detection import DEEPDRIFT_AUROC, PEER_AUROC, SAME_LAYERS, seed_detection

    scores, identity = _footing_scores(ours=1.5, peer=0.5, seed=3), [("saturate", 1)]
    measured = seed_detection(scores, identity, replicates=300)
    _, versus = footing_table({"m": scores}, {"m": identity}, replicates=300)
    row = versus[versus["layers"] == "all taps (max)"].set_index("batch_size")
    for batch_size in (1, 16):
        mine = measured[batch_size]
        assert mine[DEEPDRIFT_AUROC].estimate.value == pytest.approx(row.loc[batch_size, "deepdrift"])
        assert mine[PEER_AUROC].peer == row.loc[batch_size, "best peer"]
        assert mine[SAME_LAYERS].estimate.value == pytest.approx(row.loc[batch_size, "difference"])
        assert mine[SAME_LAYERS].estimate.low == pytest.approx(row.loc[batch_size, "low"])
    assert measured[1][PEER_AUROC].peer == "mahalanobis"  # KS is degenerate at batch 1: never the best peer


def test_detection_across_seeds_counts_the_seeds_each_side_of_zero() -> None:
    from experiments.replicates.detection import AS_SHIPPED, SAME_LAYERS, detection_tables, seed_detection
    from experiments.replicates.figures import detection_figure

    shifts = {"r0": (2.0, 0.2), "r1": (2.0, 0.3), "r2": (0.4, 0.4)}
    measured = {
        m: seed_detection(_footing_scores(o, p, i), [("saturate", 1)], 300)
        for i, (m, (o, p)) in enumerate(shifts.items())
    }
    per_seed, summary = detection_tables({"resnet": [("r0", 0), ("r1", 1), ("r2", 2)]}, measured)
    same = summary[(summary["quantity"] == SAME_LAYERS) & (summary["batch_size"] == 16)].iloc[0]
    values = per_seed[(per_seed["quantity"] == SAME_LAYERS) & (per_seed["batch_size"] == 16)]["value"]
    assert same["mean"] == pytest.approx(values.mean()) and same["low"] < same["mean"] < same["high"]
    assert same["seeds above 0"] == 2 and same["seeds below 0"] == 0
    assert (
        AS_SHIPPED in set(summary["quantity"])
        and same["per_seed"].count("(Mahalanobis)") + same["per_seed"].count("(KS)") == 3
    )
    fig = detection_figure(per_seed, summary)
    assert len([ax for ax in fig.axes if ax.has_data()]) == 2
    plt.close(fig)


def test_detection_groups_are_those_whose_study_model_is_benchmarked() -> None:
    study = ReplicatesConfig(groups={"cnn": ("cnn", "cnn_s1"), "resnet": ("resnet", "resnet_s1")})
    assert study.detection_groups(["resnet", "vit"]) == {"resnet": ("resnet", "resnet_s1")}
    assert study.detection_groups(["resnet_s1"]) == {}


def test_claim_four_shows_the_seeds_beside_its_equal_footing_rows() -> None:
    from experiments.findings.claims import beats_peers
    from experiments.replicates.detection import detection_tables, seed_detection

    scores = {m: _footing_scores(2.0, 0.3, i) for i, m in enumerate(("m", "m_s1"))}
    measured = {m: seed_detection(frame, [("saturate", 1)], 300) for m, frame in scores.items()}
    summary = detection_tables({"m": [("m", 0), ("m_s1", 1)]}, measured)[1]
    auroc = pd.DataFrame({"model": ["m"], "method": ["DeepDrift (max)"], "batch_size": [16], "mean": [0.9]})
    alone = beats_peers(auroc, None, {"m": scores["m"]}, {})
    seeded = beats_peers(auroc, None, {"m": scores["m"]}, {}, replicates=summary)
    assert seeded.verdict is alone.verdict and len(seeded.tables) == len(alone.tables) + 1
    seeds = seeded.tables[-1].frame
    assert set(seeds["difference"]) == {
        "DeepDrift - best peer, all taps (max)",
        "DeepDrift (all taps) - best peer (penultimate)",
    }
    assert (seeds["seeds"] == 2).all() and "2 / 0" in set(seeds["seeds above / below 0"])
    assert any("replicated for m (2 models)" in n for n in seeded.notes)
    assert any("One trained model per architecture" in n for n in alone.notes)
