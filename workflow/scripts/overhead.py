"""Thin adapter: monitor overhead against a plain forward pass."""

from pathlib import Path

from _common import setup

from experiments.calibration_check.run import overhead_check

setup(snakemake)  # noqa: F821
cfg = snakemake.config  # noqa: F821
models = cfg["calibration"]["overhead"]["models"]
overhead_check(
    model_cfgs=cfg["models"],
    weights=dict(zip(models, snakemake.input.weights, strict=True)),  # noqa: F821
    data_cfg=cfg["data"],
    overhead_cfg=cfg["calibration"]["overhead"],
    table_stem=Path(snakemake.output.table[0]).with_suffix(""),  # noqa: F821
)
