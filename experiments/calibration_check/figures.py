"""Figures of the calibration check: QQ-plots of clean drift against N(0, 1) per batch size."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from scipy import stats

from experiments.figures import paper_context


def qq_figure(clean: pd.DataFrame) -> plt.Figure:
    """One panel per batch size; one line per model (all taps pooled), with the 3-sigma alert line."""
    batch_sizes = sorted(clean["batch_size"].unique())
    models = list(dict.fromkeys(clean["model"]))
    palette = dict(zip(models, sns.color_palette("colorblind", len(models)), strict=True))
    with paper_context():
        fig, axes = plt.subplots(
            1,
            len(batch_sizes),
            figsize=(2.3 * len(batch_sizes), 2.4),
            sharey=True,
            constrained_layout=True,
            squeeze=False,
        )
        for ax, batch_size in zip(axes[0], batch_sizes, strict=True):
            for model in models:
                drift = np.sort(clean.query("model == @model and batch_size == @batch_size")["drift"].to_numpy())
                theory = stats.norm.ppf((np.arange(drift.size) + 0.5) / drift.size)
                ax.plot(theory, drift, lw=1.2, color=palette[model], label=model)
            lim = (-4.2, 4.2)
            ax.plot(lim, lim, color="black", lw=0.6, ls="--")
            ax.axhline(3.0, color="#c8423b", lw=0.7, ls=":")
            ax.set(xlim=lim, ylim=(-4.5, 6), title=f"batch size {batch_size}", xlabel="N(0, 1) quantile")
            sns.despine(ax=ax)
        axes[0][0].set_ylabel(r"clean drift quantile ($\sigma$)")
        axes[0][-1].legend(frameon=False, fontsize=7, loc="upper left")
    return fig
