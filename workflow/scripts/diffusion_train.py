"""Thin adapter: rule diffusion_train -> experiments.diffusion.run.train (one run; resumes from its folder)."""

from _common import setup

from experiments.diffusion.run import train
from experiments.workflow_config import load_config

smk = snakemake  # noqa: F821  (the object Snakemake's script directive provides)
setup(smk)
train(load_config(smk.config), dict(smk.input), dict(smk.output), run=smk.wildcards.run, folder=smk.params.folder)
