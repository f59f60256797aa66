"""Thin adapter: monitor overhead against a plain forward pass."""

from _common import setup, stem, weights_by_model

from experiments.calibration_check.run import overhead_check

setup(snakemake)  # noqa: F821
cfg = snakemake.config  # noqa: F821
models = cfg["calibration"]["overhead"]["models"]
overhead_check(
    model_cfgs=cfg["models"],
    weights=weights_by_model(snakemake, models),  # noqa: F821
    data_cfg=cfg["data"],
    study_cfg=cfg["calibration"],
    table_stem=stem(snakemake.output.table),  # noqa: F821
)
