"""Thin adapter: figures and tables of the diffusion study from the per-run CSVs."""

from pathlib import Path

from _common import setup

from experiments.diffusion.run import FRAMES, report_job

setup(snakemake)  # noqa: F821
inp, out = snakemake.input, snakemake.output  # noqa: F821
stems = {name: Path(getattr(out, name)[0]).with_suffix("") for name in (
    "heatmap", "memorisation", "bottleneck", "samples", "onsets", "onset_summary", "bottleneck_table", "memorised",
    "geometry")}
report_job(snakemake.config["diffusion"], {name: list(getattr(inp, name)) for name in FRAMES},  # noqa: F821
           list(inp.samples), stems)
