"""Thin adapter: batch scores of every detector and accuracy of one trained model on the corrupted set."""

from _common import setup

from experiments.corruption import measure_corruption

setup(snakemake)  # noqa: F821
cfg = snakemake.config  # noqa: F821
key = snakemake.wildcards.model  # noqa: F821
out = snakemake.output  # noqa: F821
measure_corruption(key, cfg["models"][key], snakemake.input.weights, cfg["data"], cfg["corruption"],  # noqa: F821
                   snakemake.input.manifest, out.scores, out.accuracy, out.taps)  # noqa: F821
