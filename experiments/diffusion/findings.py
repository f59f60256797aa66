"""The diffusion study's verdicts on the original's claims, computed from the study's own tables.

Four claims are checked, each with the numbers behind it and a verdict (supported / partly / not supported /
inconclusive):

* **Burning bottleneck**: the mid block drifts first or most under memorisation. A block is named for an (N, t) only
  when it wins in a strict majority of seeds, per feature (the library's drift) and at equal width (the same
  number of channels per block).
* **Drift sees memorisation N x earlier than the loss gap**: loss-gap onset / drift onset per seed, both decided by
  the same null-set test at the same t, noise and null sets, with a bootstrap interval over seeds. Like is
  compared with like: the pooled drift and the best block (chosen on the other seeds) are one test each, as is the
  loss gap; the earliest of all blocks is shown but not judged. A drift onset at the first scored checkpoint only
  bounds the ratio (the checkpoint spacing sets it), and censored seeds are counted, not dropped.
* **Drift tracks memorisation**: rank correlation of each block's gap with the memorised fraction over N and steps,
  and whether drift onsets precede memorisation onsets without false onsets, compared with the loss gap.
* **Drift sees it before a representation diagnostic**: pooled drift against the pooled stable rank of the same
  blocks' features, decided by the same test.

Nothing here is tuned to the outcome: the thresholds are the claims' own words (3x earlier; the mid block) and the
study's significance settings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from experiments.diffusion.comparisons import bootstrap_interval, winners
from experiments.diffusion.detectors import BEST, LOSS, POOLED, RANK

__all__ = [
    "Finding",
    "bootstrap_interval",
    "bottleneck_finding",
    "earlier_finding",
    "external_finding",
    "findings_page",
    "markdown_table",
    "tracking_finding",
]

CLAIMED_RATIO = 3.0
"""The original's headline: drift flags memorisation about three times earlier than the loss gap."""
BOTTLENECK_BLOCK = "mid_block"
LIKE_FOR_LIKE = (POOLED, BEST)


@dataclass(frozen=True)
class Finding:
    """One claim, the numbers behind it and the verdict.

    Attributes:
        claim: the claim in the original's words.
        verdict: ``supported``, ``partly``, ``not supported`` or ``inconclusive``.
        why: one paragraph: what the numbers show and what limits them.
        table: the numbers (one row per N and t, or per block).
    """

    claim: str
    verdict: str
    why: str
    table: pd.DataFrame


def bottleneck_finding(gaps: pd.DataFrame, onsets: pd.DataFrame, equal_width: pd.DataFrame | None = None) -> Finding:
    """Which block drifts first and most per (N, t), named only with a majority of seeds; ``equal_width`` (block gaps
    of the equal-width mean shift) adds the width-controlled winner beside the per-feature one."""
    most = winners(gaps)
    most_equal = winners(equal_width) if equal_width is not None and len(equal_width) else None
    rows = []
    for (n, t), group in most.groupby(["n_train", "t"]):
        seeds = int(group["seed"].nunique())
        firsts = onsets[(onsets["n_train"] == n) & (onsets["t"] == t)]["first_block"].fillna("none")
        row = {
            "n_train": int(n),
            "t": int(t),
            "seeds": seeds,
            "most": _majority(group["block"], seeds),
            "most_votes": _votes(group["block"]),
            "first": _majority(firsts, seeds),
            "first_votes": _votes(firsts),
        }
        if most_equal is not None:
            equal = most_equal[(most_equal["n_train"] == n) & (most_equal["t"] == t)]["block"]
            row |= {"most_equal_width": _majority(equal, seeds), "equal_width_votes": _votes(equal)}
        rows.append(row)
    table = pd.DataFrame(rows)
    cells = pd.concat([table["most"], table["first"]])
    named = cells[cells != "no majority"]
    mid = int((named == BOTTLENECK_BLOCK).sum())
    if named.empty:
        verdict = "inconclusive"
        why = "No block wins first or most in a majority of seeds at any (N, t): the seeds disagree everywhere."
    elif mid == len(named):
        verdict = "supported"
        why = f"Every majority winner (first or most) is the {BOTTLENECK_BLOCK}."
    elif mid:
        verdict = "partly"
        why = f"The {BOTTLENECK_BLOCK} is the majority winner in {mid} of {len(named)} named cases."
    else:
        verdict = "not supported"
        why = (
            f"Where a block wins in a majority of seeds ({len(named)} of the cells below), it is never the "
            f"{BOTTLENECK_BLOCK}: {', '.join(sorted(set(named)))}."
        )
    why += (
        f" The seeds agree on a winner in {len(named)} of {len(cells)} (N, t, first/most) cells; seeds per cell: "
        + ", ".join(sorted({str(s) for s in table["seeds"]}))
        + "."
    )
    if most_equal is not None:
        equal_named = table["most_equal_width"][table["most_equal_width"] != "no majority"]
        why += (
            f" At equal width (the same number of channels per block, a fixed seeded subset, channel means only) "
            f"a block wins most in a majority of seeds in {len(equal_named)} of {len(table)} (N, t) cells"
            + (f" ({', '.join(f'{b} {c}' for b, c in equal_named.value_counts().items())})" if len(equal_named) else "")
            + f"; the {BOTTLENECK_BLOCK} in {int((equal_named == BOTTLENECK_BLOCK).sum())}."
        )
    return Finding("The mid block (bottleneck) drifts first or most under memorisation.", verdict, why, table)


