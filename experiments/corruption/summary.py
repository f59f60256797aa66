"""From raw batch scores to the study's numbers: AUROC/TPR per cell, drift profiles, drift-accuracy correlations.

Everything here is a pure function of the CSVs written by :mod:`experiments.corruption.measure`, so the figures,
the tables and the notebook all read the same numbers.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from experiments.baselines.registry import detector_status
from experiments.corruption.detection import detection_metrics
from experiments.corruption.measure import CHANGED_COLUMN, FOOTING_PREFIX, TAP_PREFIX

METHOD_LABELS: dict[str, str] = {
    "deepdrift_max": "DeepDrift (max)",
    "deepdrift_stouffer": "DeepDrift (Stouffer)",
    "deepdrift_fast": "DeepDrift fast (max)",
    "msp": "MSP",
    "energy": "Energy",
    "mahalanobis": "Mahalanobis",
    "vim": "ViM",
    "knn": "KNN",
    "mmd": "MMD (torchdrift)",
    "ks": "KS (torchdrift)",
}
"""Display names of the registry's detectors (unknown keys are shown as they are)."""

KEYS = ["model", "corruption", "family", "severity", "batch_size", "batch"]


def method_scores(scores: pd.DataFrame) -> pd.DataFrame:
    """Long format of the detectors' batch scores: ``KEYS + [method, score]``."""
    skip = (TAP_PREFIX, FOOTING_PREFIX, CHANGED_COLUMN)
    methods = [c for c in scores.columns if c not in KEYS and not c.startswith(skip)]
    return scores.melt(id_vars=KEYS, value_vars=methods, var_name="method", value_name="score")


def tap_scores(scores: pd.DataFrame, taps: pd.DataFrame) -> pd.DataFrame:
    """Long format of per-tap drift with each tap's label, depth and zone: ``KEYS + [tap, ..., drift]``."""
    columns = [c for c in scores.columns if c.startswith(TAP_PREFIX)]
    long = scores.melt(id_vars=KEYS, value_vars=columns, var_name="tap", value_name="drift").dropna(subset="drift")
    long["tap"] = long["tap"].str.removeprefix(TAP_PREFIX)
    return long.merge(taps, on=["model", "tap"], how="left")


def detection_results(long: pd.DataFrame, by: str = "method", value: str = "score") -> pd.DataFrame:
    """AUROC and TPR at 5% FPR of every corrupted cell against the clean batches of the same model and batch size.

    Args:
        long: long scores (:func:`method_scores` or :func:`tap_scores`), including ``corruption == "clean"``.
        by: the column naming the scorer (``method`` or ``tap``).
        value: the score column (higher: more shifted).
    """
    rows = []
    for (model, scorer, batch_size), group in long.groupby(["model", by, "batch_size"], sort=False):
        clean = group.loc[group["corruption"] == "clean", value].to_numpy()
        shifted = group[group["corruption"] != "clean"]
        for (corruption, family, severity), cell in shifted.groupby(["corruption", "family", "severity"]):
            auroc, tpr = detection_metrics(clean, cell[value].to_numpy())
            rows.append(
                {
                    "model": model,
                    by: scorer,
                    "batch_size": batch_size,
                    "corruption": corruption,
                    "family": family,
                    "severity": severity,
                    "auroc": auroc,
                    "tpr_at_5fpr": tpr,
                    "n_clean": clean.size,
                    "n_shifted": len(cell),
                }
            )
    return pd.DataFrame(rows)


def identity_cells(accuracy: pd.DataFrame, column: str = "changed_share") -> dict[str, list[tuple[str, int]]]:
    """Per model, the ``(corruption, severity)`` cells whose images equal the clean ones (no pixel changed), from
    the accuracy table (``changed_share``) or the raw scores (``pool:changed_share``, with a ``model`` column)."""
    if column not in accuracy.columns:
        return {}
    same = accuracy[(accuracy["corruption"] != "clean") & (accuracy[column] == 0)]
    return {
        str(model): sorted({(str(c), int(s)) for c, s in zip(group["corruption"], group["severity"], strict=True)})
        for model, group in same.groupby("model", sort=False)
    }


def drop_cells(frame: pd.DataFrame, cells: dict[str, list[tuple[str, int]]]) -> pd.DataFrame:
    """``frame`` without the rows of the given ``{model: [(corruption, severity)]}`` cells."""
    if not cells or frame.empty:
        return frame
    keys = set()
    for model, pairs in cells.items():
        keys |= {(model, c, s) for c, s in pairs}
    rows = zip(frame["model"], frame["corruption"], frame["severity"].astype(int), strict=True)
    return frame[[key not in keys for key in rows]]


