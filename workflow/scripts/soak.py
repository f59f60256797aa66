"""Thin adapter: memory of a long-running monitor (bounded by default, and unbounded for contrast)."""

from _common import setup, stem

from experiments.calibration_check.run import soak_check

setup(snakemake)  # noqa: F821
soak_check(
    study_cfg=snakemake.config["calibration"],  # noqa: F821
    table_stem=stem(snakemake.output.table),  # noqa: F821
    trace_csv=snakemake.output.trace,  # noqa: F821
)
