"""Figures of the corruption benchmark: the drift MRI, drift vs severity / accuracy, and detection AUROC."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.colors import SymLogNorm

from experiments.baselines.registry import detector_status
from experiments.corruption.footing import LAYER_SETS, STATISTIC_LABELS
from experiments.corruption.summary import METHOD_LABELS
from experiments.figures import paper_context

FAMILY_ORDER = ("noise", "blur", "weather", "digital")
SIGMA_TICKS = (-3, 0, 3, 10, 30, 100, 300, 1000, 3000, 10000)


def _sigma_ticks(low: float, high: float) -> list[float]:
    """Readable drift ticks (sigma) inside ``[low, high]`` for symlog axes and colour bars."""
    ticks = [t for t in SIGMA_TICKS if low <= t <= high]
    return ticks or [low, high]


def _symlog(ax: plt.Axes, axis: str, values: np.ndarray) -> None:
    """Symlog scale (linear within +-3 sigma, logarithmic beyond) with plain-number ticks."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    low, high = (min(-0.5, values.min()), max(3.5, values.max())) if values.size else (-0.5, 3.5)
    getattr(ax, f"set_{axis}scale")("symlog", linthresh=3.0)
    getattr(ax, f"set_{axis}ticks")(_sigma_ticks(low, high), [f"{t:g}" for t in _sigma_ticks(low, high)])


def _models(frame: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(frame["model"]))


def mri_figure(
    profile: pd.DataFrame,
    severity: int,
    corruptions: Sequence[str],
    batch_size: int | None = None,
) -> plt.Figure:
    """Per-tap mean drift (rows, input at the top) x corruption (columns) at one severity, one panel per model."""
    data = profile[profile["severity"] == severity]
    models = _models(data)
    n_taps = [data.loc[data["model"] == m, "tap"].nunique() for m in models]
    vmax = max(3.0, float(np.nanmax(data["drift"].to_numpy())) if len(data) else 3.0)
    norm = SymLogNorm(linthresh=3.0, vmin=-3.0, vmax=vmax, base=10)
    with paper_context():
        fig, axes = plt.subplots(
            len(models),
            1,
            figsize=(7.0, 1.0 + 0.22 * sum(n_taps) + 0.6 * len(models)),
            gridspec_kw={"height_ratios": n_taps},
            constrained_layout=True,
            squeeze=False,
        )
        for ax, model in zip(axes[:, 0], models, strict=True):
            sub = data[data["model"] == model].sort_values("depth")
            grid = sub.pivot_table(index="label", columns="corruption", values="drift", sort=False)
            grid = grid.reindex(columns=[c for c in corruptions if c in grid.columns])
            mesh = sns.heatmap(grid, ax=ax, cmap="magma", norm=norm, cbar=False, linewidths=0.3, linecolor="white")
            batch = f", batches of {batch_size}" if batch_size else ""
            ax.set(title=f"{model}: mean drift at severity {severity}{batch}", xlabel="", ylabel="tap (input → output)")
            ax.tick_params(axis="x", labelrotation=60, labelsize=6)
            ax.tick_params(axis="y", labelsize=6)
            for label in ax.get_xticklabels():
                label.set_horizontalalignment("right")
        bar = fig.colorbar(mesh.collections[0], ax=axes[:, 0].tolist(), label=r"drift ($\sigma$, symlog)", shrink=0.8)
        ticks = _sigma_ticks(-3.0, vmax)
        bar.set_ticks(ticks, labels=[f"{t:g}" for t in ticks])
    return fig


