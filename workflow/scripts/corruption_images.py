"""Thin adapter: the cached corrupted held-out set of the corruption benchmark."""

from _common import setup

from experiments.corruption import build_corrupted_heldout

setup(snakemake)  # noqa: F821
cfg = snakemake.config  # noqa: F821
build_corrupted_heldout(cfg["data"], cfg["corruption"], cache_dir=snakemake.params.cache,  # noqa: F821
                        manifest_out=snakemake.output.manifest)  # noqa: F821
