"""Thin adapter: AUROC/TPR, the three figures and the tables of the corruption benchmark."""

from _common import setup, stem

from experiments.corruption import corruption_report

CSVS = ("detection", "layers", "profile")
STEMS = ("mri", "severity", "detection_figure", "clean_accuracy", "auroc", "tpr", "layer_auroc", "drift_accuracy")

setup(snakemake)  # noqa: F821
inp, out = snakemake.input, snakemake.output  # noqa: F821
models = snakemake.params.models  # noqa: F821


def per_model(paths):
    return dict(zip(models, paths, strict=True))


outputs = {key: out[key] for key in CSVS} | {key: stem(out[key]) for key in STEMS}
scores, accuracy, taps, metrics = (per_model(paths) for paths in (inp.scores, inp.accuracy, inp.taps, inp.metrics))
corruption_report(scores, accuracy, taps, metrics, snakemake.config["corruption"], outputs)  # noqa: F821