def _majority(blocks: pd.Series, seeds: int) -> str:
    counts = blocks.value_counts()
    if counts.empty or counts.iloc[0] * 2 <= seeds or counts.index[0] == "none":
        return "no majority"
    return str(counts.index[0])


def _votes(blocks: pd.Series) -> str:
    return ", ".join(f"{block} {count}" for block, count in blocks.value_counts().items())


def earlier_finding(ratios: pd.DataFrame, first_checkpoint: int) -> Finding:
    """Loss-gap onset / drift onset per (N, t), judged on the like-for-like detectors only.

    Args:
        ratios: :func:`experiments.diffusion.comparisons.onset_ratios`.
        first_checkpoint: the first trained checkpoint scored: a drift onset there only bounds the ratio.
    """
    like = ratios[ratios["detector"].isin(LIKE_FOR_LIKE)]
    found = like[np.isfinite(like["ratio_median"])]
    if found.empty:
        verdict, why = (
            "inconclusive",
            "No (N, t) cell has an onset of the loss gap or of the pooled or best-block drift.",
        )
    else:
        meets = found[found["ratio_median"] >= CLAIMED_RATIO]
        resolved = meets[meets["at_first_checkpoint"] == 0]
        earlier = int((found["ratio_median"] > 1.0).sum())
        later = int((found["ratio_median"] < 1.0).sum())
        why = (
            f"Like for like (loss gap vs pooled drift and vs the best block, each one test at alpha, same t, noise "
            f"and null sets): {len(found)} of {len(like)} (detector, N, t) cells have an onset in some seed; median "
            f"ratios span {found['ratio_median'].min():.2f}-{found['ratio_median'].max():.2f}; drift is earlier in "
            f"{earlier}, later in {later}, level in {len(found) - earlier - later}. "
        )
        if meets.empty:
            verdict = "not supported"
            why += f"The ratio reaches {CLAIMED_RATIO:g} nowhere."
        elif resolved.empty:
            verdict = "not supported"
            why += (
                f"It reaches {CLAIMED_RATIO:g} only where the drift onset is the first scored checkpoint "
                f"({first_checkpoint}): there the checkpoint spacing sets the ratio."
            )
        else:
            verdict = "supported" if len(resolved) == len(found) else "partly"
            why += f"It reaches {CLAIMED_RATIO:g} with resolved onsets in {len(resolved)} of {len(found)} cells."
    censored = like[["loss_missing", "detector_missing", "neither", "step0"]].sum()
    why += (
        f" Censored seeds (over these cells): loss gap without onset {int(censored['loss_missing'])} (ratio entered "
        f"as a lower bound, the missing onset set to the first step after the last checkpoint), drift without onset "
        f"{int(censored['detector_missing'])} (an upper bound), neither {int(censored['neither'])} (left out), "
        f"drift onset at step 0 {int(censored['step0'])} (left out). Intervals: percentile bootstrap of the median "
        "over seeds. The earliest-of-all-blocks rows are shown for continuity and not judged (the loss gap has no "
        "such multiplicity)."
    )
    return Finding(
        "Drift detects memorisation about 3x earlier than the train/held-out loss gap.", verdict, why, ratios
    )


