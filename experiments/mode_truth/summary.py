"""The study's tables: confusion of family against diagnosed mode, per-mode recall with cluster-bootstrap
intervals over instances, the natural shifts' detection and onset taps, the amplification check and the streams."""

from __future__ import annotations

import numpy as np
import pandas as pd

from deepdrift import FailureMode
from experiments.findings.intervals import (
    clopper_pearson,
    cluster_rate,
    mean_auroc,
    pair_matrix,
    percentile,
    resample_counts,
)
from experiments.mode_truth.perturbations import CLEAN, FAMILIES, HELD_OUT, PRIOR, TRUE_MODE

MODES = [m.value for m in FailureMode]
ALL_MODELS = "all"


def verdicts(batches: pd.DataFrame, instances: pd.DataFrame, tap_labels: pd.DataFrame) -> pd.DataFrame:
    """Batch verdicts joined with their instance's ground truth (``correct``: the family's mode was named) and the
    label of the onset tap the doctor named (``-`` when it named none)."""
    df = batches.merge(instances, on=["model", "instance_id"], how="left", validate="many_to_one")
    labels = tap_labels.rename(columns={"tap": "onset_pred", "label": "onset_label"})
    df = df.merge(labels, on=["model", "onset_pred"], how="left", validate="many_to_one")
    df["onset_label"] = df["onset_label"].fillna("-")
    df["true_mode"] = df["family"].map({f: m.value for f, m in TRUE_MODE.items()})
    df["correct"] = df["mode"] == df["true_mode"]
    df["detected"] = df["mode"] != FailureMode.STABLE.value
    return df


def confusion(df: pd.DataFrame) -> pd.DataFrame:
    """Batches per model, batch size, family and mechanism (rows) and diagnosed mode (columns)."""
    counts = df.groupby(["model", "batch_size", "family", "mechanism", "mode"]).size().unstack("mode", fill_value=0)
    return counts.reindex(columns=MODES, fill_value=0).reset_index()


def _recall_row(part: pd.DataFrame) -> dict:
    per = part.groupby(["model", "instance_id"]).agg(
        hits=("correct", "sum"), det=("detected", "sum"), n=("correct", "size")
    )
    recall, detected = cluster_rate(per["hits"], per["n"]), cluster_rate(per["det"], per["n"])
    wrong = part.loc[~part["correct"], "mode"].value_counts()
    return {
        "instances": len(per), "batches": int(per["n"].sum()),
        "recall": recall.value, "recall_low": recall.low, "recall_high": recall.high,
        "detected": detected.value, "detected_low": detected.low, "detected_high": detected.high,
        "top_other": str(wrong.index[0]) if len(wrong) else "-",
        "top_other_share": float(wrong.iloc[0] / len(part)) if len(wrong) else 0.0,
    }  # fmt: skip