def severity_figure(profile: pd.DataFrame, cells: pd.DataFrame, correlation: pd.DataFrame) -> plt.Figure:
    """Top: mean drift per zone vs severity (0 = clean). Bottom: accuracy drop vs mean drift, Spearman rho."""
    models = _models(profile)
    zone_means = (
        profile.groupby(["model", "corruption", "severity", "zone"])["drift"]
        .mean()
        .groupby(["model", "severity", "zone"])
        .mean()
        .reset_index()
    )
    families = [f for f in FAMILY_ORDER if f in set(cells["family"])]
    palette = dict(zip(families, sns.color_palette("colorblind", len(families)), strict=True))
    with paper_context():
        fig, axes = plt.subplots(
            2, len(models), figsize=(2.6 * len(models) + 0.6, 4.6), constrained_layout=True, squeeze=False
        )
        for col, model in enumerate(models):
            ax = axes[0, col]
            sub = zone_means[zone_means["model"] == model]
            for zone in [z for z in ("UV", "Mid", "Deep", "IR") if z in set(sub["zone"])]:
                line = sub[sub["zone"] == zone].sort_values("severity")
                ax.plot(line["severity"], line["drift"], marker="o", ms=3, lw=1.2, label=zone)
            ax.axhline(3.0, color="#c8423b", lw=0.7, ls=":")
            _symlog(ax, "y", sub["drift"].to_numpy())
            ax.set(
                title=model,
                xlabel="severity (0 = clean)",
                ylabel=r"mean drift ($\sigma$)" if col == 0 else "",
                xticks=sorted(sub["severity"].unique()),
            )
            ax.legend(frameon=False, fontsize=6, title="zone", title_fontsize=6)
            ax = axes[1, col]
            sub = cells[cells["model"] == model]
            for family in families:
                part = sub[sub["family"] == family]
                ax.scatter(
                    part["drift_all"], part["accuracy_drop"], s=9, color=palette[family], label=family, alpha=0.8, lw=0
                )
            rho = correlation.query("model == @model and `drift of` == 'all'")["spearman_rho"]
            rho_text = f"Spearman ρ = {float(rho.iloc[0]):.2f}" if len(rho) else ""
            _symlog(ax, "x", sub["drift_all"].to_numpy())
            ax.set(
                xlabel=r"mean drift over taps ($\sigma$)",
                ylabel="accuracy drop (points)" if col == 0 else "",
                title=rho_text,
            )
            ax.legend(frameon=False, fontsize=6)
        for ax in axes.flat:
            sns.despine(ax=ax)
    return fig


