"""The replicate figure: each headline number per training seed (with its interval) and their mean over seeds
(with the nested interval), per architecture."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from experiments.figures import paper_context
from experiments.replicates.detection import DIFFERENCES
from experiments.replicates.summary import ACCURACY, FALSE_DIAGNOSES, ONSET_ALL, ONSET_HARMFUL, SIGMA

REFERENCE_LINES = {SIGMA: (1.0, 2.0), FALSE_DIAGNOSES: (0.01,)}
"""Nominal and acceptance levels drawn as dashed lines (1x and 2x the normal tail; the doctor's 1% target)."""


def panels(min_drop: float) -> list[tuple[str, int | None, str]]:
    """(metric, batch size, title) of each panel, in reading order."""
    harmful = ONSET_HARMFUL.format(drop=min_drop)
    return [
        (SIGMA, 1, "clean > 3 sigma, x nominal (B=1)"),
        (SIGMA, 16, "clean > 3 sigma, x nominal (B=16)"),
        (harmful, 16, f"onset exact, >= {min_drop:g} pts (B=16)"),
        (ONSET_ALL, 16, "onset exact, all faults (B=16)"),
        (ONSET_ALL, 1, "onset exact, all faults (B=1)"),
        (FALSE_DIAGNOSES, 16, "false diagnoses, clean (B=16)"),
        (ACCURACY, None, "test accuracy"),
    ]


def replicate_figure(per_seed: pd.DataFrame, summary: pd.DataFrame, min_drop: float) -> plt.Figure:
    """One panel per headline number: seeds as coloured points with their intervals, the mean over seeds as a black
    diamond with the nested interval."""
    chosen = panels(min_drop)
    architectures = list(dict.fromkeys(summary["architecture"]))
    seeds = sorted(per_seed["seed"].unique())
    colours = dict(zip(seeds, plt.get_cmap("tab10").colors, strict=False))
    with paper_context(0.8):
        ncols = 4
        nrows = int(np.ceil((len(chosen) + 1) / ncols))
        fig, axes = plt.subplots(nrows, ncols, figsize=(2.6 * ncols, 2.4 * nrows), constrained_layout=True)
        flat = axes.ravel()
        for ax, (metric, batch_size, title) in zip(flat, chosen, strict=False):
            rows = per_seed[(per_seed["metric"] == metric) & _same_batch(per_seed, batch_size)]
            means = summary[(summary["metric"] == metric) & _same_batch(summary, batch_size)]
            for a, arch in enumerate(architectures):
                mean = means[means["architecture"] == arch]
                _seeds_and_mean(ax, a, rows[rows["architecture"] == arch], mean.iloc[0] if len(mean) else None,
                                colours, first_offset=-0.25)  # fmt: skip
            for level in REFERENCE_LINES.get(metric, ()):
                ax.axhline(level, color="grey", ls="--", lw=0.8)
            ax.set_xticks(range(len(architectures)), architectures)
            ax.set_xlim(-0.6, len(architectures) - 0.4)
            ax.set_title(title, fontsize=8)
        legend_ax = flat[len(chosen)]
        handles, labels = flat[0].get_legend_handles_labels()
        unique = dict(zip(labels, handles, strict=False))
        legend_ax.legend(unique.values(), unique.keys(), loc="center", frameon=False)
        for ax in flat[len(chosen) :]:
            ax.axis("off")
        fig.suptitle("Headline numbers per training seed (95% intervals; black: mean over seeds, nested bootstrap)")
    return fig


def _seeds_and_mean(
    ax: plt.Axes, x: float, seeds: pd.DataFrame, mean: pd.Series | None, colours: dict, first_offset: float
) -> None:
    """At position ``x``: each seed's value with its interval (spread from ``first_offset``), then the mean over
    seeds as a black diamond with its nested interval."""
    offsets = np.linspace(first_offset, 0.05, max(len(seeds), 1))
    for offset, (_, r) in zip(offsets, seeds.iterrows(), strict=False):
        ax.errorbar(x + offset, r["value"], yerr=_err(r["value"], r["low"], r["high"]), fmt="o", ms=3.5, lw=1,
                    capsize=2, color=colours[r["seed"]], label=f"seed {r['seed']}")  # fmt: skip
    if mean is not None:
        ax.errorbar(x + 0.22, mean["mean"], yerr=_err(mean["mean"], mean["low"], mean["high"]), fmt="D", ms=4,
                    color="black", lw=1.4, capsize=3, label="mean over seeds")  # fmt: skip


def _same_batch(frame: pd.DataFrame, batch_size: int | None) -> pd.Series:
    return frame["batch_size"].isna() if batch_size is None else frame["batch_size"] == batch_size


def _err(value: float, low: float, high: float) -> np.ndarray | None:
    if not (np.isfinite(low) and np.isfinite(high)):
        return None
    return np.array([[max(value - low, 0.0)], [max(high - value, 0.0)]])


def detection_figure(per_seed: pd.DataFrame, summary: pd.DataFrame) -> plt.Figure:
    """DeepDrift minus the best peer statistic (mean AUROC over corruptions) per training seed and batch size, on
    the same layers and against the peers as shipped; one row per replicate group, zero dashed."""
    architectures = list(dict.fromkeys(summary["architecture"]))
    seeds = sorted(per_seed["seed"].unique())
    colours = dict(zip(seeds, plt.get_cmap("tab10").colors, strict=False))
    with paper_context(0.8):
        fig, axes = plt.subplots(
            len(architectures), len(DIFFERENCES), figsize=(3.4 * len(DIFFERENCES), 2.5 * len(architectures)),
            squeeze=False, sharey="row", constrained_layout=True,
        )  # fmt: skip
        for r, arch in enumerate(architectures):
            for c, quantity in enumerate(DIFFERENCES):
                ax = axes[r, c]
                rows = per_seed[(per_seed["architecture"] == arch) & (per_seed["quantity"] == quantity)]
                means = summary[(summary["architecture"] == arch) & (summary["quantity"] == quantity)]
                batch_sizes = sorted(means["batch_size"].unique())
                for b, batch_size in enumerate(batch_sizes):
                    mean = means[means["batch_size"] == batch_size].iloc[0]
                    _seeds_and_mean(ax, b, rows[rows["batch_size"] == batch_size], mean, colours, first_offset=-0.3)
                ax.axhline(0.0, color="grey", ls="--", lw=0.8)
                ax.set_xticks(range(len(batch_sizes)), [f"B={b}" for b in batch_sizes])
                ax.set_xlim(-0.6, len(batch_sizes) - 0.4)
                ax.set_title(f"{arch}: {quantity}", fontsize=8)
                if c == 0:
                    ax.set_ylabel("AUROC difference")
        handles, labels = axes[0, 0].get_legend_handles_labels()
        unique = dict(zip(labels, handles, strict=False))
        axes[0, -1].legend(unique.values(), unique.keys(), loc="best", fontsize=7, frameon=False)
        fig.suptitle("DeepDrift minus the best peer statistic per training seed (95% intervals over batches; "
                     "black: mean over seeds, nested bootstrap)", fontsize=9)  # fmt: skip
    return fig
