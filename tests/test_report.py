"""The run report: a real monitored run saved to CSV, rendered by ``deepdrift report``, parsed and (where chromium is
installed) drawn by a headless browser."""

from __future__ import annotations

import base64
import math
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from library_fixtures import clean_batches, make_small_cnn
from typer.testing import CliRunner

from deepdrift import DeepDriftMonitor
from deepdrift.cli import app
from deepdrift.history import DriftHistory
from deepdrift.observer import Alert, AlertKind
from deepdrift.report import ALERT_COLUMNS, render_report

runner = CliRunner()
N_FIGURES = 4  # timeline, drift by zone over time, profiles over depth, worst step


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory) -> Path:
    """Clean batches, a slow ramp (WARNING), a strong shift (ALERT), clean again (RECOVERY): saved as CSV."""
    torch.manual_seed(0)
    monitor = DeepDriftMonitor(make_small_cnn())
    monitor.calibrate(clean_batches(40, seed=1))
    for x in clean_batches(10, seed=2):
        monitor.step(x)
    for k, x in enumerate(clean_batches(16, seed=3)):
        monitor.step(x + 0.03 * k)
    for x in clean_batches(8, seed=4):
        monitor.step(x * 1.5 + 0.8)
    for x in clean_batches(8, seed=5):
        monitor.step(x)
    return monitor.history.save(tmp_path_factory.mktemp("run") / "run.csv")


