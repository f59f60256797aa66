"""Training-seed replicates inside the findings: each repeated headline's mean over independently trained models,
for the claims whose numbers the replicate study measures again (claim 1: clean exceedance of 3 sigma; claim 2:
held-out onset accuracy and clean false diagnoses; claim 4: DeepDrift against the best peer statistic)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import pandas as pd

from experiments.findings.finding import Table
from experiments.findings.intervals import Estimate
from experiments.replicates.detection import DIFFERENCES, SAME_LAYERS
from experiments.replicates.summary import FALSE_DIAGNOSES, ONSET_ALL, ONSET_HARMFUL, SIGMA

SIGMA_METRICS: tuple[tuple[str, int], ...] = ((SIGMA, 1), (SIGMA, 16))
LOCALISATION_METRICS: tuple[tuple[str, int], ...] = (
    (ONSET_HARMFUL, 16),
    (ONSET_ALL, 16),
    (ONSET_ALL, 1),
    (FALSE_DIAGNOSES, 16),
)
"""(metric label or its ``{drop}`` template, batch size) per claim, in table order."""


def _matches(frame: pd.DataFrame, metric: str) -> pd.Series:
    if "{drop" in metric:
        return frame["metric"].str.startswith(metric.split("{", 1)[0])
    return frame["metric"] == metric


def seed_rows(summary: pd.DataFrame, metrics: Sequence[tuple[str, int]]) -> list[dict[str, object]]:
    """One row per architecture and metric: seeds, each seed's value, and the mean with its nested interval."""
    rows = []
    for metric, batch_size in metrics:
        part = summary[_matches(summary, metric) & (summary["batch_size"] == batch_size)]
        percent = metric == FALSE_DIAGNOSES
        for _, row in part.iterrows():
            rows.append(
                {
                    "architecture": row["architecture"],
                    "metric": row["metric"],
                    "batch size": int(batch_size),
                    "seeds": int(row["seeds"]),
                    "per seed": row["per_seed"],
                    "mean over seeds": Estimate(
                        float(row["mean"]),
                        float(row["low"]),
                        float(row["high"]),
                        percent=percent,
                        digits=3 if percent else 2,
                    ),
                }
            )
    return rows


def seed_table(summary: pd.DataFrame | None, metrics: Sequence[tuple[str, int]]) -> tuple[Table, ...]:
    """The claim's replicate table (none without replicates)."""
    if summary is None or summary.empty:
        return ()
    rows = seed_rows(summary, metrics)
    if not rows:
        return ()
    caption = (
        "Independently trained models of one recipe (another training seed each; rule replicates): each seed's value "
        "and the mean over seeds with a 95% nested bootstrap interval (seeds, then calibration splits or faults, "
        "then batches). The sigma check draws its own calibration splits, so a study model's value here differs "
        "from the table above by calibration-split variation."
    )
    return (Table(caption, pd.DataFrame(rows)),)


def seed_note(summary: pd.DataFrame | None, models: Sequence[str], covers: str) -> str:
    """Which architectures have replicates and which have one trained model, whose intervals cover only ``covers``
    (e.g. "calibration splits and batches")."""
    if summary is None or summary.empty:
        return f"One trained model per architecture: the intervals cover {covers}, not training seeds."
    seeds: Mapping[str, int] = summary.groupby("architecture", sort=False)["seeds"].max().to_dict()
    covered = ", ".join(f"{arch} ({n} models)" for arch, n in seeds.items())
    single = [m for m in models if m not in seeds]
    tail = (
        f" {', '.join(single)}: one trained model each, so their intervals cover {covers}, not training seeds."
        if single
        else ""
    )
    return f"Training seeds: replicated for {covered}; the replicate table gives the spread over seeds.{tail}"


def readme_onset_notes(
    summary: pd.DataFrame | None, quoted: Mapping[str, float], batch_size: int, rounding: float
) -> tuple[str, ...]:
    """Per replicated architecture with a README onset figure (held-out, harmful faults, ``batch_size``): does the
    figure lie below, within or above the interval of the mean over seeds (``rounding``: the README's precision)?"""
    if summary is None or summary.empty:
        return ()
    harmful = summary[_matches(summary, ONSET_HARMFUL) & (summary["batch_size"] == batch_size)]
    notes = []
    for _, row in harmful.iterrows():
        figure = quoted.get(str(row["architecture"]))
        if figure is None:
            continue
        if figure < row["low"] - rounding:
            where = "lies below"
        elif figure > row["high"] + rounding:
            where = "lies above"
        else:
            where = "lies within"
        drop = re.search(r">= ([0-9.]+) pts", str(row["metric"]))
        notes.append(
            f"{row['architecture']}: the README's {figure:.2f} (held-out set, >= {drop[1] if drop else '?'} pts, "
            f"B={batch_size}) {where} the interval of the mean over {int(row['seeds'])} training seeds, "
            f"{row['mean']:.2f} [{row['low']:.2f}, {row['high']:.2f}] (seeds {row['per_seed']})."
        )
    return tuple(notes)


def detection_seed_table(detection: pd.DataFrame | None) -> tuple[Table, ...]:
    """Claim 4's replicate table (none without replicated corruption models): per group and batch size, DeepDrift
    minus the best peer on the same layers and against the peers as shipped, per seed and as the mean over seeds."""
    if detection is None or detection.empty:
        return ()
    part = detection[detection["quantity"].isin(DIFFERENCES)]
    rows = [
        {
            "architecture": row["architecture"],
            "batch size": int(row["batch_size"]),
            "difference": row["quantity"],
            "seeds": int(row["seeds"]),
            "per seed (best peer)": row["per_seed"],
            "mean over seeds": Estimate(float(row["mean"]), float(row["low"]), float(row["high"])),
            "seeds above / below 0": f"{int(row['seeds above 0'])} / {int(row['seeds below 0'])}",
        }
        for _, row in part.iterrows()
    ]
    caption = (
        "Independently trained models of one recipe (another training seed each; rule replicates_detection): "
        "DeepDrift's mean AUROC minus the best peer statistic's (chosen per seed), each seed's 95% paired "
        "bootstrap over batches, and the mean over seeds with a nested interval (seeds, then batches); a seed is "
        "above / below 0 when its interval excludes zero."
    )
    return (Table(caption, pd.DataFrame(rows)),)


def detection_seed_note(detection: pd.DataFrame | None, models: Sequence[str]) -> str:
    """Which corruption models are replicated over training seeds, and what the same-layer gap does across them."""
    if detection is None or detection.empty:
        return "One trained model per architecture: the intervals cover batches, not training seeds."
    same = detection[detection["quantity"] == SAME_LAYERS]
    seeds = same.groupby("architecture", sort=False)["seeds"].max().to_dict()
    parts = [
        f"{r['architecture']} B={int(r['batch_size'])}: {r['mean']:+.3f} [{r['low']:+.3f}, {r['high']:+.3f}], "
        f"{int(r['seeds above 0'])} of {int(r['seeds'])} seeds above 0 and {int(r['seeds below 0'])} below"
        for _, r in same.iterrows()
    ]
    single = [m for m in models if m not in seeds]
    tail = f" {', '.join(single)}: one trained model each." if single else ""
    covered = ", ".join(f"{arch} ({n} models)" for arch, n in seeds.items())
    return (
        f"Training seeds: replicated for {covered}. DeepDrift minus the best peer on the same layers, mean over "
        f"seeds: {'; '.join(parts)}.{tail}"
    )
