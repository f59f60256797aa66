"""Thin adapter: rule corruption_measure -> experiments.corruption.run.measure (one model)."""

from _common import setup

from experiments.corruption.run import measure
from experiments.workflow_config import load_config

smk = snakemake  # noqa: F821  (the object Snakemake's script directive provides)
setup(smk)
measure(load_config(smk.config), dict(smk.input), dict(smk.output), model=smk.wildcards.model)
