"""One reading of a drift profile, shared by the doctor and the plots.

A profile is either the original's plain list of drifts in depth order or the monitor's ``status`` dict (which
carries depth, zone, label and p-value per tap); both become the same arrays, sorted by depth.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from .taps import zone_of

DriftProfile = Sequence[float] | Mapping[str, Mapping[str, Any]]


@dataclass(frozen=True)
class ProfileArrays:
    names: list[str]
    labels: list[str]
    drift: np.ndarray
    p_values: np.ndarray  # one-sided; Phi(-drift) where the profile carries none
    zones: list[str]


def read_profile(profile: DriftProfile) -> ProfileArrays:
    """Arrays of a profile in depth order; raises ``ValueError`` for an empty one."""
    if isinstance(profile, Mapping):
        items = sorted(profile.items(), key=lambda kv: float(kv[1].get("depth", 0.0)))
        names = [name for name, _ in items]
        labels = [str(d.get("label", name)) for name, d in items]
        drift = np.array([float(d["drift"]) for _, d in items])
        p_values = np.array(
            [float(d["p_value"]) if "p_value" in d else float(stats.norm.sf(d["drift"])) for _, d in items]
        )
        zones = [str(d.get("zone") or zone_of(i, len(items))) for i, (_, d) in enumerate(items)]
    else:
        drift = np.asarray([float(x) for x in profile])
        names = [f"layer_{i}" for i in range(drift.size)]
        labels = [f"tap {i}" for i in range(drift.size)]
        p_values = stats.norm.sf(drift)
        zones = [zone_of(i, drift.size) for i in range(drift.size)]
    if drift.size == 0:
        raise ValueError("empty drift profile; pass at least one layer's drift")
    return ProfileArrays(names=names, labels=labels, drift=drift, p_values=p_values, zones=zones)
