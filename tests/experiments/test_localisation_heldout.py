"""The held-out fault set, the clean control and the localisers beside the doctor (trivial and per-layer peers)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from experiments.baselines.pood import Mahalanobis
from experiments.features import FeatureSet
from experiments.localisation.config import FaultStudyConfig
from experiments.localisation.evaluate import Fault, score_batches
from experiments.localisation.faults import fault_seed
from experiments.localisation.peers import WhitenedMahalanobis, consecutive_batches, fit_peer, null_batches
from experiments.localisation.sites import FaultSite, find_sites, heldout_sites
from experiments.localisation.summary import CLEAN_CONTROL, accuracy_table
from experiments.models import CifarResNet


def _features(n: int, shift_from: int | None, gen: torch.Generator, taps: int = 4) -> FeatureSet:
    """``n`` samples of ``taps`` 6-wide taps; taps from ``shift_from`` on are shifted by 1.5 in every feature."""
    feats = {
        f"t{i}": torch.randn(n, 6, generator=gen) + (1.5 if shift_from is not None and i >= shift_from else 0.0)
        for i in range(taps)
    }
    return FeatureSet(torch.zeros(n, 3), torch.zeros(n, 1), feats, labels=torch.arange(n) % 3)


@pytest.mark.parametrize("method", ["mahalanobis", "mmd"])
def test_a_peer_localiser_names_the_first_shifted_tap_and_stays_quiet_on_clean_batches(method: str) -> None:
    gen = torch.Generator().manual_seed(0)
    peer = fit_peer(method, _features(2000, None, gen), [16], reference_size=200, null_draws=1000, seed=0)
    batches = consecutive_batches(320, 16, 20)
    assert (peer.onsets(_features(320, 2, gen), batches) == 2).mean() >= 0.9
    assert (peer.onsets(_features(320, None, gen), batches) == -1).mean() >= 0.9


def test_peer_p_values_come_from_the_clean_null_and_mmd_is_undefined_for_one_sample() -> None:
    gen = torch.Generator().manual_seed(1)
    mmd = fit_peer("mmd", _features(400, None, gen), [1, 16], reference_size=50, null_draws=200, seed=0)
    assert not mmd.defined(1) and mmd.defined(16) and ("t0", 1) not in mmd.nulls
    maha = fit_peer("mahalanobis", _features(400, None, gen), [1], seed=0)
    assert len(maha.nulls[("t0", 1)]) == 200  # batch size 1: every sample of the null half once
    p = maha.p_values(_features(50, 3, gen), consecutive_batches(50, 1, 50))
    assert p.shape == (50, 4) and ((p > 0) & (p <= 1)).all()
    assert p.min() >= 1 / 201  # the null's resolution bounds p from below
    assert np.median(p[:, 3]) < 0.05 < np.median(p[:, 0])  # the shifted tap is far out in its null, the others not


def test_whitened_mahalanobis_scores_equal_the_baselines_mahalanobis() -> None:
    gen = torch.Generator().manual_seed(2)
    mix = torch.randn(12, 12, generator=gen)
    calib = _features(600, None, gen, taps=1)
    calib = FeatureSet(calib.logits, torch.randn(600, 12, generator=gen) @ mix + 3.0, labels=torch.arange(600) % 4)
    test = FeatureSet(torch.zeros(50, 3), torch.randn(50, 12, generator=gen) @ mix + 3.5)
    ours = WhitenedMahalanobis().fit(calib).sample_scores(test)
    theirs = Mahalanobis().fit(calib).sample_scores(test)
    np.testing.assert_allclose(ours, theirs, rtol=1e-7)
    assert ours.min() > 0


def test_null_batches_hold_distinct_samples() -> None:
    idx = null_batches(30, 16, 50, np.random.default_rng(0))
    assert idx.shape == (50, 16) and all(len(set(row)) == 16 for row in idx)
    assert null_batches(5, 1, 50, np.random.default_rng(0)).ravel().tolist() == [0, 1, 2, 3, 4]


def test_development_draws_are_unsalted_and_held_out_draws_are_new() -> None:
    dev = Fault("input", "pixel_noise", 0.05)
    held = Fault("input", "pixel_noise", 0.05, fault_set="held-out", salt=1)
    assert dev.seed == fault_seed(dev.fault_id)  # exactly the seed the development set always used
    assert held.fault_id == dev.fault_id and held.seed != dev.seed
    assert Fault("input", "pixel_noise", 0.05, fault_set="held-out", salt=2).seed != held.seed


def test_held_out_sites_cover_every_segment_with_modules_the_development_set_left_alone() -> None:
    model = CifarResNet(20, 10, 1).eval()
    probe = torch.randn(2, 1, 32, 32)
    taps = ["layer1", "layer2", "layer3"]
    dev = find_sites(model, taps, probe, n_depths=2)
    held = heldout_sites(model, taps, probe, dev, seed=0)
    assert [s.onset for s in held] == [0, 1, 2]
    assert not {s.module for s in held} & {s.module for s in dev}
    assert heldout_sites(model, taps, probe, dev, seed=0) == held  # seeded
    only = [FaultSite("conv1", 0)]  # a segment whose every module the development set used keeps one of them
    stem = heldout_sites(model, ["act1", "layer1"], probe, only, seed=0)
    assert stem[0] == FaultSite("conv1", 0)


def test_the_held_out_images_may_not_overlap_the_development_images() -> None:
    base = {"models": ["cnn"], "input": {}, "internal": {}, "corruptions": {}}
    assert FaultStudyConfig.from_config(base).heldout_offset == 256
    with pytest.raises(ValueError, match="overlaps the development images"):
        FaultStudyConfig.from_config({**base, "n_eval": 256, "heldout_offset": 128})
    with pytest.raises(ValueError, match="heldout_seed"):
        FaultStudyConfig.from_config({**base, "heldout_seed": 0})


def test_accuracy_table_splits_fault_sets_localisers_and_the_clean_control() -> None:
    faults = pd.DataFrame(
        [
            {"model": "m", "fault_set": s, "fault_id": f, "kind": k, "onset_true": o, "expected_mode": e,
             "accuracy_drop": 5.0}
            for s, f, k, o, e in (
                ("development", "a", "internal", 1, "SPURIOUS_CORRELATION"),
                ("held-out", "a", "internal", 1, "SPURIOUS_CORRELATION"),
                ("control", "c", "none", -1, "STABLE"),
            )
        ]
    )  # fmt: skip
    rows = [
        ("development", "a", "doctor", "SPURIOUS_CORRELATION", 1),
        ("development", "a", "first_tap", "", 0),
        ("held-out", "a", "doctor", "STABLE", -1),
        ("held-out", "a", "first_tap", "", 0),
        ("control", "c", "doctor", "STABLE", -1),
        ("control", "c", "doctor", "SENSOR_FAILURE", 0),
        ("control", "c", "first_tap", "", 0),
    ]
    batches = pd.DataFrame(
        [
            {"model": "m", "fault_set": s, "fault_id": f, "localiser": loc, "batch_size": 16, "mode": mode,
             "onset_pred": onset}
            for s, f, loc, mode, onset in rows
        ]
    )  # fmt: skip
    scored = score_batches(batches, faults)
    assert scored["mode_correct"].isna().tolist() == [False, True, False, True, False, False, True]
    table = accuracy_table(scored).set_index(["fault_set", "localiser", "subset"])
    assert table.loc[("development", "doctor", "all faults"), "onset_exact"] == 1.0
    assert table.loc[("held-out", "doctor", "all faults"), "detected"] == 0.0
    assert table.loc[("development", "first_tap", "all faults"), "onset_exact"] == 0.0
    assert table.loc[("control", "doctor", CLEAN_CONTROL), "detected"] == 0.5  # the false-diagnosis rate
    assert table.loc[("control", "first_tap", CLEAN_CONTROL), "detected"] == 1.0  # always names a tap
    assert np.isnan(table.loc[("development", "first_tap", "all faults"), "mode_accuracy"])
