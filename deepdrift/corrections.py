"""Multiple-testing correction across a model's taps: one layer-level claim per tap needs a family-level guard."""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np
from scipy import stats

Correction = Literal["holm", "bh"]
"""``holm``: family-wise error (Holm 1979); ``bh``: false discovery rate (Benjamini & Hochberg 1995)."""

CORRECTIONS: tuple[str, ...] = get_args(Correction)


def check_correction(method: object) -> Correction:
    """``method`` if it names a known correction, else a ``ValueError`` listing them."""
    if method not in CORRECTIONS:
        raise ValueError(f"correction must be one of {CORRECTIONS}, got {method!r}")
    return method  # type: ignore[return-value]


def adjust_pvalues(p_values: np.ndarray, method: Correction = "holm") -> np.ndarray:
    """Holm- or Benjamini-Hochberg-adjusted p-values across layers; NaN stays NaN."""
    check_correction(method)
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full_like(p, np.nan)
    ok = np.isfinite(p)
    if not ok.any():
        return out
    if method == "bh":
        out[ok] = stats.false_discovery_control(p[ok], method="bh")
        return out
    vals = p[ok]
    order = np.argsort(vals)
    m = len(vals)
    adjusted = np.maximum.accumulate((m - np.arange(m)) * vals[order]).clip(max=1.0)
    res = np.empty(m)
    res[order] = adjusted
    out[ok] = res
    return out
