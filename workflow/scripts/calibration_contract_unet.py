"""Thin adapter: rule calibration_contract_unet -> experiments.diffusion.contract.unet_contract."""

from _common import setup

from experiments.diffusion.contract import unet_contract
from experiments.workflow_config import load_config

smk = snakemake  # noqa: F821  (the object Snakemake's script directive provides)
setup(smk)
unet_contract(load_config(smk.config), dict(smk.input), dict(smk.output))
