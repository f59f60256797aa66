"""Check the amplification mechanism without the drift statistic: how much each tap's features move, and whether
that grows with depth.

The change is measured on the same images through the clean and the perturbed network, as the relative L2 change
``||f_pert - f_clean|| / ||f_clean||`` of each image's pooled tap features (the vector the monitor reads: channel
mean, std and max), averaged over images. No calibration, sigma or p-value enters, so the check cannot inherit the
doctor's rules. "Grows with depth" means the last tap moves more than the first tap the perturbation reaches.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from deepdrift import Tap
from experiments.features import FeatureSet

REACHED = 1e-6
"""A tap whose relative change stays below this is one the perturbation does not reach (it sits before the site)."""


def relative_change(clean: FeatureSet, perturbed: FeatureSet, taps: Sequence[Tap]) -> np.ndarray:
    """Mean relative L2 change of each tap's per-image features (depth order); non-finite features give inf."""
    out = []
    for tap in taps:
        a, b = clean.taps[tap.name].double(), perturbed.taps[tap.name].double()
        diff = torch.linalg.vector_norm(torch.nan_to_num(b - a, nan=np.inf), dim=1)
        scale = torch.linalg.vector_norm(a, dim=1).clamp_min(1e-12)
        out.append(float((diff / scale).mean()))
    return np.asarray(out)


def growth_row(change: np.ndarray) -> dict[str, float | bool]:
    """The profile's summary: change at the first reached tap and at the last tap, their ratio, and whether the
    change increases with depth (ratio > 1; Spearman correlation over the reached taps beside it)."""
    reached = np.flatnonzero(change > REACHED)
    if reached.size == 0:
        return {"first_reached": -1, "first_change": 0.0, "last_change": 0.0, "growth": np.nan, "grows": False,
                "depth_correlation": np.nan}  # fmt: skip
    first, last = float(change[reached[0]]), float(change[-1])
    tail = change[reached[0] :]
    rho = pd.Series(tail).corr(pd.Series(np.arange(tail.size, dtype=float)), method="spearman")
    growth = last / first if np.isfinite(first) and first > 0 else np.nan
    return {
        "first_reached": int(reached[0]),
        "first_change": first,
        "last_change": last,
        "growth": growth,
        "grows": bool(np.isfinite(growth) and growth > 1.0),
        "depth_correlation": float(rho) if tail.size > 2 else np.nan,
    }


def mechanism_rows(
    key: dict[str, object], clean: FeatureSet, perturbed: FeatureSet, taps: Sequence[Tap]
) -> tuple[dict, list[dict]]:
    """One summary row and one row per tap for a perturbation instance."""
    change = relative_change(clean, perturbed, taps)
    per_tap = [
        {**key, "tap": t.index, "label": t.label, "depth": t.depth, "relative_change": float(c)}
        for t, c in zip(taps, change, strict=True)
    ]
    return {**key, **growth_row(change)}, per_tap
