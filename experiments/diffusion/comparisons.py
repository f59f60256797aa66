"""Tables that compare the detectors: onset ratios against the loss gap, rank correlation with memorisation,
onset lead/lag against memorisation, and which block wins (per feature and at equal width).

All inputs come from :mod:`experiments.diffusion.detectors`; intervals are percentile bootstraps over seeds (onset
ratios) or over whole runs (correlations: the checkpoints of one run are not independent).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from experiments.diffusion.detectors import LOSS, censored_ratio

N_BOOTSTRAP = 2000
RATIO_COLUMNS = [
    "detector", "n_train", "t", "seeds", "both", "loss_missing", "detector_missing", "neither", "step0",
    "ratio_median", "ratio_low", "ratio_high", "at_first_checkpoint",
]  # fmt: skip


def bootstrap_interval(values: Sequence[float], seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the median (NaN with fewer than two values)."""
    values = np.asarray([v for v in values if np.isfinite(v)], dtype=np.float64)
    if values.size < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    medians = np.median(rng.choice(values, size=(N_BOOTSTRAP, values.size), replace=True), axis=1)
    tail = (1.0 - level) / 2.0
    return float(np.quantile(medians, tail)), float(np.quantile(medians, 1.0 - tail))


def onset_ratios(onsets: pd.DataFrame, detectors: Sequence[str], horizon: float, first_checkpoint: int) -> pd.DataFrame:
    """Per (detector, N, t): loss-gap onset / detector onset over seeds (> 1: the detector is earlier).

    Censored seeds enter at ``horizon`` (:func:`~experiments.diffusion.detectors.censored_ratio`) and are counted:
    ``loss_missing`` (ratio a lower bound), ``detector_missing`` (an upper bound), ``neither`` and ``step0`` (not
    in the median). ``at_first_checkpoint`` counts detector onsets at the first trained checkpoint, where the
    checkpoint spacing, not the detector, bounds the ratio.
    """
    wide = onsets.pivot_table(index=["n_train", "seed", "t"], columns="detector", values="onset", dropna=False)
    rows: list[dict] = []
    for det in [d for d in detectors if d in wide.columns and LOSS in wide.columns]:
        for (n, t), group in wide.groupby(level=["n_train", "t"]):
            pairs = [censored_ratio(r, d, horizon) for r, d in zip(group[LOSS], group[det], strict=True)]
            ratios = [r for r, _ in pairs if np.isfinite(r)]
            status = pd.Series([s for _, s in pairs])
            low, high = bootstrap_interval(ratios, seed=int(n) * 1000 + int(t))
            rows.append(
                {
                    "detector": det,
                    "n_train": int(n),
                    "t": int(t),
                    "seeds": len(group),
                    "both": int((status == "both").sum()),
                    "loss_missing": int((status == ">=").sum()),
                    "detector_missing": int((status == "<=").sum()),
                    "neither": int((status == "neither").sum()),
                    "step0": int((status == "step 0").sum()),
                    "ratio_median": float(np.median(ratios)) if ratios else float("nan"),
                    "ratio_low": low,
                    "ratio_high": high,
                    "at_first_checkpoint": int((group[det] == first_checkpoint).sum()),
                }
            )
    return pd.DataFrame(rows, columns=RATIO_COLUMNS)


