"""Thin adapter: rule calibration_contract -> experiments.calibration_check.run.contract."""

from _common import setup

from experiments.calibration_check.run import contract
from experiments.workflow_config import load_config

smk = snakemake  # noqa: F821  (the object Snakemake's script directive provides)
setup(smk)
contract(load_config(smk.config), dict(smk.input), dict(smk.output))
