"""Figures of the localisation benchmark: onset confusion matrices and detection rate against fault strength."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from experiments.figures import paper_context
from experiments.findings.intervals import cluster_rate

FAULT_SETS = ("development", "held-out")
LOCALISERS = {
    "doctor": "doctor",
    "first_tap": "always first tap",
    "mahalanobis": "Mahalanobis per tap",
    "mmd": "MMD per tap",
}


def _doctor_faults(scored: pd.DataFrame) -> pd.DataFrame:
    """The doctor's verdicts on injected faults (development and held-out sets)."""
    part = scored[scored["kind"] != "none"]
    if "localiser" in part.columns:
        part = part[part["localiser"] == "doctor"]
    if "fault_set" not in part.columns:
        part = part.assign(fault_set="development")
    return part


def confusion_figure(scored: pd.DataFrame, tap_labels: dict[str, list[str]], batch_size: int = 16) -> plt.Figure:
    """Per fault set and model: share of batches whose diagnosed onset tap (columns, "none" = STABLE) is each tap,
    per true onset."""
    part = _doctor_faults(scored)
    part = part[part["batch_size"] == batch_size]
    models = list(dict.fromkeys(part["model"]))
    sets = [s for s in FAULT_SETS if (part["fault_set"] == s).any()]
    with paper_context():
        fig, axes = plt.subplots(
            len(sets), len(models), figsize=(3.2 * len(models), 3.0 * len(sets)), constrained_layout=True,
            squeeze=False,
        )  # fmt: skip
        for (i, fault_set), (j, model) in ((a, b) for a in enumerate(sets) for b in enumerate(models)):
            ax = axes[i][j]
            labels = tap_labels[model]
            sub = part[(part["model"] == model) & (part["fault_set"] == fault_set)]
            n = len(labels)
            counts = np.zeros((n, n + 1))
            for true, pred in zip(sub["onset_true"], sub["onset_pred"], strict=True):
                counts[int(true), n if pred < 0 else int(pred)] += 1
            rows = counts.sum(axis=1, keepdims=True)
            share = np.divide(counts, rows, out=np.full_like(counts, np.nan), where=rows > 0)
            sns.heatmap(
                share,
                ax=ax,
                vmin=0,
                vmax=1,
                cmap="viridis",
                annot=n <= 6,
                fmt=".2f",
                annot_kws={"fontsize": 6},
                cbar=j == len(models) - 1,
                square=False,
                xticklabels=[*labels, "none"],
                yticklabels=labels,
                cbar_kws={"label": "share of batches"},
            )
            ax.set(
                xlabel="diagnosed onset tap",
                ylabel="injected (true onset) tap",
                title=f"{model}, {fault_set} (B={batch_size}, {sub['fault_id'].nunique()} faults)",
            )
            ax.tick_params(axis="x", rotation=90)
            ax.tick_params(axis="y", rotation=0)
    return fig


def detection_figure(scored: pd.DataFrame) -> plt.Figure:
    """The doctor's detection rate against strength level (weakest..strongest per family), one panel per model and
    batch size; development set solid, held-out set dashed."""
    part = _doctor_faults(scored).copy()
    part["level"] = part.groupby(["model", "family"])["strength"].rank(method="dense").astype(int)
    models = list(dict.fromkeys(part["model"]))
    batch_sizes = sorted(part["batch_size"].unique())
    families = sorted(part["family"].unique())
    palette = dict(zip(families, sns.color_palette("tab20", len(families)), strict=True))
    with paper_context():
        fig, axes = plt.subplots(
            len(models),
            len(batch_sizes),
            figsize=(2.6 * len(batch_sizes) + 1.2, 2.2 * len(models)),
            sharex=True,
            sharey=True,
            constrained_layout=True,
            squeeze=False,
        )
        for i, model in enumerate(models):
            for j, batch_size in enumerate(batch_sizes):
                ax = axes[i][j]
                sub = part[(part["model"] == model) & (part["batch_size"] == batch_size)]
                rates = sub.groupby(["fault_set", "family", "level"])["detected"].mean().reset_index()
                for (fault_set, family), curve in rates.groupby(["fault_set", "family"]):
                    held = fault_set != "development"
                    ax.plot(
                        curve["level"], curve["detected"], marker="o", ms=3, lw=1, color=palette[family],
                        ls="--" if held else "-", label=None if held else family,
                    )  # fmt: skip
                ax.set(title=f"{model}, batch {batch_size}", ylim=(-0.03, 1.03))
                if i == len(models) - 1:
                    ax.set_xlabel("fault strength level (1 = weakest)")
                if j == 0:
                    ax.set_ylabel("detection rate (share of batches)")
                sns.despine(ax=ax)
        handles, labels = axes[0][0].get_legend_handles_labels()
        if (part["fault_set"] != "development").any():
            handles += [plt.Line2D([], [], color="grey", lw=1), plt.Line2D([], [], color="grey", lw=1, ls="--")]
            labels += ["development set", "held-out set"]
        fig.legend(handles, labels, loc="outside right center", frameon=False, fontsize=6)
    return fig


