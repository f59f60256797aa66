"""Thin adapter: train one (N, seed) DDPM of the diffusion study (resumes from its checkpoint folder)."""

from _common import setup

from experiments.diffusion.run import train_job

setup(snakemake)  # noqa: F821
n_train, seed = (int(part[1:]) for part in snakemake.wildcards.run.split("_"))  # noqa: F821
train_job(snakemake.config["diffusion"], n_train, seed, snakemake.params.folder,  # noqa: F821
          snakemake.output.manifest)  # noqa: F821
