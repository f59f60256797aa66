"""Thin adapter: the fault-localisation benchmark on the configured trained models."""

from _common import setup, stem, weights_by_model

from experiments.localisation.run import localisation_benchmark

setup(snakemake)  # noqa: F821
cfg = snakemake.config  # noqa: F821
out = snakemake.output  # noqa: F821
models = cfg["faults"]["models"]
localisation_benchmark(
    model_cfgs=cfg["models"],
    weights=weights_by_model(snakemake, models),  # noqa: F821
    data_cfg=cfg["data"],
    study_cfg=cfg["faults"],
    out_batches=out.batches,
    out_outputs=out.outputs,
    stems={
        name: stem(out[name]) for name in ("accuracy", "modes", "faults", "corruption_modes", "confusion", "detection")
    },
    cache_dir=snakemake.params.cache_dir,  # noqa: F821
)
