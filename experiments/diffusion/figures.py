"""Figures of the diffusion study: drift anatomy heatmaps, memorisation vs loss gap, bottleneck test, sample grids."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch

from experiments.figures import paper_context


def _block_order(gaps: pd.DataFrame) -> list[str]:
    return gaps.drop_duplicates("block").sort_values("block_index")["block"].tolist()


def anatomy_heatmap(gaps: pd.DataFrame) -> plt.Figure:
    """Rows: noise level t; columns: N. Each panel: block x step, null-corrected drift (sigma), seeds averaged.

    Cells where the gap was significant in every seed carry a dot.
    """
    sizes, ts, blocks = sorted(gaps["n_train"].unique()), sorted(gaps["t"].unique()), _block_order(gaps)
    mean = gaps.groupby(["n_train", "t", "block", "step"]).agg(gap=("gap", "mean"), sig=("significant", "all"))
    vmax = max(3.0, float(np.nanpercentile(np.abs(mean["gap"]), 98)))
    with paper_context():
        fig, axes = plt.subplots(
            len(ts),
            len(sizes),
            figsize=(2.6 * len(sizes) + 0.8, 1.9 * len(ts) + 0.4),
            squeeze=False,
            sharey=True,
            constrained_layout=True,
        )
        for i, t in enumerate(ts):
            for j, n in enumerate(sizes):
                ax = axes[i][j]
                panel = mean.loc[(n, t)].reset_index()
                grid = panel.pivot(index="block", columns="step", values="gap").reindex(blocks)
                sig = panel.pivot(index="block", columns="step", values="sig").reindex(blocks)
                image = ax.imshow(grid.to_numpy(float), aspect="auto", cmap="RdBu_r", vmin=-vmax, vmax=vmax)
                yy, xx = np.nonzero(sig.fillna(False).to_numpy(bool))
                ax.scatter(xx, yy, s=5, c="black", marker="o", linewidths=0)
                steps = grid.columns.tolist()
                ticks = np.linspace(0, len(steps) - 1, min(4, len(steps))).round().astype(int)
                ax.set_xticks(ticks, [str(steps[k]) for k in ticks])
                ax.set_yticks(range(len(blocks)), blocks)
                ax.set_title(f"N = {n}, t = {t}", fontsize=8)
                if i == len(ts) - 1:
                    ax.set_xlabel("training step")
        fig.colorbar(image, ax=axes, shrink=0.6, label=r"train $-$ held-out drift ($\sigma$, null-corrected)")
    return fig


def memorisation_figure(memorisation: pd.DataFrame, loss: pd.DataFrame, onset_fraction: float) -> plt.Figure:
    """One panel per N: memorised fraction (left axis) and held-out minus train loss (right axis) vs step."""
    sizes = sorted(memorisation["n_train"].unique())
    with paper_context():
        fig, axes = plt.subplots(1, len(sizes), figsize=(2.5 * len(sizes), 2.3), squeeze=False, constrained_layout=True)
        for ax, n in zip(axes[0], sizes, strict=True):
            mem = memorisation[memorisation["n_train"] == n]
            sns.lineplot(
                mem,
                x="step",
                y="memorised_fraction",
                errorbar=("pi", 100),
                marker="o",
                markersize=3,
                color="#c8423b",
                ax=ax,
                label="memorised fraction",
                legend=False,
            )
            ax.axhline(onset_fraction, color="#c8423b", lw=0.6, ls=":")
            ax.set(ylim=(-0.03, 1.03), title=f"N = {n}", xlabel="training step", ylabel="memorised fraction")
            twin = ax.twinx()
            sns.lineplot(
                loss[loss["n_train"] == n],
                x="step",
                y="loss_gap",
                errorbar=("pi", 100),
                marker="s",
                markersize=3,
                color="#3b6fb6",
                ax=twin,
                legend=False,
            )
            twin.axhline(0.0, color="#3b6fb6", lw=0.6, ls="--")
            twin.set_ylabel("loss gap (held-out $-$ train MSE)", color="#3b6fb6")
            twin.tick_params(axis="y", colors="#3b6fb6")
        fig.legend(
            handles=[
                plt.Line2D([], [], color="#c8423b", marker="o", label="memorised fraction (left)"),
                plt.Line2D([], [], color="#3b6fb6", marker="s", label="loss gap (right)"),
            ],
            frameon=False,
            fontsize=7,
            loc="outside upper center",
            ncols=2,
        )
    return fig


def bottleneck_figure(gaps: pd.DataFrame, onsets: pd.DataFrame) -> plt.Figure:
    """Per t: largest null-corrected gap_z over training (top) and drift onset step (bottom) per block and N.

    Error bars: standard deviation over seeds. A "burning bottleneck" would put mid_block on top, and first.
    """
    blocks, ts = _block_order(gaps), sorted(gaps["t"].unique())
    peak = gaps.groupby(["n_train", "seed", "t", "block"])["gap_z"].max().reset_index()
    cols = [c for c in onsets.columns if c.startswith("onset[")]
    onset_long = onsets.melt(id_vars=["n_train", "seed", "t"], value_vars=cols, var_name="block", value_name="onset")
    onset_long["block"] = onset_long["block"].str[6:-1]
    sizes = sorted(gaps["n_train"].unique())
    colours = dict(zip(sizes, sns.color_palette("viridis", len(sizes)), strict=True))  # same N, same colour
    with paper_context():
        fig, axes = plt.subplots(
            2, len(ts), figsize=(2.9 * len(ts), 4.4), squeeze=False, sharex=True, constrained_layout=True
        )
        for j, t in enumerate(ts):
            sns.pointplot(
                peak[peak["t"] == t],
                x="block",
                y="gap_z",
                hue="n_train",
                hue_order=sizes,
                order=blocks,
                errorbar="sd",
                dodge=0.4,
                markersize=3,
                linewidth=1,
                palette=colours,
                ax=axes[0][j],
            )
            axes[0][j].set(title=f"t = {t}", ylabel="peak gap z vs null" if j == 0 else "")
            axes[0][j].axhline(0, color="grey", lw=0.6)
            found = onset_long[(onset_long["t"] == t) & onset_long["onset"].notna()]
            if len(found):
                present = [n for n in sizes if n in set(found["n_train"])]
                # seaborn divides the dodge by (hue levels - 1): no dodge when a single N has onsets
                sns.pointplot(
                    found,
                    x="block",
                    y="onset",
                    hue="n_train",
                    hue_order=present,
                    order=blocks,
                    errorbar="sd",
                    dodge=0.4 if len(present) > 1 else False,
                    markersize=3,
                    linewidth=1,
                    palette=colours,
                    ax=axes[1][j],
                    legend=False,
                )
            else:
                axes[1][j].text(
                    0.5, 0.5, "no significant onset", transform=axes[1][j].transAxes, ha="center", fontsize=7
                )
            axes[1][j].set(xlabel="U-Net block", ylabel="drift onset (step)" if j == 0 else "")
            axes[1][j].tick_params(axis="x", rotation=60)
            if j:
                axes[0][j].get_legend().remove()
        axes[0][0].legend(title="N", frameon=False, fontsize=7, title_fontsize=7)
    return fig


def sample_grid(finals: dict[int, dict[str, torch.Tensor]], n_show: int = 8) -> plt.Figure:
    """For each N: generated samples (top row) above their nearest training images (bottom row), with the ratio."""
    sizes = sorted(finals)
    with paper_context():
        fig, axes = plt.subplots(2 * len(sizes), n_show, figsize=(0.8 * n_show, 1.75 * len(sizes)), squeeze=False)
        for r, n in enumerate(sizes):
            final = finals[n]
            for k in range(n_show):
                top, bottom = axes[2 * r][k], axes[2 * r + 1][k]
                if k < len(final["samples"]):
                    for ax, img in ((top, final["samples"][k]), (bottom, final["nearest"][k])):
                        ax.imshow(_to_image(img), cmap="gray", vmin=0, vmax=1)
                    ratio = float(final["ratio"][k])
                    top.set_title(f"{ratio:.2f}", fontsize=6, color="#c8423b" if ratio < 1 / 3 else "black")
                top.axis("off")
                bottom.axis("off")
            axes[2 * r][0].text(
                -0.3, 0.5, f"N={n}\nsample", transform=axes[2 * r][0].transAxes, ha="right", va="center", fontsize=7
            )
            axes[2 * r + 1][0].text(
                -0.3, 0.5, "nearest\ntrain", transform=axes[2 * r + 1][0].transAxes, ha="right", va="center", fontsize=7
            )
        fig.suptitle("DDIM samples over nearest training images (NN ratio; red: memorised, < 1/3)", fontsize=7)
    return fig


def _to_image(x: torch.Tensor) -> np.ndarray:
    img = ((x.float() + 1.0) / 2.0).clamp(0, 1)
    return img[0].numpy() if img.shape[0] == 1 else img.permute(1, 2, 0).numpy()


def detector_onset_figure(
    detected: pd.DataFrame, mem_onsets: pd.DataFrame, order: list[str], horizon: float
) -> plt.Figure:
    """Per t: onset step of each detector (rows) for every run, coloured by N, with memorisation onset on top.

    Runs without an onset sit at ``horizon`` (the first step after the last checkpoint, dotted), so censored seeds
    are visible rather than dropped.
    """
    ts, sizes = sorted(detected["t"].unique()), sorted(detected["n_train"].unique())
    colours = dict(zip(sizes, sns.color_palette("viridis", len(sizes)), strict=True))
    mem = mem_onsets.assign(detector="memorisation")
    rows = ["memorisation", *order]
    edge = float(horizon)
    with paper_context():
        fig, axes = plt.subplots(
            1, len(ts), figsize=(3.0 * len(ts) + 1.2, 0.32 * len(rows) + 1.0), squeeze=False, sharey=True,
            constrained_layout=True,
        )  # fmt: skip
        for ax, t in zip(axes[0], ts, strict=True):
            panel = pd.concat(
                [detected[detected["t"] == t], mem.rename(columns={"memorisation_onset": "onset"})], ignore_index=True
            )
            for k, n in enumerate(sizes):
                sub = panel[(panel["n_train"] == n) & panel["detector"].isin(rows)]
                y = sub["detector"].map({d: i for i, d in enumerate(rows)}) + (k - (len(sizes) - 1) / 2) * 0.18
                x = sub["onset"].fillna(edge)
                ax.scatter(x, y, s=12, color=colours[n], label=f"N = {n}", alpha=0.85, linewidths=0)
            ax.axvline(edge, color="grey", lw=0.5, ls=":")
            ax.set_yticks(range(len(rows)), rows)
            ax.set(title=f"t = {t}", xlabel="onset step (dotted: none)", xlim=(-0.04 * edge, 1.04 * edge))
        axes[0][0].set_ylim(len(rows) - 0.5, -0.5)  # memorisation on top
        axes[0][-1].legend(loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, fontsize=7)
    return fig
