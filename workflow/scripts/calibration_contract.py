"""Thin adapter: the sigma-contract check on the configured trained models."""

from _common import setup, stem, weights_by_model

from experiments.calibration_check.run import calibration_check

setup(snakemake)  # noqa: F821
cfg = snakemake.config  # noqa: F821
out = snakemake.output  # noqa: F821
models = cfg["calibration"]["models"]
calibration_check(
    model_cfgs=cfg["models"],
    weights=weights_by_model(snakemake, models),  # noqa: F821
    data_cfg=cfg["data"],
    study_cfg=cfg["calibration"],
    out_drift=out.drift,
    figure_stem=stem(out.figure),
    table_stem=stem(out.table),
    noise_table_stem=stem(out.noise),
)
