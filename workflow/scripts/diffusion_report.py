"""Thin adapter: figures and tables of the diffusion study from the per-run CSVs."""

from _common import setup, stem

from experiments.diffusion.run import FRAMES, report_job

STEMS = ("heatmap", "memorisation", "bottleneck", "samples", "onsets", "onset_summary", "bottleneck_table",
         "memorised", "geometry")  # fmt: skip

setup(snakemake)  # noqa: F821
inp, out = snakemake.input, snakemake.output  # noqa: F821
frames = {name: list(getattr(inp, name)) for name in FRAMES}
stems = {name: stem(getattr(out, name)) for name in STEMS}
report_job(snakemake.config["diffusion"], frames, list(inp.samples), stems)  # noqa: F821
