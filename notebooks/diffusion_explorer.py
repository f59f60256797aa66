# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Diffusion memorisation explorer
#
# Loads one trained checkpoint of the diffusion study and the study's per-run results, then asks questions the
# workflow does not: does the train-vs-held-out drift gap move with the noise level t, and does it sit in a
# particular *layer* inside a block (block granularity)? Every gap is compared with the same held-out-vs-held-out
# null as in the study.
#
# Run the study first (`snakemake ... --config config_set=default`, or `test`). With `DEEPDRIFT_SMOKE=1` the notebook
# uses the `test` config set and its outputs if they exist, and otherwise trains a tiny model for a few steps, so it
# always runs. `DEEPDRIFT_RESULTS_DIR=<folder>` points it at another results folder (see `experiments/results.py`).

# %%
import json
import logging
import os
import tempfile
from dataclasses import replace
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import torch

from experiments.diffusion import (
    build_scheduler,
    build_unet,
    ddim_sample,
    drift_gaps,
    drift_vs_null,
    load_checkpoint_weights,
    memorisation_row,
    split_images,
    study_split,
    train_run,
)
from experiments.results import Results
from experiments.workflow_config import load_config_set

logging.basicConfig(level=logging.WARNING)
torch.set_num_threads(1)
SMOKE = os.environ.get("DEEPDRIFT_SMOKE") == "1"
CONFIG_SET = "test" if SMOKE else "default"
study = load_config_set(CONFIG_SET).diffusion
results = Results.of(CONFIG_SET)
print(f"config set {CONFIG_SET!r}, smoke mode {SMOKE}, results in {results.root}")

# %% [markdown]
# ## A checkpoint
# The smallest N memorises most; its first seed's last checkpoint is the default object of study.

# %%
n_train, seed = min(study.sizes), study.seeds[0]
manifest = results.diffusion_manifest(n_train, seed)
if not manifest.is_file():
    if not SMOKE:
        raise FileNotFoundError(f"{manifest} is missing: run the workflow's diffusion rules for {CONFIG_SET!r} first")
    study = replace(study, train=replace(study.train, steps=6, checkpoint_every=3))  # smoke: a tiny run, trained here
    scratch = Path(tempfile.mkdtemp(prefix="diffusion_smoke_"))
    manifest = scratch / "train.json"
    train_run(study, n_train, seed, scratch / "checkpoints", manifest)
data, eval_spec = study.data, study.eval
checkpoints = {int(k): v for k, v in json.loads(manifest.read_text())["checkpoints"].items()}
last_step = max(checkpoints)
scheduler = build_scheduler(study.train)
model = load_checkpoint_weights(checkpoints[last_step], build_unet(study.unet, data.img_size, data.channels))
images = split_images(data, study_split(data, eval_spec, n_train, seed))
samples = ddim_sample(model, scheduler, eval_spec.n_samples, eval_spec.ddim_steps, eval_spec.sample_seed)
memorisation_row(samples, images.train, eval_spec.memorisation_ratio)

# %% [markdown]
# ## The study's results
# Null-corrected gaps (sigma units) at the last checkpoint, per N, t and block, from the workflow's CSVs.

# %%
frames = results.diffusion_frames()
if frames:
    gaps = drift_gaps(frames["drift"], eval_spec.alpha)
    final = gaps[gaps["step"] == gaps.groupby(["n_train", "seed"])["step"].transform("max")]
    display_table = final.pivot_table(index=["n_train", "t"], columns="block", values="gap_z", sort=False)
    print(display_table.round(2))
else:
    print("no study CSVs yet; only the checkpoint above is explored")

# %% [markdown]
# ## Hypothesis 1: the noise level t
# The drift gap of training images may depend strongly on t. Scan more levels than the workflow uses.

# %%
timesteps = [20, 300] if SMOKE else [10, 50, 100, 200, 350, 500, 750]
null_sets = images.null_sets[: 3 if SMOKE else len(images.null_sets)]
scan = pd.concat(
    [
        drift_vs_null(
            model, scheduler, images.calib, images.scored, null_sets, t, eval_spec.noise_seed, eval_spec.noise_draws
        )
        for t in timesteps
    ],
    ignore_index=True,
)
scan_gaps = drift_gaps(scan.assign(n_train=n_train, seed=seed, step=last_step), eval_spec.alpha)
fig, ax = plt.subplots(figsize=(5, 3))
for block, group in scan_gaps.groupby("block", sort=False):
    ax.plot(group["t"], group["gap_z"], marker="o", label=block)
ax.set(xlabel="noise level t", ylabel="gap z vs held-out null", title=f"N = {n_train}, step {last_step}")
ax.axhline(0, color="grey", lw=0.6)
ax.legend(fontsize=6, frameon=False)

# %% [markdown]
# ## Hypothesis 2: block granularity
# Tap every resnet and resampler instead of whole blocks: is a block's gap carried by its skip-fed resnets or by the
# resolution change?

# %%
fine = [
    name
    for name, _ in model.named_modules()
    if name.rsplit(".", 2)[-2:-1] in (["resnets"], ["downsamplers"], ["upsamplers"])
]
t_fine = timesteps[len(timesteps) // 2]
fine_frame = drift_vs_null(
    model,
    scheduler,
    images.calib,
    images.scored,
    null_sets,
    t_fine,
    eval_spec.noise_seed,
    eval_spec.noise_draws,
    layers=fine,
)
fine_gaps = drift_gaps(fine_frame.assign(n_train=n_train, seed=seed, step=last_step), eval_spec.alpha)
fine_gaps[["block", "train_drift", "null_mean", "null_sd", "gap", "gap_z", "significant"]].round(2)
