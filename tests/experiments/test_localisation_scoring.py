"""Scoring of the doctor's verdicts against the injected faults, and the accuracy table built from them."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from deepdrift import LayerTaps
from experiments.features import FeatureSet
from experiments.localisation.evaluate import Fault, diagnose_batches, fit_scorer, score_batches
from experiments.localisation.sites import FaultSite
from experiments.localisation.summary import accuracy_table


def _frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    faults = pd.DataFrame(
        [
            {
                "model": "m",
                "fault_id": "a",
                "kind": "internal",
                "onset_true": 1,
                "expected_mode": "SPURIOUS_CORRELATION",
                "pre_onset_max_change": 0.0,
                "accuracy_drop": 5.0,
            },
            {
                "model": "m",
                "fault_id": "b",
                "kind": "input",
                "onset_true": 0,
                "expected_mode": "SENSOR_FAILURE",
                "pre_onset_max_change": 0.0,
                "accuracy_drop": 0.5,
            },
            {
                "model": "m",
                "fault_id": "c",
                "kind": "none",
                "onset_true": -1,
                "expected_mode": "STABLE",
                "pre_onset_max_change": 0.0,
                "accuracy_drop": 0.0,
            },
        ]
    )
    batches = pd.DataFrame(
        [
            {"model": "m", "fault_id": "a", "batch_size": 16, "mode": "SPURIOUS_CORRELATION", "onset_pred": 1},
            {"model": "m", "fault_id": "a", "batch_size": 16, "mode": "GEOMETRIC_COLLAPSE", "onset_pred": 2},
            {"model": "m", "fault_id": "b", "batch_size": 16, "mode": "STABLE", "onset_pred": -1},
            {"model": "m", "fault_id": "b", "batch_size": 16, "mode": "SENSOR_FAILURE", "onset_pred": 0},
            {"model": "m", "fault_id": "c", "batch_size": 16, "mode": "STABLE", "onset_pred": -1},
        ]
    )
    return batches, faults


def test_score_batches_counts_misses_as_wrong_onsets() -> None:
    scored = score_batches(*_frames())
    assert scored["detected"].tolist() == [True, True, False, True, False]
    assert scored["onset_exact"].tolist() == [True, False, False, True, False]
    assert scored["onset_within1"].tolist() == [True, True, False, True, False]
    assert scored["mode_correct"].tolist() == [True, False, False, True, True]


def test_accuracy_table_subsets() -> None:
    table = accuracy_table(score_batches(*_frames()), min_drop=2.0).set_index("subset")
    assert table.loc["all faults", "onset_exact"] == pytest.approx(0.5)
    assert table.loc["all faults", "onset_exact_if_detected"] == pytest.approx(2 / 3)
    assert table.loc["accuracy change >= 2 pts", "faults"] == 1
    assert table.loc["accuracy change >= 2 pts", "onset_exact"] == pytest.approx(0.5)
    assert table.loc["clean model (no fault)", "detected"] == 0.0


def test_diagnose_batches_finds_a_shift_placed_at_one_tap() -> None:
    gen = torch.Generator().manual_seed(0)
    calib = FeatureSet(
        torch.zeros(2000, 2), torch.zeros(2000, 1), {f"t{i}": torch.randn(2000, 8, generator=gen) for i in range(4)}
    )
    scorer = fit_scorer(calib, n_null_draws=1000)
    model = torch.nn.Sequential(*[torch.nn.Identity() for _ in range(4)])
    taps = LayerTaps(model, layers=["0", "1", "2", "3"]).taps
    test = {f"t{i}": torch.randn(64, 8, generator=gen) + (2.0 if i >= 2 else 0.0) for i in range(4)}
    rows = diagnose_batches(
        scorer, taps, FeatureSet(torch.zeros(64, 2), torch.zeros(64, 1), test), batch_size=16, n_batches=4
    )
    assert [r["onset_pred"] for r in rows] == [2, 2, 2, 2]
    assert {r["mode"] for r in rows} == {"GEOMETRIC_COLLAPSE"}  # onset in the Deep zone


def test_fault_ids_are_unique_and_readable() -> None:
    site = FaultSite("layer2.0.conv1", 2)
    ids = {
        Fault("internal", "scale", 2.0, site).fault_id,
        Fault("internal", "scale", 4.0, site).fault_id,
        Fault("input", "blur", 1.0).fault_id,
    }
    assert "internal:scale@layer2.0.conv1:2" in ids and len(ids) == 3
    assert Fault("input", "blur", 1.0).onset == 0 and Fault("none", "clean", 0).onset is None
