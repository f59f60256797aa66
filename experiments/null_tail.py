"""Clean exceedance of the sigma levels with 95% intervals that respect how the grid's batches depend on each other.

Batches scored against one calibration share its reference error, so a split's batches are not independent of each
other, and the taps of one batch are not independent either. The interval is a two-stage bootstrap: resample the
calibration splits, then the batches within each drawn split (Poisson weights); a batch carries all its taps.
Where nothing exceeds a level the resampling has nothing to resample; the upper end is then the Clopper-Pearson bound
of zero hits in as many trials as there were batches (conservative: every tap of a batch counted as one trial).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from experiments.findings.intervals import clopper_pearson
from experiments.null_grid import TAIL_LEVELS, GridCell, batch_exceedances

REPLICATES = 2000
LEVEL = 0.95
ACCEPTANCE_FACTOR = 2.0
"""Issue 12's bar: exceedance at 3 sigma within 2x the normal tail, by the upper end of the 95% interval."""


def nominal(level: float) -> float:
    """The normal tail ``P(Z > level)``: what a calibrated drift exceeds."""
    return float(stats.norm.sf(level))


def two_stage_rate(
    cells: Sequence[GridCell], level: float, replicates: int = REPLICATES, seed: int = 0
) -> tuple[float, float, float, int, int]:
    """Pooled share of tap-batches above ``level`` with a (splits, then batches) bootstrap interval.

    Returns:
        ``(rate, low, high, hits, tap_batches)``.
    """
    rng = np.random.default_rng(seed)
    n_splits = len(cells)
    numerators = np.empty((n_splits, replicates))
    denominators = np.empty((n_splits, replicates))
    hits = trials = 0
    for s, cell in enumerate(cells):
        counts = batch_exceedances(cell, level)
        n_batches, n_taps = cell.drift.shape
        nonzero = counts[counts > 0].astype(float)
        hits += int(counts.sum())
        trials += n_batches * n_taps
        # Poisson(1) weights per batch: only batches with a hit move the numerator; the total weight is Poisson(n)
        numerators[s] = rng.poisson(1.0, (replicates, nonzero.size)) @ nonzero
        denominators[s] = rng.poisson(float(n_batches), replicates) * n_taps
    drawn = rng.integers(0, n_splits, (replicates, n_splits))
    columns = np.arange(replicates)[:, None]
    rates = numerators[drawn, columns].sum(axis=1) / np.maximum(denominators[drawn, columns].sum(axis=1), 1.0)
    low, high = np.quantile(rates, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
    if hits == 0:  # resampling zeros gives [0, 0]: bound it by the batches alone, as if every tap were one trial
        high = clopper_pearson(0, sum(cell.drift.shape[0] for cell in cells), LEVEL)[1]
    return hits / trials, float(low), float(high), hits, trials


def tail_table(cells: Sequence[GridCell], by: Sequence[str] = ("model", "batch_size")) -> pd.DataFrame:
    """Per group (default: model and batch size, taps pooled): exceedance at each sigma level as a rate and as a
    multiple of the normal tail, with 95% intervals; ``passes`` applies the 3-sigma acceptance bar."""
    groups: dict[tuple[object, ...], list[GridCell]] = {}
    for cell in cells:
        groups.setdefault(tuple(getattr(cell, key) for key in by), []).append(cell)
    rows = []
    for key, members in groups.items():
        row: dict[str, object] = dict(zip(by, key, strict=True))
        row["splits"] = len(members)
        row["batches"] = sum(cell.drift.shape[0] for cell in members)
        row["taps"] = members[0].drift.shape[1]
        drift = np.concatenate([cell.drift.ravel() for cell in members])
        row["mean"] = float(np.nanmean(drift))
        row["sd"] = float(np.nanstd(drift, ddof=1))
        for level in TAIL_LEVELS:
            rate, low, high, hits, _ = two_stage_rate(members, level, seed=int(level * 10))
            tag = f"{level:g}".replace(".", "_")
            base = nominal(level)
            row[f"hits_{tag}"] = hits
            row[f"ratio_{tag}"] = rate / base
            row[f"ratio_{tag}_lo"] = low / base
            row[f"ratio_{tag}_hi"] = high / base
        row["passes"] = bool(row["ratio_3_hi"] <= ACCEPTANCE_FACTOR)
        rows.append(row)
    return pd.DataFrame(rows)
