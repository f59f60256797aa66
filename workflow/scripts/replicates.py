"""Thin adapter: rule replicates -> experiments.replicates.run.run."""

from _common import setup

from experiments.replicates.run import run
from experiments.workflow_config import load_config

smk = snakemake  # noqa: F821  (the object Snakemake's script directive provides)
setup(smk)
run(load_config(smk.config), dict(smk.input), dict(smk.output))
