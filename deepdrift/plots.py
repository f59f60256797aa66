"""Paper-quality figures: the drift profile over depth and the "MRI" timeline of layers x steps.

Every function takes ``ax=`` so figures compose into panels, draws thresholds from the config (never a hard-coded
3.0), and uses a local seaborn/matplotlib context so the user's global style is left alone.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.colors import SymLogNorm
from matplotlib.patches import Patch

from .history import DriftHistory
from .observer import ObserverConfig
from .profile import DriftProfile, read_profile
from .taps import ZONES

STATE_COLOURS = {"NORMAL": "#4c9a6a", "WARNING": "#e0a526", "ALERT": "#c8423b"}
ZONE_COLOURS = dict(zip(ZONES, ("#7b5fa8", "#4a7fb5", "#3e9c9c", "#b5584a"), strict=True))


@contextmanager
def paper_style():
    """Seaborn 'paper' context with vector-friendly fonts (TrueType in PDFs), scoped to the block."""
    with sns.plotting_context("paper"), sns.axes_style("ticks"), plt.rc_context({"pdf.fonttype": 42,
                                                                               "ps.fonttype": 42}):
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
                ax.text((min(idx) + max(idx)) / 2, 1.0, zone, transform=ax.get_xaxis_transform(),
                        ha="center", va="bottom", fontsize=7, color=ZONE_COLOURS[zone])
        colours = [  # by this batch's drift against the thresholds (FSM states live in the timeline)
            STATE_COLOURS["ALERT" if d >= config.theta_high else "WARNING" if d >= config.theta_warn else "NORMAL"]
            for d in np.nan_to_num(drift, nan=np.inf)
        ]
        shown = np.nan_to_num(drift, nan=0.0)
        ax.bar(x, shown, color=colours, width=0.7, edgecolor="none")
        for i in np.flatnonzero(~np.isfinite(drift)):
            ax.text(i, 0, "NaN", ha="center", va="bottom", fontsize=7, color=STATE_COLOURS["ALERT"])
        ax.axhline(config.theta_high, color=STATE_COLOURS["ALERT"], ls="--", lw=0.9,
                   label=rf"$\theta_{{high}}$ = {config.theta_high:g}")
        ax.axhline(config.theta_low, color=STATE_COLOURS["NORMAL"], ls=":", lw=0.9,
                   label=rf"$\theta_{{low}}$ = {config.theta_low:g}")
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
            ax.figure.savefig(save, bbox_inches="tight")
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
        image = ax.imshow(np.clip(drift, -vmax, vmax), aspect="auto", cmap="magma", norm=norm,
                          interpolation="nearest", extent=extent)
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
            ax.figure.savefig(save, bbox_inches="tight")
    return ax


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) indices of each run of True values."""
    padded = np.concatenate([[False], mask.astype(bool), [False]])
    edges = np.flatnonzero(np.diff(padded.astype(int)))
    return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2], strict=True)]
