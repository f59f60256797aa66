"""One look for every figure and table: seaborn paper context, TrueType fonts, PDF + PNG, CSV + LaTeX + Markdown.

Every file is written reproducibly: the same figure or frame gives the same bytes on every run, so a regenerated
``paper_figures/`` differs from the committed one only where a number or a line moved. PDFs carry no creation date
(matplotlib stamps the current time otherwise); text is written as UTF-8 with ``\\n`` line ends on every platform.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from experiments.atomic import atomic_path

SAVE_RC: dict[str, int] = {"pdf.fonttype": 42, "ps.fonttype": 42, "savefig.dpi": 200}
"""Settings read when a figure is saved, not when it is drawn: :func:`save_figure` applies them itself, because
figures are built inside :func:`paper_context` but saved after it has closed."""


@contextmanager
def paper_context(font_scale: float = 0.9) -> Iterator[None]:
    """Seaborn paper context with embedded TrueType fonts, restored afterwards."""
    with (
        sns.plotting_context("paper", font_scale=font_scale),
        sns.axes_style("ticks"),
        plt.rc_context({**SAVE_RC, "figure.dpi": 100}),
    ):
        yield


FIGURE_METADATA: dict[str, dict[str, str | None]] = {
    ".pdf": {"CreationDate": None, "ModDate": None},
    ".png": {},
}
"""``savefig`` metadata per format: no timestamps (PNG has none; its ``Software`` key names the matplotlib version)."""


def save_figure(fig: plt.Figure, stem: str | Path) -> list[Path]:
    """Write ``stem.pdf`` and ``stem.png`` atomically (TrueType fonts, 200 dpi, no timestamps); close the figure."""
    stem = Path(stem)
    written = []
    for suffix, metadata in FIGURE_METADATA.items():
        target = stem.with_suffix(suffix)
        with atomic_path(target) as tmp, plt.rc_context(SAVE_RC):
            fig.savefig(tmp, format=suffix[1:], bbox_inches="tight", metadata=metadata)
        written.append(target)
    plt.close(fig)
    return written


def write_table(frame: pd.DataFrame, stem: str | Path, float_format: str = "%.3f", caption: str = "") -> list[Path]:
    """Write ``stem.csv``, ``stem.md`` and ``stem.tex`` atomically (Markdown for READMEs, LaTeX for the paper).

    Rows and columns are written in the frame's order: callers sort them (dict and set order must not reach a table).
    """
    stem = Path(stem)
    outputs = {
        ".csv": frame.to_csv(index=False, float_format=float_format, lineterminator="\n"),
        ".md": frame.to_markdown(index=False, floatfmt=float_format.lstrip("%")),
        ".tex": frame.to_latex(
            index=False, float_format=lambda v: float_format % v, caption=caption or None, escape=True
        ),
    }
    written = []
    for suffix, text in outputs.items():
        target = stem.with_suffix(suffix)
        with atomic_path(target) as tmp:
            tmp.write_text(text, encoding="utf-8", newline="\n")
        written.append(target)
    return written