def recall_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per model (and all models pooled), batch size and family: the share of batches diagnosed as the family's
    mode, with a 95% bootstrap interval over instances; the clean control row gives false diagnoses (interval:
    Clopper-Pearson over its batches)."""
    rows = []
    pooled = [((ALL_MODELS, b), part) for b, part in df.groupby("batch_size")]
    for (model, b), part in [*df.groupby(["model", "batch_size"]), *pooled]:
        for family in (*FAMILIES, CLEAN):
            sub = part[part["family"] == family]
            if sub.empty:
                continue
            row = {"model": model, "batch_size": b, "family": family, "true_mode": TRUE_MODE[family].value}
            if family == CLEAN:
                k, n = int(sub["detected"].sum()), len(sub)
                low, high = clopper_pearson(k, n)
                row |= {"instances": 1, "batches": n, "false_diagnoses": k / n, "false_low": low, "false_high": high}
                row |= {"recall": 1 - k / n, "recall_low": 1 - high, "recall_high": 1 - low}
            else:
                row |= _recall_row(sub)
            rows.append(row)
    return pd.DataFrame(rows)


def auroc(clean: np.ndarray, shifted: np.ndarray, seed: int = 0) -> tuple[float, float, float]:
    """AUROC of shifted against clean batch scores (ties halved) with a percentile bootstrap over batches."""
    point = float(pair_matrix(clean, shifted).mean())
    rng = np.random.default_rng(seed)
    weights = resample_counts(len(shifted), rng=rng), resample_counts(len(clean), rng=rng)
    reps = mean_auroc(clean, shifted[None], *weights)
    return (point, *percentile(reps))


def natural_table(df: pd.DataFrame) -> pd.DataFrame:
    """The natural shifts per model and batch size: detection AUROC against the clean control batches, the share
    of batches the doctor flags, the most frequent onset tap, and the most frequent diagnosed mode."""
    rows = []
    for (model, b), part in df.groupby(["model", "batch_size"]):
        clean = part.loc[part["family"] == CLEAN, "score"].to_numpy()
        for shift in (PRIOR, HELD_OUT):
            sub = part[part["mechanism"] == shift]
            if sub.empty or not len(clean):
                continue
            value, low, high = auroc(clean, sub["score"].to_numpy())
            onsets = sub.loc[sub["detected"], "onset_label"].value_counts(normalize=True)
            modes = sub["mode"].value_counts(normalize=True)
            rows.append(
                {"model": model, "batch_size": b, "shift": shift, "instances": sub["instance_id"].nunique(),
                 "batches": len(sub), "auroc": value, "auroc_low": low, "auroc_high": high,
                 "flagged": float(sub["detected"].mean()),
                 "top_onset": onsets.index[0] if len(onsets) else "-",
                 "top_onset_share": float(onsets.iloc[0]) if len(onsets) else 0.0,
                 "top_mode": modes.index[0], "top_mode_share": float(modes.iloc[0])}
            )  # fmt: skip
    return pd.DataFrame(rows)


def onset_table(df: pd.DataFrame) -> pd.DataFrame:
    """Share of flagged batches per onset tap, for the natural shifts (no ground-truth tap exists: where it starts)."""
    sub = df[df["mechanism"].isin([PRIOR, HELD_OUT]) & df["detected"]]
    counts = sub.groupby(["model", "batch_size", "mechanism", "onset_pred", "onset_label"]).size()
    shares = counts / counts.groupby(level=["model", "batch_size", "mechanism"]).transform("sum")
    return shares.rename("share").reset_index().rename(columns={"mechanism": "shift", "onset_pred": "onset_tap"})


def mechanism_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Per model and weight/input mechanism: how far the change reaches the last tap and whether it grows."""
    grouped = summary.groupby(["model", "mechanism"])
    return pd.DataFrame(
        {
            "instances": grouped.size(),
            "median_first_change": grouped["first_change"].median(),
            "median_last_change": grouped["last_change"].median(),
            "median_growth": grouped["growth"].median(),
            "share_growing": grouped["grows"].mean(),
            "median_depth_correlation": grouped["depth_correlation"].median(),
        }
    ).reset_index()


def stream_table(streams: pd.DataFrame) -> pd.DataFrame:
    """Per streamed model: streams alerted, median batches to the first ALERT, ALERTs before the change."""
    rows = []
    for model, part in streams.groupby("model"):
        clean_batches = int(part["pre"].sum())
        low, high = (
            (np.nan, np.nan)
            if not clean_batches
            else clopper_pearson(min(int(part["false_alerts"].sum()), clean_batches), clean_batches)
        )
        rows.append(
            {"model": model, "streams": len(part), "alerted": int(part["delay"].notna().sum()),
             "median_delay": float(part["delay"].median()), "max_delay": float(part["delay"].max()),
             "false_alerts": int(part["false_alerts"].sum()), "clean_batches": clean_batches,
             "false_alert_rate": part["false_alerts"].sum() / clean_batches, "rate_low": low, "rate_high": high,
             "in_alert_at_change": int(part["alert_at_change"].sum())}
        )  # fmt: skip
    return pd.DataFrame(rows)
