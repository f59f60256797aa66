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

    ``delay_censored`` counts a missed change as the rest of the stream after the change (``post`` batches where the
    runs do not carry their own censored delay); ``missed`` counts the changes never detected.
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
                    "streams": len(part),
                    "missed": int(part["delay"].isna().sum()),
                    "detected": part["delay"].notna().mean(),
                    "delay_mean": part["delay"].mean(),
                    "delay_censored": _censored(part, post).mean(),
                }
            )
    return pd.DataFrame(rows)


def _censored(part: pd.DataFrame, post: int | None) -> pd.Series:
    """Each change's delay, a miss counted as the rest of its stream (its own ``delay_censored``, else
    ``batches - change``, else ``post``)."""
    own = part["delay_censored"] if "delay_censored" in part else pd.Series(np.nan, index=part.index)
    if {"batches", "change"} <= set(part.columns):
        own = own.fillna(part["delay"]).fillna(part["batches"] - part["change"])
    return own.fillna(part["delay"]).fillna(np.nan if post is None else post)


def budget_status(order: list[float], chosen: float | None) -> str:
    """'matched' when a setting past the chosen one exceeds the budget, 'not reached' when the grid's most
    sensitive setting is still within it (the comparison is then at fewer false alarms), else 'exceeded'."""
    if chosen is None:
        return "exceeded at every setting"
    return "not reached" if chosen == order[-1] else "matched"


def sensitivity_order(method: str, settings: list[float]) -> list[float]:
    """Settings from the least to the most sensitive (ADWIN: larger delta is more sensitive; else smaller)."""
    return sorted(settings) if method.startswith("ADWIN") else sorted(settings, reverse=True)


def matched(runs: pd.DataFrame, curve: pd.DataFrame, budget: float, post: int | None = None) -> pd.DataFrame:
    """Each method at the most sensitive setting within ``budget`` false alarms per 1000 tuning clean batches.

    ``budget`` says whether the budget was met with a setting to spare ('matched') or the grid ended inside it
    ('not reached'); ``missed`` counts undetected changes and ``delay_censored`` counts each as the rest of the
    stream (``post`` batches where the runs carry no censored delay).
    """
    rows = []
    for (model, method), group in curve.groupby(["model", "method"], sort=False):
        per_setting = group.groupby("setting")["far_tune"].first()
        order = sensitivity_order(method, list(per_setting.index))
        chosen = match_threshold(order, [per_setting[s] for s in order], budget)
        status = budget_status(order, chosen)
        if chosen is None:
            rows.append({"model": model, "method": method, "setting": np.nan, "budget": status, "kind": "-"})
            continue
        sel = runs[(runs["model"] == model) & (runs["method"] == method) & (runs["setting"] == chosen)]
        changes = sel[sel["role"] == "change"]
        for (kind, severity), part in changes.groupby(["kind", "severity"], sort=True):
            rows.append(
                {
                    "model": model,
                    "method": method,
                    "setting": chosen,
                    "budget": status,
                    "kind": kind,
                    "severity": severity,
                    "far_tune": _far(sel, "tune"),
                    "far_test": _far(sel, "test"),
                    "streams": len(part),
                    "missed": int(part["delay"].isna().sum()),
                    "detected": part["delay"].notna().mean(),
                    "delay_median": part["delay"].median(),
                    "delay_mean": part["delay"].mean(),
                    "delay_censored": _censored(part, post).mean(),
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
