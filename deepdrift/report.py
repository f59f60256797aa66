"""One self-contained HTML page of a monitored run: summary, "MRI" timeline, drift profiles and the alert log.

The page embeds its figures as base64 PNG and its style inline, with no script, link or remote reference, so it can be
mailed, attached to an issue or archived as one file. It is built from a :class:`~deepdrift.history.DriftHistory`,
live (``monitor.history``) or read back from ``monitor.history.save("run.csv")``. matplotlib and seaborn are
imported on first use only, so ``import deepdrift`` stays light.

Example:
    >>> from deepdrift.report import render_report
    >>> render_report("run.csv", "run.html")  # doctest: +SKIP
    PosixPath('run.html')
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ._version import __version__
from .doctor import diagnose_drift
from .history import DriftHistory
from .observer import Alert, AlertKind, ObserverConfig
from .taps import zone_of

if TYPE_CHECKING:
    from matplotlib.figure import Figure

ALERT_COLUMNS = ("step", "layer", "label", "zone", "kind", "value", "threshold", "message")
"""Columns of the alert table, as in ``DriftHistory.alerts_frame()``."""


@dataclass(frozen=True)
class RunSummary:
    """The numbers of the page header (all from the history; ``worst_*`` treat non-finite drift as the worst)."""

    n_steps: int
    first_step: int | None
    last_step: int | None
    layers: list[str]
    labels: list[str]
    zones: list[str]
    counts: dict[str, int]
    worst_layer: int | None
    worst_step: int | None
    worst_value: float
    final_states: list[str]


def render_report(
    history_or_path: DriftHistory | str | Path,
    path: str | Path,
    *,
    config: ObserverConfig | None = None,
    title: str | None = None,
    source: str | Path | None = None,
) -> Path:
    """Write the run report of a history (or of a saved ``run.csv`` / ``run.parquet``) to ``path`` as HTML.

    Args:
        history_or_path: ``monitor.history`` or the drift table written by ``DriftHistory.save``.
        path: the ``.html`` file to write (parent folders are created).
        config: thresholds to draw; default: inferred from the alerts (see :func:`infer_config`).
        title: page title; default: the run's file name.
        source: where the run came from, shown in the footer (default: the path given).
    """
    if isinstance(history_or_path, DriftHistory):
        history = history_or_path
    else:
        source = source or history_or_path
        history = DriftHistory.load(history_or_path)
    config = config or infer_config(history)
    title = title or (Path(source).name if source is not None else "DeepDrift run")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(build_html(history, config, title, source), encoding="utf-8")
    return target


def infer_config(
    history: DriftHistory, theta_high: float | None = None, theta_low: float | None = None
) -> ObserverConfig:
    """Thresholds of the run: a saved history keeps no config, but its ALERT events carry ``theta_high`` and its
    RECOVERY events ``theta_low``; what is neither given nor recorded keeps the ``ObserverConfig`` default."""
    recorded: dict[AlertKind, float] = {}
    for alert in history.alerts:
        if np.isfinite(alert.threshold):
            recorded.setdefault(alert.kind, float(alert.threshold))
    default = ObserverConfig()
    high = theta_high if theta_high is not None else recorded.get(AlertKind.ALERT, default.theta_high)
    low = theta_low if theta_low is not None else recorded.get(AlertKind.RECOVERY, min(default.theta_low, high / 2))
    slope = recorded.get(AlertKind.WARNING, default.theta_slope)
    return ObserverConfig(theta_high=high, theta_low=low, theta_slope=slope, theta_warn=min(default.theta_warn, high))


def summarise(history: DriftHistory) -> RunSummary:
    """Counts, worst layer and step, and the final states of a run."""
    drift = history.drift_matrix
    n_steps = drift.shape[1]
    steps = list(history.steps)
    counts = Counter(a.kind.value for a in history.alerts)
    worst_layer = worst_step = None
    worst_value = float("nan")
    if drift.size:
        ranked = np.nan_to_num(drift, nan=np.inf)  # NaN drift = non-finite activations: the worst there is
        row, col = np.unravel_index(int(np.argmax(ranked)), ranked.shape)
        worst_layer, worst_step, worst_value = int(row), steps[int(col)], float(drift[row, col])
    return RunSummary(
        n_steps=n_steps,
        first_step=steps[0] if steps else None,
        last_step=steps[-1] if steps else None,
        layers=list(history.layers),
        labels=list(history.labels),
        zones=layer_zones(history),
        counts={kind.value: counts.get(kind.value, 0) for kind in AlertKind},
        worst_layer=worst_layer,
        worst_step=worst_step,
        worst_value=worst_value,
        final_states=[str(s) for s in history.state_matrix[:, -1]] if n_steps else [],
    )


def layer_zones(history: DriftHistory) -> list[str]:
    """Zone of each layer: as the alerts recorded it, else by position (as the monitor assigns zones)."""
    recorded = {a.layer: a.zone for a in history.alerts}
    n = len(history.layers)
    return [recorded.get(name, zone_of(i, n)) for i, name in enumerate(history.layers)]


def build_html(history: DriftHistory, config: ObserverConfig, title: str, source: str | Path | None = None) -> str:
    """The whole page as a string (see :func:`render_report`)."""
    summary = summarise(history)
    figures = _figures(history, config, summary) if summary.n_steps else []
    body = [
        f"<header><h1>{_e(title)}</h1><p class='sub'>DeepDrift run report: layer-wise drift in sigma units "
        "(~N(0, 1) on clean data)</p></header>",
        _summary_html(history, summary),
        _figures_html(figures) if figures else "<p class='empty'>The run recorded no steps: nothing to plot.</p>",
        _layers_html(history, summary),
        _alerts_html(history),
        _footer_html(config, source),
    ]
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{_e(title)}</title><style>{_CSS}</style></head>\n<body><main>\n"
        + "\n".join(body)
        + "\n</main></body></html>\n"
    )


# ----------------------------------------------------------------------------------------------------- sections
def _summary_html(history: DriftHistory, s: RunSummary) -> str:
    counts = s.counts
    cards = [
        ("steps", f"{s.n_steps:,}", f"steps {s.first_step}–{s.last_step}" if s.n_steps else "empty run"),
        ("layers", str(len(s.layers)), f"{s.labels[0]} → {s.labels[-1]}" if s.labels else ""),
        ("warning", str(counts["WARNING"]), "WARNING events (drift rising fast)"),
        (
            "alert",
            str(counts["ALERT"] + counts["NONFINITE"]),
            "ALERT events" + (f", {counts['NONFINITE']} non-finite" if counts["NONFINITE"] else ""),
        ),
        ("recovery", str(counts["RECOVERY"]), "RECOVERY events (back below θ_low)"),
    ]
    if s.worst_layer is not None:
        i = s.worst_layer
        cards.append(("worst", _e(s.labels[i]), f"{s.zones[i]}, peak {_sigma(s.worst_value)} at step {s.worst_step}"))
    html_cards = "".join(
        f"<div class='card {kind}'><div class='value'>{_e(value)}</div><div class='what'>{_e(what)}</div></div>"
        for kind, value, what in cards
    )
    lines = []
    if s.n_steps:
        at_risk = [f"{s.labels[i]} ({state})" for i, state in enumerate(s.final_states) if state != "NORMAL"]
        lines.append("Last step: " + (", ".join(at_risk) if at_risk else "every layer NORMAL") + ".")
        column = list(history.steps).index(s.worst_step)
        diagnosis = diagnose_drift(_profile_at(history, s, column))
        lines.append(f"Doctor at the worst step ({s.worst_step}): {diagnosis.detail}.")
    if history.n_dropped_alerts:
        lines.append(f"{history.n_dropped_alerts} older alert events fell off the bounded log and are not shown.")
    notes = "".join(f"<p>{_e(line)}</p>" for line in lines)
    return f"<section class='summary'><div class='cards'>{html_cards}</div>{notes}</section>"


def _figures_html(figures: list[tuple[str, str, str, str]]) -> str:
    parts = []
    for css, alt, caption, png in figures:
        parts.append(
            f"<figure class='{css}'><img alt='{_e(alt)}' src='data:image/png;base64,{png}'>"
            f"<figcaption>{caption}</figcaption></figure>"
        )
    return "<section class='figures'><h2>Figures</h2><div class='grid'>" + "".join(parts) + "</div></section>"


def _layers_html(history: DriftHistory, s: RunSummary) -> str:
    if not s.n_steps:
        return ""
    drift, states = history.drift_matrix, history.state_matrix
    events = Counter((a.layer, a.kind.value) for a in history.alerts)
    steps = list(history.steps)
    rows = []
    for i, name in enumerate(s.layers):
        ranked = np.nan_to_num(drift[i], nan=np.inf)
        peak = int(np.argmax(ranked))
        cells = [
            str(i),
            name,
            s.labels[i],
            s.zones[i],
            _num(np.nanmean(drift[i]) if np.isfinite(drift[i]).any() else np.nan),
            _num(drift[i, -1]),
            f"{_num(drift[i, peak])} @ {steps[peak]}",
            str(int(np.sum(states[i] == "WARNING"))),
            str(int(np.sum(states[i] == "ALERT"))),
            str(sum(events[(name, k.value)] for k in AlertKind if k is not AlertKind.RECOVERY)),
        ]
        rows.append("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in cells) + "</tr>")
    head = (
        "#",
        "layer",
        "label",
        "zone",
        "mean σ",
        "last σ",
        "peak σ @ step",
        "steps WARNING",
        "steps ALERT",
        "alert events",
    )
    return (
        "<section><h2>Layers</h2><p class='sub'>In depth order (input → output).</p>"
        f"<table class='layers'><thead><tr>{''.join(f'<th>{_e(h)}</th>' for h in head)}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></section>"
    )


def _alerts_html(history: DriftHistory) -> str:
    alerts = list(history.alerts)
    if not alerts:
        return "<section><h2>Alerts</h2><p class='empty'>No alert events: every layer stayed NORMAL.</p></section>"
    rows = []
    for a in alerts:
        cells = [str(a.step), a.layer, a.label, a.zone, a.kind.value, _num(a.value), _num(a.threshold), _message(a)]
        tds = "".join(
            f"<td><span class='badge {a.kind.value.lower()}'>{_e(c)}</span></td>"
            if col == "kind"
            else f"<td>{_e(c)}</td>"
            for col, c in zip(ALERT_COLUMNS, cells, strict=True)
        )
        rows.append(f"<tr>{tds}</tr>")
    head = "".join(f"<th>{c}</th>" for c in ALERT_COLUMNS)
    return (
        f"<section><h2>Alerts</h2><p class='sub'>{len(alerts)} events in the order they happened. WARNING: value "
        "is the slope (σ/step) against θ_slope; ALERT: drift against θ_high; RECOVERY: drift against θ_low.</p>"
        f"<div class='scroll'><table id='alerts' class='alerts'><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div></section>"
    )


def _footer_html(config: ObserverConfig, source: str | Path | None) -> str:
    when = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    origin = f"Run: {_e(str(source))}. " if source is not None else ""
    return (
        f"<footer>{origin}Thresholds: θ_high = {config.theta_high:g}, θ_low = {config.theta_low:g}, "
        f"θ_slope = {config.theta_slope:g}. Generated {_e(when)} by deepdrift {_e(__version__)}.</footer>"
    )


# ------------------------------------------------------------------------------------------------------ figures
def _figures(history: DriftHistory, config: ObserverConfig, s: RunSummary) -> list[tuple[str, str, str, str]]:
    """``(css class, alt text, caption html, base64 png)`` of every figure."""
    from . import plots

    column = list(history.steps).index(s.worst_step)
    high = f"θ<sub>high</sub> = {config.theta_high:g}"
    with plots.paper_style():
        timeline = _new_figure(8.0, min(0.2 * len(history.layers) + 1.7, 7.0))
        plots.plot_drift_timeline(history, ax=timeline.add_subplot(), config=config, title=None)
        plots.readable_symlog_ticks(timeline.axes[0].images[0].colorbar.ax.yaxis, config)
        zones = _new_figure(8.0, 2.6)
        plots.plot_drift_by_zone(history, ax=zones.add_subplot(), config=config, zones=s.zones, title=None)
        profiles = _new_figure(5.0, 3.0)
        plots.plot_profile_summary(history, ax=profiles.add_subplot(), config=config, title=None)
        worst = _new_figure(5.0, 3.0)
        worst_ax = plots.plot_drift_profile(
            _profile_at(history, s, column), ax=worst.add_subplot(), config=config, title=None
        )
        worst_ax.legend(frameon=False, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        plots.readable_symlog_ticks(worst_ax.yaxis, config)
    timeline_caption = (
        "<b>MRI timeline.</b> Drift of every tap (rows, input at the top) at every step; colour is linear up to "
        f"{high} (white tick on the scale) and logarithmic above. Bars under a row mark WARNING / ALERT states; "
        "markers: ▼ warning, × alert, ○ recovery."
    )
    zones_caption = (
        "<b>Drift over time.</b> The largest drift within each depth zone (UV: input side … IR: output side) at "
        f"every step, with {high} and θ<sub>low</sub>."
    )
    profiles_caption = (
        "<b>Drift profiles.</b> Mean, last and peak drift of each tap over the run, in depth order; the shaded band "
        "spans the 10th–90th percentile of its steps."
    )
    worst_caption = (
        f"<b>Worst step ({s.worst_step}).</b> Drift of each tap at the step with the largest drift; bars coloured by "
        "this step's drift against the thresholds."
    )
    return [
        ("wide", "drift timeline heatmap", timeline_caption, _png(timeline)),
        ("wide", "largest drift per depth zone over the steps", zones_caption, _png(zones)),
        ("half", "mean, last and peak drift profiles over depth", profiles_caption, _png(profiles)),
        ("half", "drift profile at the worst step", worst_caption, _png(worst)),
    ]


def _new_figure(width: float, height: float) -> Figure:
    """A figure outside pyplot's global state (nothing to close, safe in servers and threads)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _png(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=150, facecolor="white")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


