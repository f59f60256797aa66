"""One look for every figure and table: seaborn paper context, TrueType fonts, PDF + PNG, CSV + LaTeX + Markdown."""

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


@contextmanager
def paper_context(font_scale: float = 0.9) -> Iterator[None]:
    """Seaborn paper context with embedded TrueType fonts, restored afterwards."""
    with (
        sns.plotting_context("paper", font_scale=font_scale),
        sns.axes_style("ticks"),
        plt.rc_context({"pdf.fonttype": 42, "ps.fonttype": 42, "savefig.dpi": 200, "figure.dpi": 100}),
    ):
        yield


def save_figure(fig: plt.Figure, stem: str | Path) -> list[Path]:
    """Write ``stem.pdf`` and ``stem.png`` atomically and close the figure."""
    stem = Path(stem)
    written = []
    for suffix in (".pdf", ".png"):
        target = stem.with_suffix(suffix)
        with atomic_path(target) as tmp:
            fig.savefig(tmp, format=suffix[1:], bbox_inches="tight")
        written.append(target)
    plt.close(fig)
    return written


def write_table(frame: pd.DataFrame, stem: str | Path, float_format: str = "%.3f", caption: str = "") -> list[Path]:
    """Write ``stem.csv``, ``stem.md`` and ``stem.tex`` atomically (Markdown for READMEs, LaTeX for the paper)."""
    stem = Path(stem)
    outputs = {
        ".csv": frame.to_csv(index=False, float_format=float_format),
        ".md": frame.to_markdown(index=False, floatfmt=float_format.lstrip("%")),
        ".tex": frame.to_latex(
            index=False, float_format=lambda v: float_format % v, caption=caption or None, escape=True
        ),
    }
    written = []
    for suffix, text in outputs.items():
        target = stem.with_suffix(suffix)
        with atomic_path(target) as tmp:
            tmp.write_text(text)
        written.append(target)
    return written
