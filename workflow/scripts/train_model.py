"""Thin adapter: train one configured classifier (resumes from its checkpoint if a run was killed)."""

from _common import setup

from experiments.models.zoo import DataSpec, ModelSpec, train_model

setup(snakemake)  # noqa: F821
cfg = snakemake.config  # noqa: F821
key = snakemake.wildcards.model  # noqa: F821
train_model(
    ModelSpec.from_config(key, cfg["models"][key]),
    DataSpec.from_config(cfg["data"]),
    weights_out=snakemake.output.weights,  # noqa: F821
    metrics_out=snakemake.output.metrics,  # noqa: F821
    checkpoint=snakemake.params.checkpoint,  # noqa: F821
)
