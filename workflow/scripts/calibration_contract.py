"""Thin adapter: the sigma-contract check on the configured trained models."""

from pathlib import Path

from _common import setup

from experiments.calibration_check.run import calibration_check

setup(snakemake)  # noqa: F821
cfg = snakemake.config  # noqa: F821
out = snakemake.output  # noqa: F821
models = cfg["calibration"]["models"]
calibration_check(
    model_cfgs=cfg["models"],
    weights=dict(zip(models, snakemake.input.weights, strict=True)),  # noqa: F821
    data_cfg=cfg["data"],
    check_cfg=cfg["calibration"]["contract"],
    out_drift=out.drift,
    figure_stem=Path(out.figure[0]).with_suffix(""),
    table_stem=Path(out.table[0]).with_suffix(""),
    noise_table_stem=Path(out.noise[0]).with_suffix(""),
)