def identity_note(cells: dict[str, list[tuple[str, int]]]) -> str:
    """A caption sentence naming the cells left out as identities (empty when none)."""
    pairs = sorted({pair for model_cells in cells.values() for pair in model_cells})
    if not pairs:
        return ""
    by_name: dict[str, list[int]] = {}
    for name, severity in pairs:
        by_name.setdefault(name, []).append(severity)
    listed = "; ".join(f"{name} at severities {', '.join(map(str, s))}" for name, s in by_name.items())
    return f" Left out as identities on these images (no pixel changes): {listed}."


def severity_table(results: pd.DataFrame, metric: str = "auroc", by: str = "method") -> pd.DataFrame:
    """Mean ``metric`` over corruptions per model x scorer x batch size (rows) and severity (columns), + mean.

    A cell where the method is undefined (MMD at batch size 1) or degenerate (KS at batch size 1) stays NaN and
    its ``status`` column says which, rather than being scored.
    """
    keys = ["model", by, "batch_size"]
    extra = [c for c in ("label", "depth") if by == "tap" and c in results.columns]
    cells = results.groupby(keys + extra + ["severity"], sort=False, dropna=False)[metric].mean()
    table = cells.unstack("severity")
    table.columns = [f"severity {c}" for c in table.columns]
    table["mean"] = results.groupby(keys + extra, sort=False, dropna=False)[metric].mean()
    table = table.reset_index()
    if by == "method":
        table["status"] = [
            detector_status(m, int(b)) for m, b in zip(table["method"], table["batch_size"], strict=True)
        ]
        table["method"] = table["method"].map(lambda m: METHOD_LABELS.get(m, m))
    if extra:
        table = table.sort_values(["model", "depth", "batch_size"], kind="stable").drop(columns="depth")
    return table


def drift_profile(taps_long: pd.DataFrame, batch_size: int) -> pd.DataFrame:
    """Mean drift per model, tap and corruption x severity at ``batch_size`` (clean: severity 0)."""
    subset = taps_long[taps_long["batch_size"] == batch_size]
    keys = ["model", "tap", "label", "depth", "zone", "corruption", "family", "severity"]
    return subset.groupby(keys, sort=False, dropna=False)["drift"].mean().reset_index()


def accuracy_vs_drift(profile: pd.DataFrame, accuracy: pd.DataFrame) -> pd.DataFrame:
    """Per model and corrupted cell: accuracy drop (clean minus corrupted, in points) and mean drift per zone.

    ``drift_all`` is the mean over every tap; ``drift_<zone>`` the mean over the taps of one zone.
    """
    clean_acc = accuracy[accuracy["corruption"] == "clean"].set_index("model")["accuracy"]
    cells = accuracy[accuracy["corruption"] != "clean"].copy()
    cells["accuracy_drop"] = 100.0 * (cells["model"].map(clean_acc) - cells["accuracy"])
    shifted = profile[profile["corruption"] != "clean"]
    keys = ["model", "corruption", "severity"]
    overall = shifted.groupby(keys)["drift"].mean().rename("drift_all")
    zones = shifted.pivot_table(index=keys, columns="zone", values="drift", aggfunc="mean")
    zones.columns = [f"drift_{z}" for z in zones.columns]
    return cells.merge(overall.reset_index(), on=keys).merge(zones.reset_index(), on=keys)


def drift_accuracy_correlation(cells: pd.DataFrame) -> pd.DataFrame:
    """Spearman correlation of accuracy drop with mean drift (all taps, then each zone), per model."""
    rows = []
    for model, group in cells.groupby("model", sort=False):
        for column in [c for c in cells.columns if c.startswith("drift_")]:
            valid = group[["accuracy_drop", column]].dropna()
            if valid.empty:  # this model has no tap in that zone
                continue
            if len(valid) < 3:
                rho, p_value = np.nan, np.nan
            else:
                rho, p_value = stats.spearmanr(valid["accuracy_drop"], valid[column])
            rows.append(
                {
                    "model": model,
                    "drift of": column.removeprefix("drift_"),
                    "spearman_rho": float(rho),
                    "p_value": float(p_value),
                    "cells": len(valid),
                }
            )
    return pd.DataFrame(rows)


def clean_accuracy_table(metrics: dict[str, dict], accuracy: pd.DataFrame) -> pd.DataFrame:
    """Clean accuracy per model: on the whole held-out split (from training) and on the benchmark's pool."""
    pool = accuracy[accuracy["corruption"] == "clean"].set_index("model")
    rows = []
    for model, info in metrics.items():
        rows.append(
            {
                "model": model,
                "arch": info.get("arch", ""),
                "parameters (M)": info.get("parameters", 0) / 1e6,
                "train steps": info.get("steps"),
                "held-out accuracy": info.get("heldout_accuracy"),
                "pool accuracy": float(pool.loc[model, "accuracy"]) if model in pool.index else np.nan,
                "pool images": int(pool.loc[model, "n_images"]) if model in pool.index else 0,
            }
        )
    return pd.DataFrame(rows)
