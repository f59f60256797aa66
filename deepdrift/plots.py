"""Paper-quality figures: the drift profile over depth, the "MRI" timeline of layers x steps, and run summaries.

Every function takes ``ax=`` so figures compose into panels, draws thresholds from the config (never a hard-coded
3.0), and uses a local seaborn/matplotlib context so the user's global style is left alone.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.colors import SymLogNorm
from matplotlib.patches import Patch
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

from .history import DriftHistory
from .observer import ObserverConfig
from .profile import DriftProfile, read_profile
from .taps import ZONES, zone_of

STATE_COLOURS = {"NORMAL": "#4c9a6a", "WARNING": "#e0a526", "ALERT": "#c8423b"}
ZONE_COLOURS = dict(zip(ZONES, ("#7b5fa8", "#4a7fb5", "#3e9c9c", "#b5584a"), strict=True))


@contextmanager
def paper_style():
    """Seaborn 'paper' context with vector-friendly fonts (TrueType in PDFs), scoped to the block."""
    with (
        sns.plotting_context("paper"),
        sns.axes_style("ticks"),
        plt.rc_context({"pdf.fonttype": 42, "ps.fonttype": 42}),
    ):
        yield


def plot_drift_profile(
    profile: DriftProfile,
    ax: Axes | None = None,
    config: ObserverConfig | None = None,
    title: str | None = "Drift profile",
    save: str | Path | None = None,
) -> Axes:
    """Bar chart of drift (sigma) by tap in depth order, with zone bands and the configured thresholds.

    Args:
        profile: the monitor's ``status`` dict or a plain list of drifts in depth order.
        ax: axes to draw on (a new figure otherwise).
        config: thresholds to draw (default ``ObserverConfig()``).
        title: axes title.
        save: write the figure to this path (``.pdf`` / ``.png`` ...).
    """
    config = config or ObserverConfig()
    arrays = read_profile(profile)
    labels, drift, zones = arrays.labels, arrays.drift, arrays.zones
    with paper_style():
        if ax is None:
            _, ax = plt.subplots(figsize=(max(3.5, 0.45 * len(drift) + 1.5), 2.8), constrained_layout=True)
        x = np.arange(len(drift))
        for zone in ZONES:
            idx = [i for i, z in enumerate(zones) if z == zone]
            if idx:
                ax.axvspan(min(idx) - 0.5, max(idx) + 0.5, color=ZONE_COLOURS[zone], alpha=0.08, lw=0)
                ax.text(
                    (min(idx) + max(idx)) / 2,
                    1.0,
                    zone,
                    transform=ax.get_xaxis_transform(),
                    ha="center",
                    va="bottom",
                    fontsize=7,
                    color=ZONE_COLOURS[zone],
                )
        colours = [  # by this batch's drift against the thresholds (FSM states live in the timeline)
            STATE_COLOURS["ALERT" if d >= config.theta_high else "WARNING" if d >= config.theta_warn else "NORMAL"]
            for d in np.nan_to_num(drift, nan=np.inf)
        ]
        shown = np.nan_to_num(drift, nan=0.0)
        ax.bar(x, shown, color=colours, width=0.7, edgecolor="none")
        for i in np.flatnonzero(~np.isfinite(drift)):
            ax.text(i, 0, "NaN", ha="center", va="bottom", fontsize=7, color=STATE_COLOURS["ALERT"])
        ax.axhline(
            config.theta_high,
            color=STATE_COLOURS["ALERT"],
            ls="--",
            lw=0.9,
            label=rf"$\theta_{{high}}$ = {config.theta_high:g}",
        )
        ax.axhline(
            config.theta_low,
            color=STATE_COLOURS["NORMAL"],
            ls=":",
            lw=0.9,
            label=rf"$\theta_{{low}}$ = {config.theta_low:g}",
        )
        ax.axhline(0, color="black", lw=0.5)
        if np.nanmax(np.abs(shown), initial=0.0) > 4 * config.theta_high:  # keep thresholds readable
            ax.set_yscale("symlog", linthresh=config.theta_high)
        ax.set_xticks(x, labels, rotation=45, ha="right")
        ax.set_ylabel(r"drift ($\sigma$)")
        ax.set_xlabel("tap (input → output)")
        if title:
            ax.set_title(title, pad=12)
        ax.legend(frameon=False, fontsize=7, loc="upper left")
        sns.despine(ax=ax)
        if save is not None:
            ax.figure.savefig(save, bbox_inches="tight", metadata=_metadata(save))
    return ax


def plot_drift_timeline(
    history: DriftHistory,
    ax: Axes | None = None,
    config: ObserverConfig | None = None,
    title: str | None = "Drift timeline",
    vmax: float | None = None,
    save: str | Path | None = None,
) -> Axes:
    """The "MRI" view: heatmap of drift (taps x steps) with WARNING/ALERT states and alert events marked.

    Args:
        history: ``monitor.history``.
        ax: axes to draw on (a new figure otherwise).
        config: thresholds; the colour scale is linear up to ``theta_high`` and logarithmic above.
        title: axes title.
        vmax: top of the colour scale (default: the largest drift, at least 3 x theta_high).
        save: write the figure to this path.
    """
    config = config or ObserverConfig()
    drift = history.drift_matrix
    states = history.state_matrix
    steps = np.asarray(history.steps)
    vmax = vmax or max(3 * config.theta_high, float(np.nanmax(drift, initial=0.0)))
    with paper_style():
        if ax is None:
            _, ax = plt.subplots(figsize=(6.5, 0.3 * len(history.layers) + 1.4), constrained_layout=True)
        extent = (steps[0] - 0.5, steps[-1] + 0.5, len(history.layers) - 0.5, -0.5) if steps.size else None
        norm = SymLogNorm(linthresh=config.theta_high, vmin=-config.theta_high, vmax=vmax)
        image = ax.imshow(
            np.clip(drift, -vmax, vmax), aspect="auto", cmap="magma", norm=norm, interpolation="nearest", extent=extent
        )
        cbar = ax.figure.colorbar(image, ax=ax, pad=0.01)
        cbar.set_label(r"drift ($\sigma$)")
        cbar.ax.axhline(config.theta_high, color="white", lw=1)
        for i in range(states.shape[0]):  # a state bar under each row: one segment per WARNING/ALERT run
            for state in ("WARNING", "ALERT"):
                for first, last in _runs(states[i] == state):
                    ax.hlines(i + 0.38, steps[first] - 0.5, steps[last] + 0.5, colors=STATE_COLOURS[state], lw=2.5)
        row = {name: i for i, name in enumerate(history.layers)}
        for alert in history.alerts:
            marker = {"WARNING": "v", "ALERT": "x", "NONFINITE": "X", "RECOVERY": "o"}[alert.kind.value]
            colour = STATE_COLOURS["NORMAL"] if alert.kind.value == "RECOVERY" else "white"
            ax.plot(alert.step, row[alert.layer], marker=marker, color=colour, ms=4, mew=1, ls="none")
        ax.set_yticks(range(len(history.layers)), history.labels)
        ax.set_xlabel("step (batch)")
        ax.set_ylabel("tap (input → output)")
        handles = [Patch(color=STATE_COLOURS[s], label=s) for s in ("WARNING", "ALERT")]
        ax.legend(handles=handles, frameon=False, fontsize=7, loc="upper left", bbox_to_anchor=(0, 1.12), ncol=2)
        if title:
            ax.set_title(title, pad=16)
        if save is not None:
            ax.figure.savefig(save, bbox_inches="tight", metadata=_metadata(save))
    return ax


def plot_drift_by_zone(
    history: DriftHistory,
    ax: Axes | None = None,
    config: ObserverConfig | None = None,
    zones: list[str] | None = None,
    title: str | None = "Drift by zone",
    save: str | Path | None = None,
) -> Axes:
    """The largest drift within each depth zone at every step: the timeline's magnitudes, readable as lines.

    Args:
        history: ``monitor.history`` (or ``DriftHistory.load("run.csv")``).
        zones: zone of each layer (default: by position, as the monitor assigns them).
        ax, config, title, save: as in :func:`plot_drift_timeline`.
    """
    config = config or ObserverConfig()
    drift, steps = history.drift_matrix, np.asarray(history.steps)
    zones = zones or [zone_of(i, len(history.layers)) for i in range(len(history.layers))]
    with paper_style():
        if ax is None:
            _, ax = plt.subplots(figsize=(6.5, 2.6), constrained_layout=True)
        for zone in ZONES:
            rows = [i for i, z in enumerate(zones) if z == zone]
            if rows and steps.size:
                finite = np.where(np.isfinite(drift[rows]), drift[rows], -np.inf)
                peak = finite.max(axis=0)
                ax.plot(steps, np.where(np.isfinite(peak), peak, np.nan), color=ZONE_COLOURS[zone], lw=1.2, label=zone)
        _finish_drift_axes(ax, drift, config, title, legend_outside=False)
        ax.set_xlabel("step (batch)")
        ax.set_ylabel(r"max drift in zone ($\sigma$)")
        if save is not None:
            ax.figure.savefig(save, bbox_inches="tight", metadata=_metadata(save))
    return ax


def plot_profile_summary(
    history: DriftHistory,
    ax: Axes | None = None,
    config: ObserverConfig | None = None,
    title: str | None = "Drift profiles over the run",
    save: str | Path | None = None,
) -> Axes:
    """Mean, last-step and peak drift of each tap over a run, in depth order, with the 10-90% band of its steps.

    Args:
        history: ``monitor.history`` (or ``DriftHistory.load("run.csv")``).
        ax, config, title, save: as in :func:`plot_drift_timeline`.
    """
    config = config or ObserverConfig()
    drift = np.where(np.isfinite(history.drift_matrix), history.drift_matrix, np.nan)
    x = np.arange(len(history.layers))
    with paper_style():
        if ax is None:
            _, ax = plt.subplots(figsize=(max(3.5, 0.45 * len(x) + 2.5), 2.8), constrained_layout=True)
        if drift.shape[1]:
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN row (a tap that was never finite)
                low, high = np.nanpercentile(drift, 10, axis=1), np.nanpercentile(drift, 90, axis=1)
                mean, peak = np.nanmean(drift, axis=1), np.nanmax(drift, axis=1)
            ax.fill_between(x, low, high, color="#9aa5b1", alpha=0.25, lw=0, label="10–90%")
            ax.plot(x, mean, color="#3a6ea5", marker="o", ms=3, lw=1.2, label="mean")
            ax.plot(x, drift[:, -1], color="#555555", marker="s", ms=3, lw=1.0, ls="--", label="last step")
            ax.plot(x, peak, color=STATE_COLOURS["ALERT"], marker="^", ms=3, lw=1.0, label="peak")
        ax.set_xticks(x, history.labels, rotation=45, ha="right")
        ax.set_xlabel("tap (input → output)")
        ax.set_ylabel(r"drift ($\sigma$)")
        _finish_drift_axes(ax, drift, config, title, legend_outside=True)
        if save is not None:
            ax.figure.savefig(save, bbox_inches="tight", metadata=_metadata(save))
    return ax


def readable_symlog_ticks(axis: Axis, config: ObserverConfig | None = None) -> None:
    """Ticks at 0, theta_high and 10, 30, 100, ... on a symlog axis, written as plain numbers (not 10^0, -10^0)."""
    config = config or ObserverConfig()
    if axis.get_scale() != "symlog":
        return
    low, high = sorted(axis.get_view_interval())
    ticks = {0.0, config.theta_high} | ({-config.theta_high} if low <= -config.theta_high else set())
    decade = 10.0
    while decade <= high:
        ticks |= {decade, 3 * decade} if 3 * decade <= high else {decade}
        decade *= 10
    axis.set_major_locator(FixedLocator(sorted(t for t in ticks if low <= t <= high)))
    axis.set_minor_locator(NullLocator())
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))


def _finish_drift_axes(
    ax: Axes, drift: np.ndarray, config: ObserverConfig, title: str | None, legend_outside: bool
) -> None:
    """Threshold lines, a symlog scale where drift dwarfs theta_high, plain ticks, legend and title."""
    ax.axhline(config.theta_high, color=STATE_COLOURS["ALERT"], ls="--", lw=0.8, label=r"$\theta_{high}$")
    ax.axhline(config.theta_low, color=STATE_COLOURS["NORMAL"], ls=":", lw=0.8, label=r"$\theta_{low}$")
    ax.axhline(0, color="black", lw=0.4)
    finite = drift[np.isfinite(drift)]
    if finite.size and float(np.max(np.abs(finite))) > 4 * config.theta_high:  # keep the thresholds readable
        ax.set_yscale("symlog", linthresh=config.theta_high)
        readable_symlog_ticks(ax.yaxis, config)
    if legend_outside:
        ax.legend(frameon=False, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    else:
        ax.legend(frameon=False, fontsize=7, ncol=6, loc="lower left", bbox_to_anchor=(0.0, 1.0))
    if title:
        ax.set_title(title, pad=18 if not legend_outside else 6)
    sns.despine(ax=ax)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) indices of each run of True values."""
    padded = np.concatenate([[False], mask.astype(bool), [False]])
    edges = np.flatnonzero(np.diff(padded.astype(int)))
    return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def _metadata(path: object) -> dict[str, None] | None:
    """No creation dates in PDFs, so saving the same figure twice gives the same bytes."""
    return {"CreationDate": None, "ModDate": None} if str(path).lower().endswith(".pdf") else None
