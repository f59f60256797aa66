"""Verdicts of the diffusion findings page follow the numbers, whichever way they point."""

from __future__ import annotations

import numpy as np
import pandas as pd

from experiments.diffusion.comparisons import head_to_head, lead_lag_table, onset_ratios, specificity_table
from experiments.diffusion.detectors import BEST, LOSS, POOLED, RANK, censored_ratio
from experiments.diffusion.findings import (
    bootstrap_interval,
    bottleneck_finding,
    earlier_finding,
    external_finding,
    findings_page,
    tracking_finding,
)
from experiments.diffusion.onset import onset_step


def _gaps(winners: dict[tuple[int, int, int], str]) -> pd.DataFrame:
    """Last-checkpoint gaps where ``winners[(n, seed, t)]`` has the largest gap_z."""
    rows = []
    for (n, seed, t), winner in winners.items():
        for block in ("down_blocks.0", "mid_block", "up_blocks.0"):
            rows.append(
                {
                    "n_train": n,
                    "seed": seed,
                    "step": 1000,
                    "t": t,
                    "block": block,
                    "gap_z": 5.0 if block == winner else 1.0,
                }
            )
    return pd.DataFrame(rows)


def _onsets(firsts: dict[tuple[int, int, int], str | None], drift: float = 500.0, loss: float = 1500.0) -> pd.DataFrame:
    rows = []
    for (n, seed, t), block in firsts.items():
        onset = drift if block else np.nan
        rows.append(
            {
                "n_train": n,
                "seed": seed,
                "t": t,
                "first_block": block,
                "drift_onset": onset,
                "loss_onset": loss,
                "ratio_loss_drift": loss / onset,
            }
        )
    return pd.DataFrame(rows)


def test_a_block_is_named_only_with_a_majority_of_seeds():
    split = {(10, 0, 50): "mid_block", (10, 1, 50): "up_blocks.0"}
    finding = bottleneck_finding(_gaps(split), _onsets(split))
    assert finding.verdict == "inconclusive" and set(finding.table["most"]) == {"no majority"}
    agree = {(10, s, 50): "mid_block" for s in range(3)} | {(100, s, 50): "mid_block" for s in range(3)}
    assert bottleneck_finding(_gaps(agree), _onsets(agree)).verdict == "supported"
    other = {(10, s, 50): "up_blocks.0" for s in range(3)}
    finding = bottleneck_finding(_gaps(other), _onsets(other))
    assert finding.verdict == "not supported" and "up_blocks.0" in finding.why


def _detected(onsets: dict[str, list[float]], n: int = 10, t: int = 50) -> pd.DataFrame:
    """Onsets per detector, one entry per seed."""
    rows = [
        {"detector": det, "n_train": n, "seed": seed, "t": t, "onset": onset}
        for det, values in onsets.items()
        for seed, onset in enumerate(values)
    ]
    return pd.DataFrame(rows)


def _ratios(loss: list[float], drift: list[float]) -> pd.DataFrame:
    detected = _detected({LOSS: loss, POOLED: drift, BEST: drift})
    return onset_ratios(detected, (POOLED, BEST), horizon=4500.0, first_checkpoint=500)


def test_earlier_ratio_at_the_first_checkpoint_is_only_a_bound():
    finding = earlier_finding(_ratios([1500.0] * 3, [500.0] * 3), first_checkpoint=500)
    row = finding.table.iloc[0]
    assert row["ratio_median"] == 3.0 and row["at_first_checkpoint"] == 3
    assert finding.verdict == "not supported" and "checkpoint spacing" in finding.why
    assert earlier_finding(_ratios([1500.0] * 3, [1000.0] * 3), 500).verdict == "not supported"
    resolved = earlier_finding(_ratios([3500.0] * 3, [1000.0] * 3), 500)
    assert resolved.verdict == "supported" and resolved.table.iloc[0]["ratio_median"] == 3.5
    none = earlier_finding(_ratios([np.nan], [np.nan]), 500)
    assert none.verdict == "inconclusive" and none.table.iloc[0]["neither"] == 1