# ------------------------------------------------------------------------------------------------------ helpers
def _profile_at(history: DriftHistory, s: RunSummary, column: int) -> dict[str, dict[str, Any]]:
    """The status-like profile of one step, as the doctor and ``plot_drift_profile`` read it."""
    drift = history.drift_matrix[:, column]
    n = len(s.layers)
    return {
        name: {"drift": float(drift[i]), "depth": i / max(n - 1, 1), "zone": s.zones[i], "label": s.labels[i]}
        for i, name in enumerate(s.layers)
    }


def _message(alert: Alert) -> str:
    """The alert's one-line message without its leading emoji: the kind column shows it in colour, and browsers
    without an emoji font draw boxes."""
    text = str(alert)
    symbol, _, rest = text.partition(" ")
    return rest if rest and not symbol.isascii() else text


def _sigma(value: float) -> str:
    return "non-finite" if not np.isfinite(value) else f"{value:.1f} σ"


def _num(value: float) -> str:
    return "NaN" if not np.isfinite(value) else f"{value:.3f}"


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


_CSS = """
:root { --ink: #1f2933; --muted: #616e7c; --line: #e4e7eb; --bg: #f7f8fa; --warn: #e0a526; --alert: #c8423b;
        --ok: #4c9a6a; --accent: #3a6ea5; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink);
       font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1180px; margin: 0 auto; padding: 28px 32px 40px; }
header h1 { margin: 0; font-size: 26px; word-break: break-all; }
h2 { font-size: 18px; margin: 32px 0 8px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
.sub { color: var(--muted); margin: 2px 0 10px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: 12px; margin: 18px 0 12px; }
.card { background: #fff; border: 1px solid var(--line); border-top: 4px solid var(--accent); border-radius: 6px;
        padding: 10px 14px; }
.card .value { font-size: 24px; font-weight: 600; overflow-wrap: anywhere; }
.card .what { color: var(--muted); font-size: 13px; }
.card.warning { border-top-color: var(--warn); } .card.alert { border-top-color: var(--alert); }
.card.recovery { border-top-color: var(--ok); } .card.worst { border-top-color: #7b5fa8; }
.summary p { margin: 4px 0; }
.grid { display: grid; grid-template-columns: 1fr 1fr; gap: 16px; }
figure { margin: 0; background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 12px; }
figure.wide { grid-column: 1 / -1; }
figure img { display: block; width: 100%; height: auto; }
figcaption { color: var(--muted); font-size: 13px; margin-top: 8px; }
@media (max-width: 820px) { .grid { grid-template-columns: 1fr; } }
table { border-collapse: collapse; width: 100%; background: #fff; font-size: 13px; }
th, td { text-align: left; padding: 5px 9px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: #eef1f5; position: sticky; top: 0; font-weight: 600; }
td:nth-child(n+5) { font-variant-numeric: tabular-nums; }
table.alerts td:nth-child(1), table.alerts td:nth-child(6), table.alerts td:nth-child(7) { text-align: right; }
.scroll { max-height: 560px; overflow: auto; border: 1px solid var(--line); border-radius: 6px; }
.badge { display: inline-block; padding: 0 7px; border-radius: 9px; font-size: 12px; font-weight: 600; color: #fff; }
.badge.warning { background: var(--warn); } .badge.alert, .badge.nonfinite { background: var(--alert); }
.badge.recovery { background: var(--ok); }
.empty { color: var(--muted); font-style: italic; }
footer { margin-top: 32px; color: var(--muted); font-size: 12px; border-top: 1px solid var(--line); padding-top: 8px; }
"""
