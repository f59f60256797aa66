"""Thin adapter: memorisation, loss gap and per-block drift at every checkpoint of one (N, seed) run."""

from _common import setup

from experiments.diffusion.run import FRAMES, evaluate_job

setup(snakemake)  # noqa: F821
out = snakemake.output  # noqa: F821
n_train, seed = (int(part[1:]) for part in snakemake.wildcards.run.split("_"))  # noqa: F821
evaluate_job(snakemake.config["diffusion"], n_train, seed, snakemake.input.manifest,  # noqa: F821
             {name: getattr(out, name) for name in (*FRAMES, "samples")})
