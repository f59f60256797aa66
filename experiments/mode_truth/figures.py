"""Figures of the mode-truth study: family against diagnosed mode, and the amplification check over depth."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from experiments.figures import paper_context
from experiments.mode_truth.mechanism import REACHED
from experiments.mode_truth.perturbations import (
    ALL_LAYERS,
    CLEAN,
    FIRST_LAYER,
    HELD_OUT,
    INPUT,
    MID_SCALE,
    PRIOR,
    TRUE_MODE,
)

ROWS = {
    INPUT: "sensor: pixels",
    FIRST_LAYER: "sensor: first layer",
    PRIOR: "mismatch: class prior",
    HELD_OUT: "mismatch: unseen classes",
    MID_SCALE: "amplification: mid gain",
    ALL_LAYERS: "global: all layers",
    CLEAN: "clean control",
}
MODE_LABELS = {"STABLE": "stable", "SENSOR_FAILURE": "sensor", "SPURIOUS_CORRELATION": "spurious",
               "GEOMETRIC_COLLAPSE": "geometric", "GLOBAL_COLLAPSE": "global"}  # fmt: skip


def confusion_figure(df: pd.DataFrame) -> plt.Figure:
    """Per batch size (rows) and model (columns): share of batches of each mechanism (rows of a panel) diagnosed
    as each mode (columns); the ground-truth mode of a row is boxed."""
    models = list(dict.fromkeys(df["model"]))
    sizes = sorted(df["batch_size"].unique())
    with paper_context(0.8):
        fig, axes = plt.subplots(
            len(sizes), len(models), figsize=(2.6 * len(models) + 1.2, 2.6 * len(sizes) + 0.6),
            constrained_layout=True, squeeze=False, sharey=True, sharex=True,
        )  # fmt: skip
        for (i, b), (j, model) in ((a, c) for a in enumerate(sizes) for c in enumerate(models)):
            sub = df[(df["model"] == model) & (df["batch_size"] == b)]
            rows = [m for m in ROWS if (sub["mechanism"] == m).any()] if len(sub) else []
            share = pd.crosstab(sub["mechanism"], sub["mode"], normalize="index")
            share = share.reindex(index=list(ROWS), columns=list(MODE_LABELS), fill_value=np.nan)
            ax = axes[i][j]
            sns.heatmap(
                share, ax=ax, vmin=0, vmax=1, cmap="viridis", annot=True, fmt=".2f", annot_kws={"size": 6},
                cbar=j == len(models) - 1, cbar_kws={"label": "share of batches"}, linewidths=0.3,
                xticklabels=list(MODE_LABELS.values()), yticklabels=list(ROWS.values()),
            )  # fmt: skip
            for r, mechanism in enumerate(ROWS):
                if mechanism in rows:
                    family = sub.loc[sub["mechanism"] == mechanism, "family"].iloc[0]
                    c = list(MODE_LABELS).index(TRUE_MODE[family].value)
                    ax.add_patch(plt.Rectangle((c, r), 1, 1, fill=False, edgecolor="red", lw=1.5))
            ax.set_title(f"{model}, batch {b}")
            ax.set_xlabel("diagnosed mode" if i == len(sizes) - 1 else "")
            ax.set_ylabel("perturbation (truth boxed)" if j == 0 else "")
            ax.tick_params(axis="x", rotation=45)
    return fig


def mechanism_figure(per_tap: pd.DataFrame) -> plt.Figure:
    """Relative L2 change of each tap's pooled features (perturbed against clean, same images) over relative
    depth: median over instances with the interquartile range, per model and mechanism (taps a perturbation does
    not reach, before its site, are left out)."""
    models = list(dict.fromkeys(per_tap["model"]))
    palette = dict(zip(ROWS, sns.color_palette("colorblind", len(ROWS)), strict=True))
    with paper_context(0.8):
        fig, axes = plt.subplots(
            1, len(models), figsize=(2.8 * len(models), 2.8), constrained_layout=True, squeeze=False, sharey=True
        )
        for ax, model in zip(axes[0], models, strict=True):
            sub = per_tap[per_tap["model"] == model]
            for mechanism, part in sub.groupby("mechanism", sort=False):
                reached = part[part["relative_change"] > REACHED]  # taps before the site see exactly nothing
                q = reached.groupby("depth")["relative_change"].quantile([0.25, 0.5, 0.75]).unstack()
                ax.plot(q.index, q[0.5], marker="o", ms=3, color=palette[mechanism], label=ROWS[mechanism])
                ax.fill_between(q.index, q[0.25], q[0.75], color=palette[mechanism], alpha=0.2, lw=0)
            ax.set_yscale("log")
            ax.set_title(model)
            ax.set_xlabel("relative tap depth")
            ax.set_xlim(-0.05, 1.05)
        axes[0][0].set_ylabel("relative feature change")
        handles, labels = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncol=len(labels), frameon=False)
    return fig
