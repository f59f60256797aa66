"""Figures of the streaming benchmark: one stream's MRI timeline and delay-vs-false-alarm curves per method."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from deepdrift import DeepDriftMonitor, plot_drift_timeline
from experiments.figures import paper_context


def timeline_figure(monitor: DeepDriftMonitor, change: int, title: str) -> plt.Figure:
    """``plot_drift_timeline`` of the monitor's history, with the change point marked."""
    with paper_context():
        fig, ax = plt.subplots(figsize=(7.0, 0.32 * len(monitor.taps) + 1.6), constrained_layout=True)
        plot_drift_timeline(monitor.history, ax=ax, config=monitor.config, title=title)
        ax.axvline(change + 0.5, color="#3b8bc8", lw=1.2, ls="--")  # steps are 1-based: batch `change` is step+1
        ax.annotate(
            "change",
            (change + 0.5, -0.5),
            xytext=(3, 2),
            textcoords="offset points",
            color="#3b8bc8",
            fontsize=7,
            annotation_clip=False,
        )
    return fig


def curves_figure(curve: pd.DataFrame, budget: float) -> plt.Figure:
    """Mean delay (misses count as the post-change length) against false alarms per 1000 clean test batches."""
    kinds = list(dict.fromkeys(curve["kind"]))
    models = list(dict.fromkeys(curve["model"]))
    methods = list(dict.fromkeys(curve["method"]))
    palette = dict(zip(methods, sns.color_palette("colorblind", len(methods)), strict=True))
    with paper_context():
        fig, axes = plt.subplots(
            len(models),
            len(kinds),
            figsize=(2.5 * len(kinds) + 1.6, 2.3 * len(models)),
            sharey="row",
            constrained_layout=True,
            squeeze=False,
        )
        for i, model in enumerate(models):
            for j, kind in enumerate(kinds):
                ax = axes[i][j]
                for method in methods:
                    part = curve[(curve["model"] == model) & (curve["kind"] == kind) & (curve["method"] == method)]
                    part = part.sort_values("far_test")
                    far = np.maximum(part["far_test"].to_numpy(), 0.05)  # zero alarms drawn at the axis floor
                    ax.plot(far, part["delay_censored"], marker="o", ms=2.5, lw=1, color=palette[method], label=method)
                ax.axvline(budget, color="grey", lw=0.6, ls=":")
                ax.set_xscale("log")
                ax.set(title=f"{model}: {kind.replace('_', ' ')}")
                if i == len(models) - 1:
                    ax.set_xlabel("false alarms / 1000 clean batches")
                if j == 0:
                    ax.set_ylabel("delay (batches),\na miss = rest of stream")
                sns.despine(ax=ax)
        handles, labels = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncol=min(3, len(methods)), frameon=False, fontsize=7)
    return fig
