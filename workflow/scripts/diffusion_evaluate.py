"""Thin adapter: rule diffusion_evaluate -> experiments.diffusion.run.evaluate (one run)."""

from _common import setup

from experiments.diffusion.run import evaluate
from experiments.workflow_config import load_config

smk = snakemake  # noqa: F821  (the object Snakemake's script directive provides)
setup(smk)
evaluate(load_config(smk.config), dict(smk.input), dict(smk.output), run=smk.wildcards.run)
