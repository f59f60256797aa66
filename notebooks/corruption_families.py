# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Which corruptions look alike to the network?
#
# The corruption benchmark (`workflow/rules/corruption.smk`) stores, for every model, tap, corruption and
# severity, the mean DeepDrift drift at batch size 16 (`results/<set>/corruption/drift_profile.csv.gz`).
# ImageNet-C groups its corruptions into four families by how they are *made* (noise, blur, weather, digital).
# Here we ask whether the network *sees* them that way: do corruptions of one family leave similar drift
# fingerprints across depth, and do two architectures agree on which corruptions are alike?
#
# A corruption's fingerprint is its drift over (severity, tap), squashed with `arcsinh(drift / 3)` (linear up to
# the 3-sigma alarm, logarithmic beyond, so one huge layer does not dominate), then centred and scaled: the
# similarity of two fingerprints is their Pearson correlation, i.e. they are alike when the *shape* of the drift
# over depth and severity is alike, whatever its overall size.
#
# Run it on the default results (`make paper-figures` first), or set `DEEPDRIFT_SMOKE=1` for a smoke run on the
# `test` config set's results (or, if they are missing, on a tiny profile of an *untrained* CNN computed on the
# spot: smoke numbers prove that the code runs, nothing more). `DEEPDRIFT_RESULTS_DIR=<folder>` points it at
# another results folder (see `experiments/results.py`).

# %%
import os

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from IPython.display import display
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform
from scipy.stats import spearmanr
from sklearn.metrics import adjusted_rand_score

from experiments.corruption import smoke_profile
from experiments.results import Results

SMOKE = os.environ.get("DEEPDRIFT_SMOKE", "0") == "1"
CONFIG_SET = "test" if SMOKE else "default"
results = Results.of(CONFIG_SET)

if results.corruption_profile.is_file():
    profile = pd.read_csv(results.corruption_profile, dtype={"tap": str})
    source = str(results.corruption_profile)
elif SMOKE:
    profile = smoke_profile()
    source = "smoke profile (untrained CNN, computed now)"
else:
    raise FileNotFoundError(
        f"{results.corruption_profile} is missing: run `make paper-figures` (or set DEEPDRIFT_SMOKE=1)"
    )
print(
    f"profile from {source}: {profile['model'].nunique()} models, {profile['corruption'].nunique() - 1} "
    f"corruptions, severities {sorted(profile['severity'].unique().tolist())}"
)

# %% [markdown]
# ## Fingerprints and their similarity, per model

# %%
FAMILY_ORDER = ["noise", "blur", "weather", "digital"]


def fingerprints(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows: corruptions (by family); columns: (severity, tap depth); values: centred, unit-norm arcsinh drift."""
    shifted = frame[frame["corruption"] != "clean"]
    wide = shifted.pivot_table(index=["family", "corruption"], columns=["severity", "depth"], values="drift")
    wide = wide.dropna(axis=1)
    order = sorted(wide.index, key=lambda fc: (FAMILY_ORDER.index(fc[0]) if fc[0] in FAMILY_ORDER else 9, fc[1]))
    squashed = np.arcsinh(wide.loc[order] / 3.0)
    centred = squashed.sub(squashed.mean(axis=1), axis=0)
    norms = np.linalg.norm(centred.to_numpy(), axis=1, keepdims=True)
    return centred / np.where(norms > 0, norms, 1.0)


models = list(dict.fromkeys(profile["model"]))
prints = {m: fingerprints(profile[profile["model"] == m]) for m in models}
similarity = {
    m: pd.DataFrame(
        p.to_numpy() @ p.to_numpy().T,
        index=p.index.get_level_values("corruption"),
        columns=p.index.get_level_values("corruption"),
    )
    for m, p in prints.items()
}

fig, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models), 3.8), squeeze=False, constrained_layout=True)
for ax, model in zip(axes[0], models, strict=True):
    sns.heatmap(
        similarity[model],
        ax=ax,
        cmap="vlag",
        vmin=-1,
        vmax=1,
        square=True,
        cbar_kws={"label": "fingerprint correlation"},
    )
    ax.set(title=model, xlabel="", ylabel="")
    ax.tick_params(labelsize=6)
plt.show()

# %% [markdown]
# ## Do the clusters recover the ImageNet-C families?
#
# Average-linkage clustering on `1 - correlation`, cut into as many clusters as there are families present.
# The adjusted Rand index is 1 when the clusters are exactly the families and ~0 when they are unrelated; we
# also compare the mean similarity of pairs within a family to pairs across families.

# %%
rows = []
for model, p in prints.items():
    families = p.index.get_level_values("family").to_numpy()
    n_families = len(set(families))
    sim = similarity[model].to_numpy()
    same = families[:, None] == families[None, :]
    off_diagonal = ~np.eye(len(families), dtype=bool)
    within = sim[same & off_diagonal].mean() if (same & off_diagonal).any() else np.nan
    across = sim[~same].mean() if (~same).any() else np.nan
    if len(families) > 2 and n_families > 1:
        distance = squareform(np.clip(1.0 - sim, 0.0, None), checks=False)
        clusters = fcluster(linkage(distance, method="average"), t=n_families, criterion="maxclust")
        ari = adjusted_rand_score(families, clusters)
    else:
        clusters, ari = np.ones(len(families), dtype=int), np.nan
    rows.append(
        {
            "model": model,
            "corruptions": len(families),
            "families": n_families,
            "within-family similarity": within,
            "across-family similarity": across,
            "adjusted Rand index": ari,
        }
    )
    print(model, dict(zip(p.index.get_level_values("corruption"), clusters.tolist(), strict=True)))
family_table = pd.DataFrame(rows)
display(family_table)

# %% [markdown]
# ## Do the architectures agree on which corruptions are alike?
#
# Spearman correlation between two models' similarity matrices (upper triangles, common corruptions only).

# %%
agreement = []
for i, a in enumerate(models):
    for b in models[i + 1 :]:
        common = [c for c in similarity[a].index if c in set(similarity[b].index)]
        if len(common) < 3:
            continue
        upper = np.triu_indices(len(common), k=1)
        sa = similarity[a].loc[common, common].to_numpy()[upper]
        sb = similarity[b].loc[common, common].to_numpy()[upper]
        rho, p_value = spearmanr(sa, sb)
        agreement.append({"model A": a, "model B": b, "pairs": len(sa), "spearman_rho": rho, "p_value": p_value})
display(pd.DataFrame(agreement, columns=["model A", "model B", "pairs", "spearman_rho", "p_value"]))

# %% [markdown]
# ## Where in the network does each family show first?
#
# Mean drift per family and tap depth at the middle severity: the depth profile behind the fingerprints.

# %%
severities = sorted(s for s in profile["severity"].unique() if s > 0)
middle = severities[len(severities) // 2]
by_family = profile[profile["severity"] == middle].groupby(["model", "family", "depth"])["drift"].mean().reset_index()
grid = sns.relplot(
    by_family,
    x="depth",
    y="drift",
    hue="family",
    col="model",
    kind="line",
    marker="o",
    height=2.6,
    aspect=1.2,
    facet_kws={"sharey": False},
)
grid.set_axis_labels("relative tap depth (0 = input side)", f"mean drift at severity {middle} (σ)")
for ax in grid.axes.flat:
    ax.set_yscale("symlog", linthresh=3.0)
plt.show()
