"""Thin adapter: rule corruption_images -> experiments.corruption.run.images."""

from _common import setup

from experiments.corruption.run import images
from experiments.workflow_config import load_config

smk = snakemake  # noqa: F821  (the object Snakemake's script directive provides)
setup(smk)
images(load_config(smk.config), dict(smk.input), dict(smk.output), cache_dir=smk.params.cache)
