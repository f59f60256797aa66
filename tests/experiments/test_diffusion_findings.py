"""Verdicts of the diffusion findings page follow the numbers, whichever way they point."""

from __future__ import annotations

import numpy as np
import pandas as pd

from experiments.diffusion.findings import (
    bootstrap_interval,
    bottleneck_finding,
    earlier_finding,
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


def test_earlier_ratio_at_the_first_checkpoint_is_only_a_bound():
    firsts = {(10, s, 50): "mid_block" for s in range(3)}
    finding = earlier_finding(_onsets(firsts, drift=500.0, loss=1500.0), first_checkpoint=500)
    row = finding.table.iloc[0]
    assert row["ratio_median"] == 3.0 and row["drift_onset_at_first_checkpoint"] == 3
    assert finding.verdict == "not supported" and "checkpoint spacing" in finding.why
    late = earlier_finding(_onsets(firsts, drift=1000.0, loss=1500.0), first_checkpoint=500)
    assert late.verdict == "not supported"
    resolved = earlier_finding(_onsets(firsts, drift=1000.0, loss=3500.0), first_checkpoint=500)
    assert resolved.verdict == "supported" and resolved.table.iloc[0]["ratio_median"] == 3.5
    none = earlier_finding(_onsets({(10, 0, 50): None}), first_checkpoint=500)
    assert none.verdict == "inconclusive" and none.table.iloc[0]["no_drift_onset"] == 1


def test_an_onset_without_memorisation_is_membership_not_memorisation():
    firsts = {(10, s, 50): "mid_block" for s in range(2)} | {(100, s, 50): "mid_block" for s in range(2)}
    onsets = _onsets(firsts)
    gaps, memorisation = [], []
    for n, seed, _t in firsts:
        for step in (0, 500, 1000):
            memorised = (step / 1000) * (0.9 if n == 10 else 0.0)
            memorisation.append({"n_train": n, "seed": seed, "step": step, "memorised_fraction": memorised})
            gaps.append({"n_train": n, "seed": seed, "step": step, "t": 50, "block": "mid_block", "gap_z": step / 100})
    finding = tracking_finding(pd.DataFrame(gaps), onsets, pd.DataFrame(memorisation), onset_fraction=0.1)
    assert finding.table.iloc[0]["onsets_without_memorisation"] == 2
    assert finding.verdict in ("not supported", "partly") and "N=100" in finding.why


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
