"""Thin adapter: rule replicates_detection -> experiments.replicates.run.detection."""

from _common import setup

from experiments.replicates.run import detection
from experiments.workflow_config import load_config

smk = snakemake  # noqa: F821  (the object Snakemake's script directive provides)
setup(smk)
detection(load_config(smk.config), dict(smk.input), dict(smk.output))
