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
# Loads one trained checkpoint of the diffusion study (issue 5) and the study's per-run results, then asks questions
# the workflow does not: does the train-vs-held-out drift gap move with the noise level t, and does it sit in a
# particular *layer* inside a block (block granularity)? Every gap is compared with the same held-out-vs-held-out
# null as in the study.
#
# Run the study first (`snakemake ... --config config_set=default`, or `test`). With `DEEPDRIFT_SMOKE=1` the notebook
# uses the test-config outputs if they exist, and otherwise trains a tiny model for a few steps, so it always runs.
# `DEEPDRIFT_RESULTS_DIR` points it at another results folder (default `results/<config set>`).

# %%
import json
import logging
import os
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import torch
import yaml

from experiments.diffusion.data import study_split
from experiments.diffusion.drift import drift_vs_null
from experiments.diffusion.evaluate import load_images
from experiments.diffusion.memorisation import memorisation_row
from experiments.diffusion.model import build_scheduler, build_unet
from experiments.diffusion.onset import drift_gaps
from experiments.diffusion.run import FRAMES, specs, train_job
from experiments.diffusion.sampling import ddim_sample
from experiments.diffusion.train import load_checkpoint_weights

logging.basicConfig(level=logging.WARNING)
torch.set_num_threads(1)
SMOKE = os.environ.get("DEEPDRIFT_SMOKE") == "1"
ROOT = next(p for p in [Path.cwd(), *Path.cwd().parents] if (p / "pyproject.toml").is_file())
CONFIG_SET = "test" if SMOKE else os.environ.get("DEEPDRIFT_CONFIG_SET", "default")
cfg = yaml.safe_load((ROOT / "workflow" / "config" / CONFIG_SET / "diffusion.yaml").read_text())["diffusion"]
results_dir = Path(os.environ.get("DEEPDRIFT_RESULTS_DIR", ROOT / "results" / CONFIG_SET)) / "diffusion"
print(f"config set {CONFIG_SET!r}, smoke mode {SMOKE}, results in {results_dir}")

# %% [markdown]
# ## A checkpoint
# The smallest N memorises most; its first seed's last checkpoint is the default object of study.

# %%
n_train, seed = min(cfg["sizes"]), cfg["seeds"][0]
manifest = results_dir / f"N{n_train}_s{seed}" / "train.json"
if not manifest.is_file():
    if not SMOKE:
        raise FileNotFoundError(f"{manifest} is missing: run the workflow's diffusion rules for {CONFIG_SET!r} first")
    cfg["train"] |= {"steps": 6, "checkpoint_every": 3}  # smoke: a tiny run trained right here
    scratch = Path(tempfile.mkdtemp(prefix="diffusion_smoke_"))
    manifest = scratch / "train.json"
    train_job(cfg, n_train, seed, scratch / "checkpoints", manifest)
data, unet_spec, train_spec, eval_spec = specs(cfg)
checkpoints = {int(k): v for k, v in json.loads(manifest.read_text())["checkpoints"].items()}
last_step = max(checkpoints)
scheduler = build_scheduler(train_spec)
model = load_checkpoint_weights(checkpoints[last_step], build_unet(unet_spec, data.img_size, data.channels))
split = study_split(data, eval_spec, n_train, seed)
images = load_images(data, split)
samples = ddim_sample(model, scheduler, eval_spec.n_samples, eval_spec.ddim_steps, eval_spec.sample_seed)
memorisation_row(samples, images.train, eval_spec.memorisation_ratio)

# %% [markdown]
# ## The study's results
# Null-corrected gaps (sigma units) at the last checkpoint, per N, t and block, from the workflow's CSVs.

# %%
paths = {name: sorted(results_dir.glob(f"N*_s*/{name}.csv")) for name in FRAMES}
if paths["drift"]:
    frames = {name: pd.concat([pd.read_csv(p) for p in files], ignore_index=True) for name, files in paths.items()}
    gaps = drift_gaps(frames["drift"], eval_spec.alpha)
    final = gaps[gaps["step"] == gaps.groupby(["n_train", "seed"])["step"].transform("max")]
    display_table = final.pivot_table(index=["n_train", "t"], columns="block", values="gap_z", sort=False)
    print(display_table.round(2))
else:
    print("no study CSVs yet; only the checkpoint above is explored")

# %% [markdown]
# ## Hypothesis 1: the noise level t
# The drift gap of training images may depend strongly on t (a 2026 workshop abstract warns so). Scan more levels
# than the workflow uses.

# %%
timesteps = [20, 300] if SMOKE else [10, 50, 100, 200, 350, 500, 750]
null_sets = images.null_sets[: 3 if SMOKE else len(images.null_sets)]
scan = pd.concat([drift_vs_null(model, scheduler, images.calib, images.scored, null_sets, t, eval_spec.noise_seed,
                                eval_spec.noise_draws) for t in timesteps], ignore_index=True)
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
fine = [name for name, _ in model.named_modules()
        if name.rsplit(".", 2)[-2:-1] in (["resnets"], ["downsamplers"], ["upsamplers"])]
t_fine = timesteps[len(timesteps) // 2]
fine_frame = drift_vs_null(model, scheduler, images.calib, images.scored, null_sets, t_fine, eval_spec.noise_seed,
                           eval_spec.noise_draws, layers=fine)
fine_gaps = drift_gaps(fine_frame.assign(n_train=n_train, seed=seed, step=last_step), eval_spec.alpha)
fine_gaps[["block", "train_drift", "null_mean", "null_sd", "gap", "gap_z", "significant"]].round(2)
