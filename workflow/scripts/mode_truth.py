"""Thin adapter: rule mode_truth -> experiments.mode_truth.run.run."""

from _common import setup

from experiments.mode_truth.run import run
from experiments.workflow_config import load_config

smk = snakemake  # noqa: F821  (the object Snakemake's script directive provides)
setup(smk)
run(load_config(smk.config), dict(smk.input), dict(smk.output))
