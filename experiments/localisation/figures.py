"""Figures of the localisation benchmark: onset confusion matrices and detection rate against fault strength."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from experiments.figures import paper_context


def confusion_figure(scored: pd.DataFrame, tap_labels: dict[str, list[str]], batch_size: int = 16) -> plt.Figure:
    """Per model: share of batches whose diagnosed onset tap (columns, "none" = STABLE) is each tap, per true onset."""
    part = scored[(scored["batch_size"] == batch_size) & (scored["kind"] != "none")]
    models = list(dict.fromkeys(part["model"]))
    with paper_context():
        fig, axes = plt.subplots(
            1, len(models), figsize=(3.2 * len(models), 3.0), constrained_layout=True, squeeze=False
        )
        for ax, model in zip(axes[0], models, strict=True):
            labels = tap_labels[model]
            sub = part[part["model"] == model]
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
                cbar=ax is axes[0][-1],
                square=False,
                xticklabels=[*labels, "none"],
                yticklabels=labels,
                cbar_kws={"label": "share of batches"},
            )
            ax.set(
                xlabel="diagnosed onset tap",
                ylabel="injected (true onset) tap",
                title=f"{model} (B={batch_size}, {sub['fault_id'].nunique()} faults)",
            )
            ax.tick_params(axis="x", rotation=90)
            ax.tick_params(axis="y", rotation=0)
    return fig


def detection_figure(scored: pd.DataFrame) -> plt.Figure:
    """Detection rate against strength level (weakest..strongest per family), one panel per model and batch size."""
    part = scored[scored["kind"] != "none"].copy()
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
                rates = sub.groupby(["family", "level"])["detected"].mean().reset_index()
                for family, curve in rates.groupby("family"):
                    ax.plot(
                        curve["level"], curve["detected"], marker="o", ms=3, lw=1, color=palette[family], label=family
                    )
                ax.set(title=f"{model}, batch {batch_size}", ylim=(-0.03, 1.03))
                if i == len(models) - 1:
                    ax.set_xlabel("fault strength level (1 = weakest)")
                if j == 0:
                    ax.set_ylabel("detection rate (share of batches)")
                sns.despine(ax=ax)
        handles, labels = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside right center", frameon=False, fontsize=6)
    return fig
