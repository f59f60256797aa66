"""Thin adapter: rule diffusion_report -> experiments.diffusion.run.report."""

from _common import setup

from experiments.diffusion.run import report
from experiments.workflow_config import load_config

smk = snakemake  # noqa: F821  (the object Snakemake's script directive provides)
setup(smk)
report(load_config(smk.config), dict(smk.input), dict(smk.output))
