"""Thin adapter: rule overhead -> experiments.calibration_check.run.overhead."""

from _common import setup

from experiments.calibration_check.run import overhead
from experiments.workflow_config import load_config

smk = snakemake  # noqa: F821  (the object Snakemake's script directive provides)
setup(smk)
overhead(load_config(smk.config), dict(smk.input), dict(smk.output))
