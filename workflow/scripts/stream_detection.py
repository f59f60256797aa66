"""Thin adapter: the streaming-detection benchmark on the configured trained models."""

from _common import setup, stem, weights_by_model

from experiments.streams.run import stream_benchmark

setup(snakemake)  # noqa: F821
cfg = snakemake.config  # noqa: F821
out = snakemake.output  # noqa: F821
models = cfg["streams"]["models"]
stream_benchmark(
    model_cfgs=cfg["models"],
    weights=weights_by_model(snakemake, models),  # noqa: F821
    data_cfg=cfg["data"],
    study_cfg=cfg["streams"],
    out_runs=out.runs,
    stems={name: stem(out[name]) for name in ("curves", "matched", "deepdrift", "issue3", "timeline", "curves_figure")},
    cache_dir=snakemake.params.cache_dir,  # noqa: F821
)
