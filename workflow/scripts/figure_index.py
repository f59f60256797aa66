"""Thin adapter: write the figures README from workflow/figures.yaml."""

from pathlib import Path

from experiments.figure_index import write_index

out = Path(snakemake.output[0])  # noqa: F821
write_index(out.parent, snakemake.params.catalogue, snakemake.params.config_set, out)  # noqa: F821