def localiser_figure(scored: pd.DataFrame, min_drop: float) -> plt.Figure:
    """Exact onset tap per batch for every localiser, with 95% bootstrap intervals over faults: one panel per
    model (columns) and subset (rows: all faults, >= ``min_drop`` points), grouped by fault set and batch size."""
    faulty = scored[scored["kind"] != "none"]
    subsets = {
        "all faults": faulty,
        f"accuracy change >= {min_drop:g} pts": faulty[faulty["accuracy_drop"].abs() >= min_drop],
    }
    models = list(dict.fromkeys(faulty["model"]))
    groups = [
        (s, b) for s in FAULT_SETS for b in sorted(faulty["batch_size"].unique()) if (faulty["fault_set"] == s).any()
    ]
    names = [n for n in LOCALISERS if (faulty["localiser"] == n).any()]
    colours = dict(zip(names, sns.color_palette("colorblind", len(names)), strict=True))
    width = 0.8 / len(names)
    with paper_context():
        fig, axes = plt.subplots(
            len(subsets), len(models), figsize=(3.0 * len(models) + 1.4, 2.4 * len(subsets)), sharey=True,
            constrained_layout=True, squeeze=False,
        )  # fmt: skip
        for i, (subset, part) in enumerate(subsets.items()):
            for j, model in enumerate(models):
                ax = axes[i][j]
                for k, name in enumerate(names):
                    for g, (fault_set, batch_size) in enumerate(groups):
                        cell = part[
                            (part["model"] == model) & (part["localiser"] == name)
                            & (part["fault_set"] == fault_set) & (part["batch_size"] == batch_size)
                        ]  # fmt: skip
                        x = g + (k - (len(names) - 1) / 2) * width
                        if cell.empty:  # undefined at this batch size (MMD at B=1): marked, not drawn as 0
                            ax.text(x, 0.02, "n/a", rotation=90, ha="center", va="bottom", fontsize=5)
                            continue
                        per_fault = cell.groupby("fault_id")["onset_exact"].agg(["sum", "size"])
                        est = cluster_rate(per_fault["sum"], per_fault["size"])
                        err = [[est.value - est.low], [est.high - est.value]] if est.has_interval else None
                        ax.bar(x, est.value, width, color=colours[name], label=LOCALISERS[name])
                        ax.errorbar(x, est.value, yerr=err, color="black", lw=0.8, capsize=1.5)
                ax.set_xticks(range(len(groups)), [f"{s}\nB={b}" for s, b in groups], fontsize=6)
                ax.set(ylim=(0, 1.02), title=f"{model}: {subset}")
                if j == 0:
                    ax.set_ylabel("exact onset tap (share of batches)")
                sns.despine(ax=ax)
        by_label = {}
        for ax in axes.flat:
            by_label |= dict(zip(*reversed(ax.get_legend_handles_labels()), strict=True))
        fig.legend(by_label.values(), by_label.keys(), loc="outside right center", frameon=False, fontsize=6)
    return fig
