"""Thin adapter: AUROC/TPR, the three figures and the tables of the corruption benchmark."""

from pathlib import Path

from _common import setup

from experiments.corruption import corruption_report

setup(snakemake)  # noqa: F821
inp, out = snakemake.input, snakemake.output  # noqa: F821
models = snakemake.params.models  # noqa: F821


def per_model(paths):
    return dict(zip(models, paths, strict=True))


def stem(paths):
    return Path(paths[0]).with_suffix("")


outputs = {key: out[key] for key in ("detection", "layers", "profile")}
outputs |= {key: stem(out[key]) for key in ("mri", "severity", "detection_figure", "clean_accuracy", "auroc", "tpr",
                                            "layer_auroc", "drift_accuracy")}
corruption_report(per_model(inp.scores), per_model(inp.accuracy), per_model(inp.taps), per_model(inp.metrics),
                  snakemake.config["corruption"], outputs)  # noqa: F821
