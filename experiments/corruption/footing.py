"""The equal-footing table: which layers (penultimate / last tap / all taps) against which statistic (DeepDrift's or
a peer's), each AUROC with a 95% bootstrap interval over batches.

Reads the ``footing:<statistic>:<layer>`` sigma columns of the raw scores (:mod:`experiments.corruption.measure`).
Every statistic is fitted on the same reference rows and turned into sigma by its own clean null, so the layer sets
combine every statistic by one rule: the largest sigma over DeepDrift's taps (``all taps (max)``) or their Stouffer
sum (``all taps (Stouffer)``). The penultimate layer is what the peers' libraries read; the last tap is DeepDrift's
deepest tap. A cell is ``undefined`` or ``degenerate`` where the statistic is at that batch size; it is marked, not
scored.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

from experiments.baselines.deepdrift_detector import combine_drift
from experiments.baselines.layer_statistics import LAYER_STATISTICS
from experiments.baselines.layerwise import DEEPDRIFT_STATISTICS, PENULTIMATE
from experiments.corruption.measure import FOOTING_PREFIX
from experiments.findings.intervals import REPLICATES, SEED, Estimate, pair_matrix, percentile, resample_counts

LAYER_SETS: tuple[str, ...] = ("penultimate", "last tap", "all taps (max)", "all taps (Stouffer)")
"""The layer axis of the table, narrowest first."""

STATISTIC_LABELS: dict[str, str] = {
    "deepdrift": "DeepDrift (min-p)",
    "deepdrift_mean": "DeepDrift mean shift",
    "deepdrift_peak": "DeepDrift peak shift",
    "deepdrift_principal": "DeepDrift principal axes",
    "mahalanobis": "Mahalanobis",
    "knn": "KNN",
    "mmd": "MMD",
    "ks": "KS",
}
"""Display names of the statistic axis."""


def footing_layers(scores: pd.DataFrame) -> dict[str, list[str]]:
    """``{statistic: [layers in depth order, penultimate first]}`` of the footing columns of one model's scores."""
    found: dict[str, list[str]] = {}
    for column in scores.columns:
        if column.startswith(FOOTING_PREFIX):
            statistic, layer = column.removeprefix(FOOTING_PREFIX).split(":", 1)
            found.setdefault(statistic, []).append(layer)
    return found


def layer_set_scores(scores: pd.DataFrame, statistic: str, layers: Sequence[str], layer_set: str) -> pd.Series:
    """One batch score per row of ``scores`` for ``statistic`` on ``layer_set``."""
    taps = [layer for layer in layers if layer != PENULTIMATE]
    if layer_set == "penultimate":
        return scores[f"{FOOTING_PREFIX}{statistic}:{PENULTIMATE}"]
    if layer_set == "last tap":
        return scores[f"{FOOTING_PREFIX}{statistic}:{taps[-1]}"]
    rule = {"all taps (max)": "max", "all taps (Stouffer)": "stouffer"}[layer_set]
    sigma = scores[[f"{FOOTING_PREFIX}{statistic}:{tap}" for tap in taps]].to_numpy(dtype=float)
    return pd.Series(combine_drift(sigma, rule), index=scores.index)


def statistic_status(statistic: str, batch_size: int) -> str:
    """``ok`` / ``undefined`` / ``degenerate`` of a footing statistic at a batch size (DeepDrift's: always ok)."""
    if statistic in DEEPDRIFT_STATISTICS:
        return "ok"
    return LAYER_STATISTICS[statistic]().status(batch_size)


def _split(frame: pd.DataFrame, column: str) -> tuple[np.ndarray, np.ndarray]:
    """``(clean (n_clean,), shifted (cells, n_shifted))`` of one score column at one batch size."""
    clean = frame[frame["corruption"] == "clean"].sort_values("batch")[column].to_numpy(dtype=float)
    shifted = frame[frame["corruption"] != "clean"]
    wide = shifted.groupby(["corruption", "severity", "batch"], sort=True)[column].first().unstack("batch")
    return clean, wide.to_numpy(dtype=float)  # observed cells only (a cell left out is not re-created as NaN)


def summed_pairs(clean: np.ndarray, shifted: np.ndarray) -> np.ndarray:
    """``sum over cells`` of each cell's pair matrix: the mean AUROC over cells of any batch weighting is
    ``w_s M w_c / (cells * sum w_s * sum w_c)``, since every cell shares the clean and shifted batch indices."""
    return sum((pair_matrix(clean, cell) for cell in np.atleast_2d(shifted)), np.zeros((shifted.shape[1], clean.size)))


def bootstrap_auroc(summed: np.ndarray, cells: int, ws: np.ndarray, wc: np.ndarray) -> np.ndarray:
    """Mean AUROC over cells of each replicate (``ws``, ``wc``: draw counts per shifted / clean batch)."""
    return ((ws @ summed) * wc).sum(axis=1) / (cells * ws.sum(1) * wc.sum(1))


