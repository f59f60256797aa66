"""Thin adapter: rule figure_index -> experiments.figure_index.write_index."""

from pathlib import Path

from experiments.figure_index import write_index

smk = snakemake  # noqa: F821  (the object Snakemake's script directive provides)
out = Path(smk.output[0])
write_index(out.parent, smk.params.catalogue, smk.params.config_set, out)
