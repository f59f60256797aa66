"""Tables of the streaming benchmark: delay vs false alarms per setting, at matched budgets, and per stream kind."""

from __future__ import annotations

import numpy as np
import pandas as pd

from experiments.streams.metrics import false_alarms_per_1000, match_threshold


def _far(df: pd.DataFrame, role: str) -> float:
    part = df[df["role"] == role]
    return false_alarms_per_1000(int(part["events"].sum()), int(part["batches"].sum())) if len(part) else np.nan


def curves(runs: pd.DataFrame, post: int) -> pd.DataFrame:
    """Per model, method and setting: false alarms (tuning / test clean streams), and delay per stream kind.

    ``delay_censored`` counts a missed change as the whole post-change length (``post`` batches).
    """
    rows = []
    for (model, method, setting), group in runs.groupby(["model", "method", "setting"], sort=False):
        changes = group[group["role"] == "change"]
        for kind, part in changes.groupby("kind", sort=False):
            rows.append(
                {
                    "model": model,
                    "method": method,
                    "setting": setting,
                    "kind": kind,
                    "far_tune": _far(group, "tune"),
                    "far_test": _far(group, "test"),
                    "detected": part["delay"].notna().mean(),
                    "delay_mean": part["delay"].mean(),
                    "delay_censored": part["delay"].fillna(post).mean(),
                }
            )
    return pd.DataFrame(rows)


def sensitivity_order(method: str, settings: list[float]) -> list[float]:
    """Settings from the least to the most sensitive (ADWIN: larger delta is more sensitive; else smaller)."""
    return sorted(settings) if method.startswith("ADWIN") else sorted(settings, reverse=True)


def matched(runs: pd.DataFrame, curve: pd.DataFrame, budget: float) -> pd.DataFrame:
    """Each method at the most sensitive setting within ``budget`` false alarms per 1000 tuning clean batches."""
    rows = []
    for (model, method), group in curve.groupby(["model", "method"], sort=False):
        per_setting = group.groupby("setting")["far_tune"].first()
        order = sensitivity_order(method, list(per_setting.index))
        chosen = match_threshold(order, [per_setting[s] for s in order], budget)
        if chosen is None:
            rows.append({"model": model, "method": method, "setting": np.nan, "kind": "-"})
            continue
        sel = runs[(runs["model"] == model) & (runs["method"] == method) & (runs["setting"] == chosen)]
        changes = sel[sel["role"] == "change"]
        for (kind, severity), part in changes.groupby(["kind", "severity"], sort=True):
            rows.append(
                {
                    "model": model,
                    "method": method,
                    "setting": chosen,
                    "kind": kind,
                    "severity": severity,
                    "far_tune": _far(sel, "tune"),
                    "far_test": _far(sel, "test"),
                    "streams": len(part),
                    "detected": part["delay"].notna().mean(),
                    "delay_median": part["delay"].median(),
                    "delay_mean": part["delay"].mean(),
                }
            )
    return pd.DataFrame(rows)


def deepdrift_table(runs: pd.DataFrame, theta: float) -> pd.DataFrame:
    """The default monitor per stream kind, corruption and severity: delay, warnings and their lead over ALERT."""
    part = runs[runs["method"].str.startswith("DeepDrift") & (runs["setting"] == theta) & (runs["role"] == "change")]
    table = part.groupby(["model", "kind", "corruption", "severity"], sort=True).agg(
        streams=("delay", "size"),
        detected=("delay", lambda d: d.notna().mean()),
        delay_median=("delay", "median"),
        delay_max=("delay", "max"),
        warned_first=("warning_lead", lambda w: (w > 0).mean()),
        lead_median=("warning_lead", "median"),
    )
    return table.reset_index()