@pytest.fixture(scope="module")
def page(saved_run) -> Path:
    out = saved_run.with_name("report.html")
    result = runner.invoke(app, ["report", str(saved_run), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"wrote {out} (") and "42 steps, 3 layers" in result.output
    return out


class PageParser(HTMLParser):
    """Images, every src/href, figures, the alert table's cells and the section titles of a report."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[dict[str, str]] = []
        self.references: list[str] = []
        self.tags: set[str] = set()
        self.figures = self.captions = 0
        self.headings: list[str] = []
        self.alert_head: list[str] = []
        self.alert_rows: list[list[str]] = []
        self._in_alerts = self._in_heading = False
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        self.tags.add(tag)
        self.references += [v for k, v in attributes.items() if k in ("src", "href", "srcset", "action")]
        self.images += [attributes] if tag == "img" else []
        self.figures += tag == "figure"
        self.captions += tag == "figcaption"
        self._in_heading = self._in_heading or tag == "h2"
        self.headings += [""] if tag == "h2" else []
        self._in_alerts = self._in_alerts or (tag == "table" and attributes.get("id") == "alerts")
        if self._in_alerts and tag == "tr":
            self.alert_rows.append([])
        if self._in_alerts and tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "h2":
            self._in_heading = False
        if self._in_alerts and tag in ("td", "th") and self._cell is not None:
            self.alert_rows[-1].append("".join(self._cell).strip())
            self._cell = None
        if tag == "table" and self._in_alerts:
            self._in_alerts = False
            self.alert_head = self.alert_rows.pop(0)

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self._in_heading:
            self.headings[-1] += data


def parse(path: Path) -> PageParser:
    parser = PageParser()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def test_report_embeds_every_figure_as_an_inline_png(page):
    parsed = parse(page)
    assert parsed.figures == parsed.captions == len(parsed.images) == N_FIGURES
    for image in parsed.images:
        prefix = "data:image/png;base64,"
        assert image["src"].startswith(prefix) and image["alt"]
        png = base64.b64decode(image["src"][len(prefix) :], validate=True)
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
        width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
        assert width >= 600 and height >= 300, (width, height)


def test_report_has_one_alert_row_per_alert_with_the_saved_columns(page, saved_run):
    parsed = parse(page)
    alerts = pd.read_csv(saved_run.with_name("run.alerts.csv"), dtype={"layer": str})
    assert set(alerts["kind"]) == {"WARNING", "ALERT", "RECOVERY"}
    assert parsed.alert_head == list(ALERT_COLUMNS)
    assert len(parsed.alert_rows) == len(alerts)
    for row, saved in zip(parsed.alert_rows, alerts.itertuples(index=False), strict=True):
        assert len(row) == len(ALERT_COLUMNS)
        assert row[:5] == [str(saved.step), saved.layer, saved.label, saved.zone, saved.kind]
        assert float(row[5]) == pytest.approx(saved.value, abs=1e-3) and saved.message.endswith(row[7])


def test_report_is_self_contained_with_summary_sections(page):
    parsed = parse(page)
    assert all(ref.startswith("data:") for ref in parsed.references), parsed.references
    assert not parsed.tags & {"script", "link", "iframe", "object", "embed"}
    assert parsed.headings == ["Figures", "Layers", "Alerts"]
    text = page.read_text(encoding="utf-8")
    assert "http://" not in text and "https://" not in text and "url(" not in text
    for fact in ("steps 1–42", "WARNING events", "ALERT events", "RECOVERY events", "Doctor at the worst step"):
        assert fact in text, fact


def test_history_load_reads_back_what_save_writes(saved_run):
    history = DriftHistory.load(saved_run)
    assert history.layers == ["2", "6", "9"]  # numeric module names stay text
    assert len(history) == 42 and list(history.steps) == list(range(1, 43))
    table = pd.read_csv(saved_run, dtype={"layer": str})
    assert np.allclose(history.drift_matrix.reshape(-1), table["drift"].to_numpy())
    assert history.to_frame().equals(DriftHistory.from_frames(history.to_frame()).to_frame())
    kinds = [a.kind for a in history.alerts]
    assert kinds[0] is AlertKind.WARNING and kinds[-1] is AlertKind.RECOVERY


def _synthetic(steps: int = 12) -> DriftHistory:
    history = DriftHistory(["a", "b", "NA", "d"], ["a", "b", "NA", "d"])
    for step in range(1, steps + 1):
        drift = np.array([0.1 * step, 0.5, math.nan if step == 6 else 40.0 * (step > 8), -0.3])
        alerts = [Alert("NA", "NA", "Deep", AlertKind.NONFINITE, math.nan, 3.0, step)] if step == 6 else []
        history.record(step, drift, ["NORMAL", "NORMAL", "ALERT" if step >= 6 else "NORMAL", "NORMAL"], alerts)
    return history


def test_non_finite_drift_and_awkward_names_round_trip_and_render(tmp_path):
    history = _synthetic()
    saved = DriftHistory.load(history.save(tmp_path / "odd.csv"))
    assert saved.layers == history.layers
    assert np.array_equal(np.isnan(saved.drift_matrix), np.isnan(history.drift_matrix))
    assert [repr(a) for a in saved.alerts] == [repr(a) for a in history.alerts]  # NaN values: compare text
    out = render_report(tmp_path / "odd.csv", tmp_path / "odd.html")
    parsed = parse(out)
    assert len(parsed.images) == N_FIGURES and len(parsed.alert_rows) == 1
    assert parsed.alert_rows[0][4:7] == ["NONFINITE", "NaN", "3.000"]
    assert "peak non-finite at step 6" in out.read_text(encoding="utf-8")


def test_render_report_takes_a_live_history_and_escapes_text(tmp_path):
    history = DriftHistory(["<script>x</script>"], ["<b>&"])
    out = render_report(history, tmp_path / "sub" / "empty.html", title="<i>run</i>")
    text = out.read_text(encoding="utf-8")
    assert "<script>" not in text and "&lt;i&gt;run&lt;/i&gt;" in text
    assert "no steps" in text and not parse(out).images


def test_report_command_errors_are_one_line(tmp_path, saved_run):
    cases = [
        ([str(tmp_path / "missing.csv")], "no history file"),
        ([str(saved_run.with_name("run.alerts.csv"))], "is the alerts file of a run; pass the drift table"),
        ([str(saved_run), "--theta-high", "1", "--theta-low", "2"], "theta_low (2.0) must be below theta_high"),
    ]
    (tmp_path / "lonely.csv").write_text(saved_run.read_text())
    cases.append(([str(tmp_path / "lonely.csv")], "lonely.alerts.csv"))
    (tmp_path / "wrong.csv").write_text("a,b\n1,2\n")
    (tmp_path / "wrong.alerts.csv").write_text("a,b\n")
    cases.append(([str(tmp_path / "wrong.csv")], "drift table lacks columns ['step', 'layer', 'label'"))
    for args, message in cases:
        result = runner.invoke(app, ["report", *args, "-o", str(tmp_path / "x.html")])
        assert result.exit_code == 2 and result.stdout == "", (args, result.output)
        assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
        assert message in result.stderr, result.stderr


CHROMIUM = shutil.which("chromium")


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)")
def test_headless_chromium_draws_a_page_that_is_not_blank(page, tmp_path):
    from matplotlib.image import imread

    shot = tmp_path / "report.png"
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        f"--screenshot={shot}",
        "--window-size=1280,2000",
        page.resolve().as_uri(),
    ]
    subprocess.run(command, capture_output=True, timeout=120, check=True)
    pixels = imread(shot)[..., :3]
    assert pixels.shape[:2] == (2000, 1280)
    not_white = np.mean(pixels.min(axis=2) < 0.9)
    dark = np.mean(pixels.max(axis=2) < 0.3)  # the magma heatmap and the text
    colours = len(np.unique((pixels * 31).astype(np.uint8).reshape(-1, 3), axis=0))
    assert not_white > 0.1 and dark > 0.003 and colours > 200, (not_white, dark, colours)


def test_run_summary_figures_stand_alone_with_plain_symlog_ticks(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from deepdrift.plots import plot_drift_by_zone, plot_profile_summary

    history = _synthetic()
    ax = plot_drift_by_zone(history, save=tmp_path / "zones.png")
    assert ax.get_yscale() == "symlog"  # drift of 40 sigma dwarfs theta_high = 3
    ax.figure.canvas.draw()
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert "3" in labels and "10" in labels and not any("^" in label for label in labels), labels
    assert {line.get_label() for line in ax.get_lines()} >= {"UV", "Mid", "Deep", "IR"}
    ax = plot_profile_summary(history, save=tmp_path / "profiles.png")
    assert [t.get_text() for t in ax.get_xticklabels()] == history.labels
    assert (tmp_path / "zones.png").stat().st_size > 5_000 and (tmp_path / "profiles.png").stat().st_size > 5_000


def test_the_report_module_imports_no_plotting_library_until_it_draws():
    probe = "import sys, deepdrift.report; assert not {'matplotlib', 'seaborn', 'typer'} & set(sys.modules)"
    subprocess.run([sys.executable, "-c", probe], check=True, timeout=120)
