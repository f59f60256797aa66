"""Every train-vs-held-out detector of the study, decided by one procedure: the held-out null sets' test.

Each detector reduces a checkpoint at noise level t to one value per scored set (the training set and the M
held-out null sets, all noised with the same paired noise). The training set's value is then tested as one more draw
from the null sets (:func:`null_test`: a prediction-interval t-test, M - 1 degrees of freedom), at level ``alpha``
for a single test and ``alpha / blocks`` (Bonferroni) where a detector takes the earliest of the blocks. An onset is
the first of ``consecutive`` significant checkpoints (:func:`experiments.diffusion.onset.onset_step`).

Detectors (one test each unless said):

* ``loss gap``: held-out minus training denoising loss at the drift's t, noise and null sets (equal footing).
* ``drift, pooled``: the mean over blocks of each set's drift (sigma units).
* ``drift, best block``: the block with the largest final gap z in the *other* seeds of the same N and t
  (leave-one-seed-out, so the choice never sees the seed it is scored on).
* ``drift, any block``: the earliest block, Bonferroni over blocks (the rule of the original comparison).
* ``stable rank, pooled``: the mean over blocks of the stable rank of channel-mean features; two-sided, since
  memorisation may collapse or spread the representation.
* ``loss gap, random t``: the original loss gap (random timesteps, its own bootstrap); not on equal footing, kept
  for reference.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from experiments.diffusion.onset import onset_step

RUN_KEYS = ["n_train", "seed", "t", "step"]
LOSS = "loss gap"
POOLED = "drift, pooled"
BEST = "drift, best block"
ANY = "drift, any block"
RANK = "stable rank, pooled"
LOSS_RANDOM_T = "loss gap, random t"
DETECTORS: tuple[str, ...] = (LOSS, POOLED, BEST, ANY, RANK, LOSS_RANDOM_T)
DRIFT_SD_FLOOR = 0.25  # sigma: a handful of null sets can agree by chance; never divide by less (drift only)


def set_values(drift: pd.DataFrame) -> pd.DataFrame:
    """Per (run, t, step, set, block): every measured column averaged over noise draws."""
    columns = [c for c in ("drift", "loss", "stable_rank", "mean_shift_k") if c in drift.columns]
    keys = [*RUN_KEYS, "set", "block", "block_index"]
    return drift.groupby(keys, sort=False)[columns].mean().reset_index()


def null_test(
    values: pd.DataFrame, keys: Sequence[str], column: str, alpha: float, two_sided: bool = False, sd_floor: float = 0.0
) -> pd.DataFrame:
    """Test the training set's ``column`` against the null sets' per ``keys``.

    Args:
        values: one row per key and ``set`` (``train`` or ``null<j>``).
        alpha: the level of this one test (divide it yourself for a Bonferroni family).
        two_sided: also flag a training value below every null set (stable rank); else only above.
        sd_floor: lower bound of the null sd (in the column's unit).

    Returns:
        Per key: train, null_mean, null_sd, null_min, null_max, gap, gap_z, p_value, significant.
    """
    keys = list(keys)
    is_train = values["set"] == "train"
    null = values[~is_train].groupby(keys)[column]
    n_null = int(values[~is_train]["set"].nunique())
    if n_null < 2:
        raise ValueError("the null needs at least two held-out sets (eval.n_null_sets >= 2)")
    frame = pd.concat(
        [
            values[is_train].set_index(keys)[column].rename("train"),
            null.mean().rename("null_mean"),
            null.std(ddof=1).rename("null_sd"),
            null.min().rename("null_min"),
            null.max().rename("null_max"),
        ],
        axis=1,
    ).reset_index()
    frame["gap"] = frame["train"] - frame["null_mean"]
    sd = frame["null_sd"].fillna(0.0).clip(lower=max(sd_floor, 1e-12))
    frame["gap_z"] = frame["gap"] / sd
    scaled = frame["gap_z"] / np.sqrt(1.0 + 1.0 / n_null)
    if two_sided:
        frame["p_value"] = np.minimum(1.0, 2.0 * stats.t.sf(scaled.abs(), df=n_null - 1))
        outside = (frame["train"] > frame["null_max"]) | (frame["train"] < frame["null_min"])
    else:
        frame["p_value"] = stats.t.sf(scaled, df=n_null - 1)
        outside = frame["train"] > frame["null_max"]
    frame["significant"] = (frame["p_value"] < alpha) & outside
    return frame


def block_tests(values: pd.DataFrame, column: str, alpha: float, two_sided: bool = False) -> pd.DataFrame:
    """Per-block tests of ``column`` at ``alpha / blocks`` (Bonferroni across blocks)."""
    n_blocks = values["block"].nunique()
    floor = DRIFT_SD_FLOOR if column == "drift" else 0.0
    keys = [*RUN_KEYS, "block", "block_index"]
    return null_test(values, keys, column, alpha / n_blocks, two_sided, floor)


def pooled_test(values: pd.DataFrame, column: str, alpha: float, two_sided: bool = False) -> pd.DataFrame:
    """One test per checkpoint of the mean over blocks of ``column`` (each set's value is its block average)."""
    pooled = values.groupby([*RUN_KEYS, "set"])[column].mean().reset_index()
    floor = DRIFT_SD_FLOOR if column == "drift" else 0.0
    return null_test(pooled, RUN_KEYS, column, alpha, two_sided, floor)


def best_blocks(block_gaps: pd.DataFrame) -> pd.DataFrame:
    """Per (N, seed, t): the block with the largest mean final-checkpoint gap z over the *other* seeds (NaN when
    there is no other seed)."""
    last = block_gaps[block_gaps["step"] == block_gaps.groupby(["n_train", "seed"])["step"].transform("max")]
    rows = []
    for (n, t), group in last.groupby(["n_train", "t"]):
        for seed in sorted(group["seed"].unique()):
            others = group[group["seed"] != seed]
            best = others.groupby("block")["gap_z"].mean().idxmax() if len(others) else None
            rows.append((n, seed, t, best))
    return pd.DataFrame(rows, columns=["n_train", "seed", "t", "best_block"])


def detector_flags(drift: pd.DataFrame, loss_random_t: pd.DataFrame, alpha: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Significance of every detector per (N, seed, t, step), and the per-block drift tests behind them.

    Returns:
        (flags: one row per detector and checkpoint with ``detector``, ``gap_z``, ``significant``;
        block gaps: :func:`block_tests` of the drift).
    """
    values = set_values(drift)
    block_gaps = block_tests(values, "drift", alpha)
    frames = []
    one_block = values[values["block_index"] == values["block_index"].min()].assign(neg_loss=lambda f: -f["loss"])
    frames.append(null_test(one_block, RUN_KEYS, "neg_loss", alpha).assign(detector=LOSS))
    frames.append(pooled_test(values, "drift", alpha).assign(detector=POOLED))
    best = best_blocks(block_gaps)
    # the best block is tested alone, at alpha (not alpha / blocks): recompute its flag on the raw values
    chosen_values = values.merge(best, on=["n_train", "seed", "t"])
    chosen_values = chosen_values[chosen_values["block"] == chosen_values["best_block"]]
    if len(chosen_values):
        frames.append(null_test(chosen_values, RUN_KEYS, "drift", alpha, sd_floor=DRIFT_SD_FLOOR).assign(detector=BEST))
    frames.append(
        block_gaps.groupby(RUN_KEYS)
        .agg(gap_z=("gap_z", "max"), significant=("significant", "any"))
        .reset_index()
        .assign(detector=ANY)
    )
    frames.append(pooled_test(values, "stable_rank", alpha, two_sided=True).assign(detector=RANK))
    ts = values[["n_train", "seed", "t"]].drop_duplicates()
    original = loss_random_t.assign(
        significant=loss_random_t["gap_p"] < alpha,
        gap_z=loss_random_t["loss_gap"] / ((loss_random_t["gap_hi"] - loss_random_t["gap_lo"]) / 3.92),
    )[["n_train", "seed", "step", "gap_z", "significant"]]
    frames.append(original.merge(ts, on=["n_train", "seed"]).assign(detector=LOSS_RANDOM_T))
    flags = pd.concat([f[[*RUN_KEYS, "detector", "gap_z", "significant"]] for f in frames], ignore_index=True)
    return flags.sort_values(["detector", *RUN_KEYS]).reset_index(drop=True), block_gaps


def detector_onsets(flags: pd.DataFrame, consecutive: int) -> pd.DataFrame:
    """Onset step per (detector, N, seed, t); NaN when the detector never has ``consecutive`` significant
    checkpoints in a row."""
    rows = []
    for (det, n, seed, t), group in flags.sort_values("step").groupby(["detector", "n_train", "seed", "t"]):
        rows.append((det, n, seed, t, onset_step(group["step"], group["significant"], consecutive)))
    return pd.DataFrame(rows, columns=["detector", "n_train", "seed", "t", "onset"])


def memorisation_onsets(memorisation: pd.DataFrame, onset_fraction: float, consecutive: int) -> pd.DataFrame:
    """Per (N, seed): the first of ``consecutive`` checkpoints with memorised fraction >= ``onset_fraction``."""
    rows = []
    for (n, seed), group in memorisation.sort_values("step").groupby(["n_train", "seed"]):
        flags = group["memorised_fraction"] >= onset_fraction
        rows.append((n, seed, onset_step(group["step"], flags, consecutive)))
    return pd.DataFrame(rows, columns=["n_train", "seed", "memorisation_onset"])


def censored_ratio(reference: float, detector: float, horizon: float) -> tuple[float, str]:
    """``reference / detector`` onset with its censoring status.

    A missing onset enters at ``horizon`` (the first checkpoint after the last one scored): a missing reference
    onset makes the ratio a lower bound (``'>='``), a missing detector onset an upper bound (``'<='``); both missing
    gives NaN (``'neither'``), and a detector onset at step 0 (before training) gives NaN (``'step 0'``).
    """
    ref_found, det_found = np.isfinite(reference), np.isfinite(detector)
    if not ref_found and not det_found:
        return float("nan"), "neither"
    if det_found and detector == 0:
        return float("nan"), "step 0"
    ref = reference if ref_found else horizon
    det = detector if det_found else horizon
    if ref == 0:
        return float("nan"), "step 0"
    status = "both" if ref_found and det_found else (">=" if det_found else "<=")
    return float(ref / det), status
