"""Null-corrected drift gaps, their significance, and onset steps of drift, loss gap and memorisation.

Gap of a block at (N, seed, step, t): the training set's drift minus the mean drift of the M held-out null sets of
the same size, in sigma units; ``gap_z`` divides it by the null sets' spread. Its p-value treats the training set as
one more draw from the null: a one-sided prediction-interval t-test, ``gap / (sd * sqrt(1 + 1/M))`` against Student's t
with M - 1 degrees of freedom (honest with few null sets). A gap is *significant* when that p-value is below
``alpha / n_blocks`` (Bonferroni across blocks) and the training drift is above every null set. An *onset* is the
first checkpoint that starts a run of ``consecutive`` significant checkpoints; a significant last checkpoint alone is
not one (it could be the one chance crossing of a long run).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

_NULL_SD_FLOOR = 0.25  # sigma: a handful of null sets can agree by chance; never divide by less


def drift_gaps(drift: pd.DataFrame, alpha: float) -> pd.DataFrame:
    """One row per (n_train, seed, step, t, block): train drift, null mean/sd/max, gap, gap_z, p_value, significant."""
    keys = ["n_train", "seed", "step", "t", "block", "block_index"]
    per_set = drift.groupby([*keys, "set"], sort=False)["drift"].mean().reset_index()
    train = per_set[per_set["set"] == "train"].set_index(keys)["drift"].rename("train_drift")
    null = per_set[per_set["set"] != "train"].groupby(keys)["drift"]
    frame = pd.concat(
        [train, null.mean().rename("null_mean"), null.std(ddof=1).rename("null_sd"), null.max().rename("null_max")],
        axis=1,
    ).reset_index()
    frame["gap"] = frame["train_drift"] - frame["null_mean"]
    frame["gap_z"] = frame["gap"] / frame["null_sd"].fillna(0.0).clip(lower=_NULL_SD_FLOOR)
    n_null = per_set[per_set["set"] != "train"]["set"].nunique()
    if n_null < 2:
        raise ValueError("the null needs at least two held-out sets (eval.n_null_sets >= 2)")
    frame["p_value"] = stats.t.sf(frame["gap_z"] / np.sqrt(1.0 + 1.0 / n_null), df=n_null - 1)
    n_blocks = frame["block"].nunique()
    frame["significant"] = (frame["p_value"] < alpha / n_blocks) & (frame["train_drift"] > frame["null_max"])
    return frame.sort_values(keys).reset_index(drop=True)


def onset_step(steps: Sequence[int], flags: Sequence[bool], consecutive: int) -> float:
    """First step starting ``consecutive`` significant checkpoints in a row (all of them scored)."""
    steps, flags = list(steps), [bool(f) for f in flags]
    for i, step in enumerate(steps):
        window = flags[i : i + consecutive]
        if len(window) == consecutive and all(window):
            return float(step)
    return float("nan")


def _onsets(frame: pd.DataFrame, keys: list[str], flag: str, consecutive: int, name: str) -> pd.DataFrame:
    rows = []
    for key, group in frame.sort_values("step").groupby(keys, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        rows.append((*key, onset_step(group["step"], group[flag], consecutive)))
    return pd.DataFrame(rows, columns=[*keys, name])


def onset_table(
    gaps: pd.DataFrame,
    loss: pd.DataFrame,
    memorisation: pd.DataFrame,
    alpha: float,
    onset_fraction: float,
    consecutive: int,
) -> pd.DataFrame:
    """Per (N, seed, t): onset of each block's drift, of the loss gap and of memorisation, and their ratios.

    ``ratio_loss_drift`` = loss-gap onset / earliest drift onset: how many times earlier drift flags memorisation
    than the loss gap (> 1 means drift flags first). ``ratio_mem_drift`` does the same for the rise of the
    memorised fraction.
    """
    block_on = _onsets(gaps, ["n_train", "seed", "t", "block"], "significant", consecutive, "drift_onset")
    first = block_on.dropna(subset=["drift_onset"]).sort_values("drift_onset")
    first = first.groupby(["n_train", "seed", "t"]).first().reset_index()
    loss = loss.assign(sig=loss["gap_p"] < alpha)
    loss_on = _onsets(loss, ["n_train", "seed"], "sig", consecutive, "loss_onset")
    mem = memorisation.assign(sig=memorisation["memorised_fraction"] >= onset_fraction)
    mem_on = _onsets(mem, ["n_train", "seed"], "sig", consecutive, "memorisation_onset")
    wide = block_on.pivot_table(
        index=["n_train", "seed", "t"], columns="block", values="drift_onset", dropna=False
    ).reset_index()
    wide.columns.name = None
    order = gaps.drop_duplicates("block").sort_values("block_index")["block"].tolist()
    wide = wide[["n_train", "seed", "t", *order]].rename(columns={b: f"onset[{b}]" for b in order})
    out = wide.merge(
        first.rename(columns={"block": "first_block", "drift_onset": "drift_onset"}),
        on=["n_train", "seed", "t"],
        how="left",
    )
    out = out.merge(loss_on, on=["n_train", "seed"]).merge(mem_on, on=["n_train", "seed"])
    out["ratio_loss_drift"] = out["loss_onset"] / out["drift_onset"]
    out["ratio_mem_drift"] = out["memorisation_onset"] / out["drift_onset"]
    return out.sort_values(["n_train", "t", "seed"]).reset_index(drop=True)


def bottleneck_table(gaps: pd.DataFrame, onsets: pd.DataFrame, geometry: pd.DataFrame) -> pd.DataFrame:
    """Per (N, t): which block separates first (earliest onset) and most (largest gap_z at the last checkpoint).

    Counts over seeds, so a block "wins" only as often as it does; block width and resolution are listed beside it.
    """
    last = gaps[gaps["step"] == gaps.groupby(["n_train", "seed"])["step"].transform("max")]
    most = last.loc[last.groupby(["n_train", "seed", "t"])["gap_z"].idxmax(), ["n_train", "seed", "t", "block"]]
    rows = []
    for (n, t), group in most.groupby(["n_train", "t"]):
        firsts = onsets[(onsets["n_train"] == n) & (onsets["t"] == t)]["first_block"].dropna()
        top = group["block"].value_counts()
        rows.append(
            {
                "n_train": n,
                "t": t,
                "seeds": int(group["seed"].nunique()),
                "most_block": top.index[0],
                "most_count": int(top.iloc[0]),
                "first_block": firsts.value_counts().index[0] if len(firsts) else "none",
                "first_count": int(firsts.value_counts().iloc[0]) if len(firsts) else 0,
                "mid_block_gap_z": float(
                    last[(last["n_train"] == n) & (last["t"] == t) & (last["block"] == "mid_block")]["gap_z"].mean()
                ),
            }
        )
    table = pd.DataFrame(rows)
    geo = geometry.drop_duplicates("block").set_index("block")
    table["most_block_shape"] = [_shape(geo, b) for b in table["most_block"]]
    return table


def _shape(geo: pd.DataFrame, block: str) -> str:
    if block not in geo.index:
        return ""
    row = geo.loc[block]
    return f"{int(row['channels'])}ch {int(row['height'])}x{int(row['width'])}"