def test_censored_onsets_enter_as_bounds_and_are_counted():
    assert censored_ratio(1500.0, 500.0, 4500.0) == (3.0, "both")
    assert censored_ratio(np.nan, 1500.0, 4500.0) == (3.0, ">=")
    assert censored_ratio(1500.0, np.nan, 4500.0) == (1500.0 / 4500.0, "<=")
    assert np.isnan(censored_ratio(np.nan, np.nan, 4500.0)[0])
    assert censored_ratio(1000.0, 0.0, 4500.0)[1] == "step 0"
    row = _ratios([np.nan, 1500.0, 1500.0], [1500.0, np.nan, 1500.0]).iloc[0]
    assert (row["both"], row["loss_missing"], row["detector_missing"]) == (1, 1, 1)


def _tracking_inputs(false_onsets: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two memorising runs (N=10) and two that never memorise (N=100), drift gap rising with memorisation."""
    mem, gaps, flags, onsets = [], [], [], []
    for n in (10, 100):
        for seed in range(3):
            for step in range(0, 1001, 250):
                memorised = (step / 1000) * (0.9 if n == 10 else 0.0) + 0.01 * seed
                mem.append({"n_train": n, "seed": seed, "step": step, "memorised_fraction": memorised})
                z = step / 100 if n == 10 else (step / 100 if false_onsets else 0.1 * seed)
                gaps.append(
                    {"n_train": n, "seed": seed, "step": step, "block": "mid_block", "block_index": 3, "gap_z": z}
                )
                for det in (LOSS, POOLED):
                    flags.append({"detector": det, "n_train": n, "seed": seed, "t": 50, "step": step, "gap_z": z})
            drift_onset = 250.0 if n == 10 or false_onsets else np.nan
            onsets += [
                {"detector": POOLED, "n_train": n, "seed": seed, "t": 50, "onset": drift_onset},
                {"detector": LOSS, "n_train": n, "seed": seed, "t": 50, "onset": 750.0 if n == 10 else np.nan},
            ]
    memorisation = pd.DataFrame(mem)
    specificity = specificity_table(pd.DataFrame(gaps), pd.DataFrame(flags), memorisation, (LOSS, POOLED))
    mem_onsets = pd.DataFrame(
        [
            {"n_train": n, "seed": s, "memorisation_onset": 250.0 if n == 10 else np.nan}
            for n in (10, 100)
            for s in range(3)
        ]
    )
    return specificity, lead_lag_table(pd.DataFrame(onsets), mem_onsets, (LOSS, POOLED))


def test_an_onset_without_memorisation_is_membership_not_memorisation():
    specificity, lead_lag = _tracking_inputs(false_onsets=True)
    pooled = lead_lag.set_index("detector").loc[POOLED]
    assert pooled["false_onset"] == 3 and pooled["early"] == 3
    finding = tracking_finding(specificity, lead_lag)
    assert finding.verdict in ("partly", "not supported") and "membership" in finding.why
    clean = tracking_finding(*_tracking_inputs(false_onsets=False))
    assert clean.verdict == "supported" and "better than" in clean.why


def test_external_comparison_counts_which_detector_is_earlier():
    detected = _detected({POOLED: [500.0, 1000.0, np.nan], RANK: [1000.0, 1000.0, np.nan]})
    duel = head_to_head(detected, POOLED, RANK)
    assert duel.iloc[0][f"{POOLED} earlier"] == 1 and duel.iloc[0]["same step"] == 1 and duel.iloc[0]["neither"] == 1
    specificity = pd.DataFrame(columns=["measure", "spearman_rho", "rho_low", "rho_high"])
    assert external_finding(duel, specificity).verdict == "supported"
    later = head_to_head(_detected({POOLED: [1500.0, np.nan], RANK: [1000.0, 500.0]}), POOLED, RANK)
    assert external_finding(later, specificity).verdict == "not supported"


def test_an_onset_needs_consecutive_significant_checkpoints():
    assert np.isnan(onset_step([0, 500, 1000], [False, False, True], consecutive=2))
    assert onset_step([0, 500, 1000], [False, True, True], consecutive=2) == 500.0


def test_bootstrap_interval_and_page():
    low, high = bootstrap_interval([1.0, 2.0, 3.0, 4.0])
    assert 1.0 <= low <= high <= 4.0
    assert np.isnan(bootstrap_interval([2.0])[0])
    split = {(10, 0, 50): "mid_block", (10, 1, 50): "mid_block"}
    page = findings_page([bottleneck_finding(_gaps(split), _onsets(split))], "test settings")
    assert page.startswith("# Diffusion memorisation study: findings") and "**supported**" in page