def rank_correlation(joined: pd.DataFrame, x: str, y: str = "memorised_fraction") -> tuple[float, float, float]:
    """Spearman rho of ``x`` with ``y`` over checkpoints, with a bootstrap interval resampling whole runs."""
    joined = joined.dropna(subset=[x, y])
    if len(joined) < 3 or joined[y].nunique() < 2 or joined[x].nunique() < 2:
        return float("nan"), float("nan"), float("nan")
    rho = _spearman(joined[x].to_numpy(float), joined[y].to_numpy(float))
    runs = [(g[x].to_numpy(float), g[y].to_numpy(float)) for _, g in joined.groupby(["n_train", "seed"])]
    rng = np.random.default_rng(0)
    draws = []
    for _ in range(N_BOOTSTRAP):
        picked = [runs[i] for i in rng.integers(0, len(runs), len(runs))]
        xs, ys = np.concatenate([p[0] for p in picked]), np.concatenate([p[1] for p in picked])
        if np.ptp(xs) > 0 and np.ptp(ys) > 0:
            draws.append(_spearman(xs, ys))
    if len(draws) < N_BOOTSTRAP // 2:
        return rho, float("nan"), float("nan")
    return rho, float(np.quantile(draws, 0.025)), float(np.quantile(draws, 0.975))


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rho: the Pearson correlation of average ranks."""
    return float(np.corrcoef(stats.rankdata(x), stats.rankdata(y))[0, 1])


def specificity_table(
    block_gaps: pd.DataFrame, flags: pd.DataFrame, memorisation: pd.DataFrame, detectors: Sequence[str]
) -> pd.DataFrame:
    """Rank correlation of each block's (and each detector's) train-vs-held-out gap z, averaged over t, with the
    memorised fraction, over every run and checkpoint (N and steps together)."""
    mem = memorisation[["n_train", "seed", "step", "memorised_fraction"]]
    series = {
        f"drift[{block}]": group.groupby(["n_train", "seed", "step"])["gap_z"].mean()
        for block, group in block_gaps.sort_values("block_index").groupby("block", sort=False)
    }
    for det in detectors:
        sub = flags[flags["detector"] == det]
        series[det] = sub.groupby(["n_train", "seed", "step"])["gap_z"].mean()
    rows = []
    for name, values in series.items():
        joined = values.rename("gap_z").reset_index().merge(mem, on=["n_train", "seed", "step"])
        rho, low, high = rank_correlation(joined, "gap_z")
        rows.append(
            {"measure": name, "spearman_rho": rho, "rho_low": low, "rho_high": high, "checkpoints": len(joined)}
        )
    return pd.DataFrame(rows)


def lead_lag_table(onsets: pd.DataFrame, mem_onsets: pd.DataFrame, detectors: Sequence[str]) -> pd.DataFrame:
    """Per (detector, t): how its onsets line up with memorisation onsets over runs.

    ``early`` onset at or before memorisation; ``late`` after it; ``false_onset`` an onset in a run that never
    memorises; ``missed`` memorisation without an onset; ``quiet`` neither. ``median_lead`` is memorisation onset
    minus detector onset (steps) over runs with both.
    """
    joined = onsets[onsets["detector"].isin(detectors)].merge(mem_onsets, on=["n_train", "seed"])
    rows = []
    for (det, t), group in joined.groupby(["detector", "t"], sort=False):
        det_on, mem_on = group["onset"], group["memorisation_onset"]
        both = det_on.notna() & mem_on.notna()
        lead = (mem_on - det_on)[both]
        rows.append(
            {
                "detector": det,
                "t": int(t),
                "runs": len(group),
                "early": int((both & (det_on <= mem_on)).sum()),
                "late": int((both & (det_on > mem_on)).sum()),
                "false_onset": int((det_on.notna() & mem_on.isna()).sum()),
                "missed": int((det_on.isna() & mem_on.notna()).sum()),
                "quiet": int((det_on.isna() & mem_on.isna()).sum()),
                "median_lead": float(lead.median()) if len(lead) else float("nan"),
            }
        )
    order = {d: i for i, d in enumerate(detectors)}
    table = pd.DataFrame(rows)
    return table.sort_values(["detector", "t"], key=lambda c: c.map(order) if c.name == "detector" else c)


def head_to_head(onsets: pd.DataFrame, first: str, second: str) -> pd.DataFrame:
    """Per t, over runs: which of two detectors has the earlier onset (a missing onset is later than any)."""
    wide = onsets.pivot_table(index=["n_train", "seed", "t"], columns="detector", values="onset", dropna=False)
    rows = []
    if first not in wide.columns or second not in wide.columns:
        return pd.DataFrame(columns=["t", "runs", f"{first} earlier", "same step", f"{second} earlier", "neither"])
    for t, group in wide.groupby(level="t"):
        a = group[first].fillna(np.inf)
        b = group[second].fillna(np.inf)
        found = np.isfinite(a) | np.isfinite(b)
        rows.append(
            {
                "t": int(t),
                "runs": len(group),
                f"{first} earlier": int((found & (a < b)).sum()),
                "same step": int((found & (a == b)).sum()),
                f"{second} earlier": int((found & (b < a)).sum()),
                "neither": int((~found).sum()),
            }
        )
    return pd.DataFrame(rows)


def winners(gaps: pd.DataFrame) -> pd.DataFrame:
    """Per (N, seed, t): the block with the largest gap z at the run's last checkpoint."""
    last = gaps[gaps["step"] == gaps.groupby(["n_train", "seed"])["step"].transform("max")]
    return last.loc[last.groupby(["n_train", "seed", "t"])["gap_z"].idxmax(), ["n_train", "seed", "t", "block"]]
