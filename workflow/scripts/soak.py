"""Thin adapter: rule soak -> experiments.calibration_check.run.soak."""

from _common import setup

from experiments.calibration_check.run import soak
from experiments.workflow_config import load_config

smk = snakemake  # noqa: F821  (the object Snakemake's script directive provides)
setup(smk)
soak(load_config(smk.config), dict(smk.input), dict(smk.output))