def detection_figure(results: pd.DataFrame, metric: str = "auroc") -> plt.Figure:
    """Mean ``metric`` over corruptions vs severity: rows models, columns batch sizes, one line per method."""
    models = _models(results)
    batch_sizes = sorted(results["batch_size"].unique())
    methods = list(dict.fromkeys(results["method"]))
    palette = dict(zip(methods, sns.color_palette("tab10", len(methods)), strict=True))
    mean = results.groupby(["model", "method", "batch_size", "severity"], sort=False)[metric].mean().reset_index()
    ylabel = {"auroc": "mean AUROC", "tpr_at_5fpr": "mean TPR at 5% FPR"}.get(metric, metric)
    with paper_context():
        fig, axes = plt.subplots(
            len(models),
            len(batch_sizes),
            figsize=(2.2 * len(batch_sizes) + 1.6, 2.0 * len(models) + 0.4),
            sharex=True,
            sharey=True,
            constrained_layout=True,
            squeeze=False,
        )
        for row, model in enumerate(models):
            for col, batch_size in enumerate(batch_sizes):
                ax = axes[row, col]
                sub = mean.query("model == @model and batch_size == @batch_size")
                for method in methods:
                    line = sub[sub["method"] == method].sort_values("severity")
                    deepdrift = method.startswith("deepdrift")
                    ax.plot(
                        line["severity"],
                        line[metric],
                        marker="o",
                        ms=2.5,
                        color=palette[method],
                        lw=1.8 if deepdrift else 0.9,
                        ls="-" if deepdrift else "--",
                        label=METHOD_LABELS.get(method, method),
                    )
                if metric == "auroc":
                    ax.axhline(0.5, color="grey", lw=0.6, ls=":")
                unscored = [
                    f"{METHOD_LABELS.get(m, m).split(' (')[0]} {detector_status(m, int(batch_size))}"
                    for m in methods
                    if detector_status(m, int(batch_size)) != "ok"
                ]
                if unscored:
                    ax.text(0.97, 0.04, "not scored:\n" + "\n".join(unscored), transform=ax.transAxes, ha="right",
                            va="bottom", fontsize=5.5, color="#555555")  # fmt: skip
                ax.set(
                    title=f"{model}, batch {batch_size}",
                    xlabel="severity" if row == len(models) - 1 else "",
                    ylabel=ylabel if col == 0 else "",
                    ylim=(-0.02, 1.02),
                    xticks=sorted(mean["severity"].unique()),
                )
                sns.despine(ax=ax)
        handles, labels = axes[0, 0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside right center", frameon=False, fontsize=6)
    return fig


def footing_figure(table: pd.DataFrame) -> plt.Figure:
    """Equal footing: mean AUROC (95% interval) per statistic (x) and layer set (marker), rows models, columns
    batch sizes; unscored cells are labelled ``undefined`` / ``degenerate`` instead of drawn."""
    models = _models(table) if len(table) else []
    batch_sizes = sorted(table["batch_size"].unique()) if len(table) else []
    statistics = list(dict.fromkeys(table["statistic"])) if len(table) else []
    layer_sets = [s for s in LAYER_SETS if len(table) and s in set(table["layers"])]
    colours = dict(zip(layer_sets, sns.color_palette("colorblind", len(layer_sets)), strict=True))
    markers = dict(zip(layer_sets, "osD^", strict=False))
    offsets = np.linspace(-0.27, 0.27, max(len(layer_sets), 1))
    lows = table["low"].to_numpy(dtype=float) if len(table) else np.array([])
    lows = lows[np.isfinite(lows)]
    bottom = min(0.5, np.floor((lows.min() - 0.02) * 10) / 10) if lows.size else 0.5
    with paper_context():
        fig, axes = plt.subplots(
            max(len(models), 1),
            max(len(batch_sizes), 1),
            figsize=(2.9 * max(len(batch_sizes), 1) + 1.4, 2.3 * max(len(models), 1) + 0.9),
            sharex=True,
            sharey=True,
            constrained_layout=True,
            squeeze=False,
        )
        for row, model in enumerate(models):
            for col, batch_size in enumerate(batch_sizes):
                ax = axes[row, col]
                sub = table[(table["model"] == model) & (table["batch_size"] == batch_size)]
                for i, statistic in enumerate(statistics):
                    cells = sub[sub["statistic"] == statistic]
                    if len(cells) and (cells["status"] != "ok").all():
                        ax.text(i, bottom + 0.02, str(cells["status"].iloc[0]), rotation=90, ha="center", va="bottom",
                                fontsize=6, color="#777777")  # fmt: skip
                        continue
                    for offset, layer_set in zip(offsets, layer_sets, strict=True):
                        cell = cells[cells["layers"] == layer_set]
                        if cell.empty:
                            continue
                        value, low, high = (float(cell[c].iloc[0]) for c in ("auroc", "low", "high"))
                        ax.errorbar(i + offset, value, yerr=[[value - low], [high - value]], fmt=markers[layer_set],
                                    ms=3, color=colours[layer_set], elinewidth=0.8, capsize=1.2,
                                    label=layer_set if (row, col, i) == (0, 0, 0) else None)  # fmt: skip
                ours = sum(s.startswith("deepdrift") for s in statistics)
                if 0 < ours < len(statistics):
                    ax.axvspan(-0.5, ours - 0.5, color="#f2f2f2", zorder=0, lw=0)  # DeepDrift's statistics on grey
                    if (row, col) == (0, 0):
                        ax.text((ours - 1) / 2, 1.0, "DeepDrift", ha="center", va="top", fontsize=6, color="#555555")
                        ax.text((ours + len(statistics) - 1) / 2, 1.0, "peers", ha="center", va="top", fontsize=6,
                                color="#555555")  # fmt: skip
                ax.set(
                    title=f"{model}, batch {batch_size}",
                    ylabel="mean AUROC" if col == 0 else "",
                    ylim=(bottom, 1.01),
                    xlim=(-0.6, len(statistics) - 0.4),
                )
                ax.set_xticks(range(len(statistics)), [STATISTIC_LABELS.get(s, s) for s in statistics], rotation=55,
                              ha="right", fontsize=6)  # fmt: skip
                sns.despine(ax=ax)
        handles, labels = axes[0, 0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside right center", frameon=False, fontsize=6, title="layers")
    return fig