def footing_replicates(
    scores: Mapping[str, pd.DataFrame],
    identity: Mapping[str, Sequence[tuple[str, int]]] | None,
    replicates: int,
) -> Iterator[tuple[dict[str, object], str, float, np.ndarray, int]]:
    """``(row keys, status, point AUROC, bootstrap replicates, cells)`` per model, batch size, statistic and layer
    set; one set of batch draws per model and batch size, shared by every statistic and layer set."""
    for model, frame in scores.items():
        drop = {(str(c), int(s)) for c, s in (identity or {}).get(model, ())}
        cells = pd.Series(list(zip(frame["corruption"], frame["severity"].astype(int), strict=True)), index=frame.index)
        frame = frame[~cells.isin(drop)]
        layers = footing_layers(frame)
        for batch_size, part in frame.groupby("batch_size", sort=True):
            rng = np.random.default_rng([SEED, int(batch_size)])
            n_clean = int((part["corruption"] == "clean").sum())
            n_shifted = int(part.loc[part["corruption"] != "clean", "batch"].nunique())
            ws, wc = resample_counts(n_shifted, replicates, rng), resample_counts(n_clean, replicates, rng)
            for statistic, stat_layers in layers.items():
                status = statistic_status(statistic, int(batch_size))
                for layer_set in LAYER_SETS:
                    keys = {"model": model, "batch_size": int(batch_size), "statistic": statistic, "layers": layer_set}
                    if status != "ok":
                        yield keys, status, np.nan, np.full(replicates, np.nan), 0
                        continue
                    values = part.assign(_score=layer_set_scores(part, statistic, stat_layers, layer_set).to_numpy())
                    clean, shifted = _split(values, "_score")
                    summed = summed_pairs(clean, shifted)
                    point = float(summed.sum() / (len(shifted) * clean.size * shifted.shape[1]))
                    yield keys, status, point, bootstrap_auroc(summed, len(shifted), ws, wc), len(shifted)


def footing_table(
    scores: Mapping[str, pd.DataFrame],
    identity: Mapping[str, Sequence[tuple[str, int]]] | None = None,
    replicates: int = REPLICATES,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Mean AUROC over corrupted cells per model, batch size, statistic and layer set, with 95% intervals, and
    DeepDrift's (min-p) difference to the best peer statistic on the same layers.

    Args:
        scores: raw per-batch scores per model (with ``footing:`` columns).
        identity: per model, ``(corruption, severity)`` cells that leave the images unchanged (left out).
        replicates: bootstrap replicates; clean and corrupted batches are resampled, the same draws for every
            statistic and layer set of a model and batch size (so differences are paired).

    Returns:
        ``(table, versus)``: ``table`` has one row per model x batch size x statistic x layer set (``auroc``,
        ``low``, ``high``, ``status``, ``cells``); ``versus`` one row per model x batch size x layer set with
        DeepDrift's AUROC, the best scored peer statistic (chosen on these data) and the paired difference.
    """
    rows, reps = [], {}
    for keys, status, point, draws, cells in footing_replicates(scores, identity, replicates):
        low, high = percentile(draws) if status == "ok" else (np.nan, np.nan)
        rows.append({**keys, "auroc": point, "low": low, "high": high, "status": status, "cells": cells})
        if status == "ok":
            reps[keys["model"], keys["batch_size"], keys["statistic"], keys["layers"]] = (point, draws)
    table = pd.DataFrame(rows)
    return table, _versus(table, reps)


def _versus(table: pd.DataFrame, reps: Mapping[tuple, tuple[float, np.ndarray]]) -> pd.DataFrame:
    rows = []
    ok = table[table["status"] == "ok"]
    for (model, batch_size, layer_set), group in ok.groupby(["model", "batch_size", "layers"], sort=False):
        peers = group[~group["statistic"].isin(list(DEEPDRIFT_STATISTICS))]
        if "deepdrift" not in set(group["statistic"]) or peers.empty:
            continue
        best = str(peers.loc[peers["auroc"].idxmax(), "statistic"])
        ours, theirs = reps[model, batch_size, "deepdrift", layer_set], reps[model, batch_size, best, layer_set]
        diff = ours[1] - theirs[1]
        low, high = percentile(diff)
        rows.append(
            {
                "model": model,
                "batch_size": batch_size,
                "layers": layer_set,
                "deepdrift": ours[0],
                "best peer": best,
                "peer auroc": theirs[0],
                "difference": ours[0] - theirs[0],
                "low": low,
                "high": high,
                "not scored": ", ".join(
                    f"{STATISTIC_LABELS.get(s, s)} {st}"
                    for s, st in table.loc[
                        (table["model"] == model) & (table["batch_size"] == batch_size) & (table["layers"] == layer_set)
                        & (table["status"] != "ok"), ["statistic", "status"]
                    ].itertuples(index=False)
                ) or "-",
            }
        )  # fmt: skip
    return pd.DataFrame(rows)


def footing_markdown_frame(table: pd.DataFrame) -> pd.DataFrame:
    """The table for reading: rows model x batch size x statistic, one column per layer set, ``0.912 [0.90, 0.93]``
    cells (``degenerate`` / ``undefined`` where the statistic is)."""

    def cell(row: pd.Series) -> str:
        if row["status"] != "ok":
            return str(row["status"])
        return str(Estimate(row["auroc"], row["low"], row["high"]))

    shown = table.assign(text=table.apply(cell, axis=1), statistic=table["statistic"].map(STATISTIC_LABELS))
    wide = shown.pivot_table(
        index=["model", "batch_size", "statistic"], columns="layers", values="text", aggfunc="first", sort=False
    )
    return wide.reindex(columns=[c for c in LAYER_SETS if c in wide.columns]).reset_index()
