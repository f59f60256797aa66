"""Shared figure and table style for every study."""

from experiments.figures.style import paper_context, save_figure, write_table

__all__ = ["paper_context", "save_figure", "write_table"]
