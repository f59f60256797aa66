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


def tail_figure(tail: pd.DataFrame, sizes: pd.DataFrame) -> plt.Figure:
    """Left: clean exceedance of 2 / 3 / 3.5 sigma as a multiple of the normal tail per model and batch size, with
    95% intervals and the 2x acceptance line. Right: the 3-sigma multiple against calibration size."""
    models = list(dict.fromkeys(tail["model"]))
    palette = dict(zip(models, sns.color_palette("colorblind", len(models)), strict=True))
    levels = [("2", "2", 0.35), ("3", "3", 0.7), ("3_5", "3.5", 1.0)]
    with paper_context():
        fig, axes = plt.subplots(
            1, 2, figsize=(7.6, 2.8), constrained_layout=True, gridspec_kw={"width_ratios": (1.35, 1.0)}
        )
        ax = axes[0]
        cells = list(tail[["model", "batch_size"]].itertuples(index=False, name=None))
        width = 0.8 / len(levels)
        for i, (tag, label, alpha) in enumerate(levels):
            x = np.arange(len(cells)) + (i - 1) * width
            y = tail[f"ratio_{tag}"].to_numpy()
            err = [y - tail[f"ratio_{tag}_lo"].to_numpy(), tail[f"ratio_{tag}_hi"].to_numpy() - y]
            ax.bar(x, y, width=width * 0.9, color=[palette[m] for m, _ in cells], alpha=alpha, edgecolor="none")
            ax.errorbar(x, y, yerr=err, fmt="none", ecolor="black", elinewidth=0.6, capsize=1.5)
            ax.bar([np.nan], [np.nan], color="grey", alpha=alpha, label=rf"{label} $\sigma$")
        ax.axhline(1.0, color="black", lw=0.6, ls="--")
        ax.axhline(2.0, color="#c8423b", lw=0.8, ls=":", label="2x bar")
        ax.set_xticks(np.arange(len(cells)), [f"{m}\nB={b}" for m, b in cells], fontsize=5.5)
        ax.set(ylabel="clean exceedance / normal tail", title="clean exceedance by sigma level")
        ax.legend(frameon=False, fontsize=6, loc="upper right", ncol=2)
        sns.despine(ax=ax)
        ax = axes[1]
        if len(sizes):
            styles = ("-", "--", ":", "-.")
            batch_sizes = sorted(sizes["batch_size"].unique())
            for (model, batch_size), group in sizes.groupby(["model", "batch_size"], sort=False):
                group = group.sort_values("n_calib")
                ax.errorbar(
                    group["n_calib"],
                    group["ratio_3"],
                    yerr=[group["ratio_3"] - group["ratio_3_lo"], group["ratio_3_hi"] - group["ratio_3"]],
                    color=palette.get(model, "grey"),
                    ls=styles[batch_sizes.index(batch_size) % len(styles)],
                    marker="o",
                    ms=2.5,
                    lw=1.0,
                    capsize=1.5,
                    label=f"{model} B={batch_size}",
                )
            ticks = sorted(sizes["n_calib"].unique())
            ax.set_xscale("log")
            ax.set_yscale("log", nonpositive="clip")
            ax.set_xticks(ticks, [str(int(n)) for n in ticks])
            ax.xaxis.set_minor_locator(plt.NullLocator())
            ax.yaxis.set_minor_locator(plt.NullLocator())
            ax.set_yticks([0.25, 0.5, 1, 2, 5, 10, 20, 50], ["0.25", "0.5", "1", "2", "5", "10", "20", "50"])
            ax.set_ylim(0.2, 60)
            ax.legend(frameon=False, fontsize=5.5, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        ax.axhline(1.0, color="black", lw=0.6, ls="--")
        ax.axhline(2.0, color="#c8423b", lw=0.8, ls=":")
        ax.set(xlabel="calibration images", ylabel=r"exceedance of 3 $\sigma$ / normal tail", title="calibration size")
        sns.despine(ax=ax)
    return fig