def tracking_finding(specificity: pd.DataFrame, lead_lag: pd.DataFrame) -> Finding:
    """Does drift follow memorisation, or training-set membership, and does it foretell memorisation better than the
    loss gap?"""
    by_measure = specificity.set_index("measure")
    pooled = by_measure.loc[POOLED] if POOLED in by_measure.index else None
    totals = lead_lag.groupby("detector")[["early", "late", "false_onset", "missed", "quiet"]].sum()
    if pooled is None or not np.isfinite(pooled["spearman_rho"]):
        return Finding(
            _TRACK_CLAIM, "inconclusive", "Too few checkpoints to correlate drift with memorisation.", specificity
        )
    rho, low, high = pooled["spearman_rho"], pooled["rho_low"], pooled["rho_high"]
    blocks = specificity[specificity["measure"].str.startswith("drift[")]
    positive = blocks[blocks["rho_low"] > 0]["measure"].tolist()
    drift_row = totals.loc[POOLED] if POOLED in totals.index else None
    loss_row = totals.loc[LOSS] if LOSS in totals.index else None
    false_onsets = int(drift_row["false_onset"]) if drift_row is not None else 0
    why = (
        f"Pooled drift gap vs memorised fraction over runs and checkpoints: Spearman rho {rho:.2f} [{low:.2f}, "
        f"{high:.2f}]; per block, the interval excludes 0 for {len(positive)} of {len(blocks)} blocks"
        + (f" ({', '.join(p[6:-1] for p in positive)})" if positive else "")
        + ". "
    )
    if drift_row is not None and loss_row is not None:
        why += (
            "Onsets against memorisation onset, summed over t (runs x t): pooled drift early "
            f"{int(drift_row['early'])}, late {int(drift_row['late'])}, false {false_onsets}, missed "
            f"{int(drift_row['missed'])}; loss gap early "
            f"{int(loss_row['early'])}, late {int(loss_row['late'])}, false {int(loss_row['false_onset'])}, missed "
            f"{int(loss_row['missed'])}. "
        )
        better = (drift_row["early"] - drift_row["false_onset"]) - (loss_row["early"] - loss_row["false_onset"])
        why += (
            "Drift onsets foretell memorisation "
            + ("better than" if better > 0 else "no better than" if better == 0 else "worse than")
            + " the loss gap's (early minus false onsets). "
        )
    if false_onsets:
        why += (
            "A false onset is a run that never memorises in which drift still separates training from held-out "
            "images: drift sees training-set membership, and an onset alone does not mean memorisation."
        )
    if low > 0 and not false_onsets:
        verdict = "supported"
    elif low > 0:
        verdict = "partly"
    elif high < 0 or (np.isfinite(low) and rho <= 0):
        verdict = "not supported"
    else:
        verdict = "inconclusive"
    return Finding(_TRACK_CLAIM, verdict, why, specificity)


_TRACK_CLAIM = "Block drift tracks memorisation (not only training-set membership)."


def external_finding(duel: pd.DataFrame, specificity: pd.DataFrame) -> Finding:
    """Pooled drift against the pooled stable rank: which has the earlier onset per run and t?

    Args:
        duel: :func:`experiments.diffusion.comparisons.head_to_head` of ``POOLED`` against ``RANK``.
        specificity: for both measures' rank correlation with the memorised fraction.
    """
    drift_first = int(duel[f"{POOLED} earlier"].sum())
    rank_first = int(duel[f"{RANK} earlier"].sum())
    level = int(duel["same step"].sum())
    by_measure = specificity.set_index("measure")
    why = (
        f"Over runs and t, the pooled drift's onset is earlier in {drift_first}, the stable rank's in {rank_first}, "
        f"the same step in {level}, neither has one in {int(duel['neither'].sum())}. "
    )
    for name in (POOLED, RANK):
        if name in by_measure.index:
            row = by_measure.loc[name]
            why += (
                f"{name} vs memorised fraction: rho {row['spearman_rho']:.2f} "
                f"[{row['rho_low']:.2f}, {row['rho_high']:.2f}]. "
            )
    if drift_first == rank_first == 0 and level == 0:
        verdict = "inconclusive"
    elif rank_first == 0 and drift_first > 0:
        verdict = "supported"
    elif drift_first > rank_first:
        verdict = "partly"
    elif drift_first == rank_first:
        verdict = "inconclusive"
    else:
        verdict = "not supported"
    why += (
        "Both are decided by the same null-set test on the same blocks, checkpoints, noise and sets "
        "(the stable rank two-sided)."
    )
    return Finding(
        "Drift sees train-vs-held-out change before a representation diagnostic (stable rank of block features).",
        verdict,
        why,
        duel,
    )


def findings_page(findings: Sequence[Finding], settings: str, appendix: str = "") -> str:
    """The markdown page: a verdict list, then one section per claim with its table and reasons, then ``appendix``."""
    lines = [
        "# Diffusion memorisation study: findings",
        "",
        "Written by the `diffusion_report` rule from the study's own tables; every number below is computed, none is "
        "typed in. Verdicts: supported / partly / not supported / inconclusive.",
        "",
        f"Settings: {settings}",
        "",
    ]
    lines += [f"- **{f.verdict}**: {f.claim}" for f in findings]
    for finding in findings:
        lines += ["", f"## {finding.claim}", "", f"**Verdict: {finding.verdict}.** {finding.why}", ""]
        lines.append(markdown_table(finding.table))
    if appendix:
        lines += ["", appendix]
    return "\n".join(lines) + "\n"


def markdown_table(table: pd.DataFrame) -> str:
    """A table with whole numbers shown whole and other numbers to two decimals."""

    def cell(value: object) -> object:
        if isinstance(value, (float, np.floating)) and np.isfinite(value):
            return f"{value:.0f}" if float(value).is_integer() and abs(value) < 1e15 else f"{value:.2f}"
        return value

    return table.map(cell).to_markdown(index=False, disable_numparse=True)
