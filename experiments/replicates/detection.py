"""Corruption detection per training seed: claim 4 (DeepDrift against the peers) on every model of a replicate group.

Each model's equal-footing AUROCs come from the corruption study's own code (:func:`footing_replicates`: every
statistic on the same layers and reference rows, one batch bootstrap per model and batch size shared by all
statistics, so differences are paired). Per seed this takes DeepDrift's AUROC on all taps (max), the best peer
statistic's on the same layers (chosen per seed, on these data, as the corruption table does), their difference, and
DeepDrift's difference to the best peer on the penultimate features (the peers as their libraries ship). Across seeds
each is the mean of the seeds' values with the nested bootstrap of :mod:`experiments.replicates.intervals`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from experiments.baselines.layerwise import DEEPDRIFT_STATISTICS
from experiments.corruption.footing import STATISTIC_LABELS, footing_replicates
from experiments.findings.intervals import Estimate, percentile
from experiments.replicates.intervals import REPLICATES, SeedEstimate, across_seeds

ALL_TAPS = "all taps (max)"
PENULTIMATE = "penultimate"
DEEPDRIFT_AUROC = "DeepDrift AUROC, all taps (max)"
PEER_AUROC = "best peer AUROC, all taps (max)"
SAME_LAYERS = "DeepDrift - best peer, all taps (max)"
AS_SHIPPED = "DeepDrift (all taps) - best peer (penultimate)"
QUANTITIES: tuple[str, ...] = (DEEPDRIFT_AUROC, PEER_AUROC, SAME_LAYERS, AS_SHIPPED)
"""The rows of the table per group and batch size, in reading order."""
DIFFERENCES: tuple[str, ...] = (SAME_LAYERS, AS_SHIPPED)


@dataclass(frozen=True)
class SeedDetection:
    """One quantity of one model at one batch size: the estimate and the peer statistic it involves (its key, or
    ""; the tables show its display name)."""

    estimate: SeedEstimate
    peer: str


def _estimate(point: float, draws: np.ndarray, cells: int) -> SeedEstimate:
    low, high = percentile(draws)
    return SeedEstimate(point, low, high, draws, cells)


def _best_peer(found: Mapping[tuple[str, str], tuple[float, np.ndarray, int]], layers: str) -> str | None:
    peers = {s: v[0] for (s, layer_set), v in found.items() if layer_set == layers and s not in DEEPDRIFT_STATISTICS}
    return max(peers, key=peers.__getitem__) if peers else None


def seed_detection(
    scores: pd.DataFrame, identity: Sequence[tuple[str, int]], replicates: int = REPLICATES
) -> dict[int, dict[str, SeedDetection]]:
    """``{batch size: {quantity: SeedDetection}}`` of one model's raw corruption scores (``footing:`` columns).

    ``identity`` lists the ``(corruption, severity)`` cells that leave the images unchanged (left out, as in the
    corruption table). A batch size without a scored peer statistic has only DeepDrift's AUROC.
    """
    found: dict[int, dict[tuple[str, str], tuple[float, np.ndarray, int]]] = {}
    for keys, status, point, draws, cells in footing_replicates({"model": scores}, {"model": identity}, replicates):
        if status == "ok" and keys["layers"] in (ALL_TAPS, PENULTIMATE):
            found.setdefault(int(keys["batch_size"]), {})[str(keys["statistic"]), str(keys["layers"])] = (
                point, draws, cells,
            )  # fmt: skip
    out: dict[int, dict[str, SeedDetection]] = {}
    for batch_size, values in found.items():
        ours = values[("deepdrift", ALL_TAPS)]
        row = {DEEPDRIFT_AUROC: SeedDetection(_estimate(*ours), "")}
        best, shipped = _best_peer(values, ALL_TAPS), _best_peer(values, PENULTIMATE)
        if best is not None:
            theirs = values[(best, ALL_TAPS)]
            row[PEER_AUROC] = SeedDetection(_estimate(*theirs), best)
            row[SAME_LAYERS] = SeedDetection(_estimate(ours[0] - theirs[0], ours[1] - theirs[1], ours[2]), best)
        if shipped is not None:
            theirs = values[(shipped, PENULTIMATE)]
            row[AS_SHIPPED] = SeedDetection(_estimate(ours[0] - theirs[0], ours[1] - theirs[1], ours[2]), shipped)
        out[batch_size] = row
    return out


def detection_tables(
    groups: Mapping[str, Sequence[tuple[str, int]]],
    measured: Mapping[str, Mapping[int, Mapping[str, SeedDetection]]],
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(per_seed, summary)`` of the detection quantities.

    Args:
        groups: architecture label -> ``(model key, training seed)`` of each replicate model, study model first.
        measured: model key -> the model's :func:`seed_detection`.
        seed: seeds the across-seed bootstrap (reset per group, so a group's intervals do not depend on the others).

    Returns:
        ``per_seed``: one row per model, batch size and quantity (value, 95% interval, peer statistic);
        ``summary``: per group, batch size and quantity, the mean over seeds with its nested interval, the seeds'
        values with their intervals, and for the differences how many seeds' intervals lie above / below zero.
    """
    per_seed: list[dict[str, object]] = []
    summary: list[dict[str, object]] = []
    for architecture, members in groups.items():
        rng = np.random.default_rng(seed)
        batch_sizes = sorted(set.intersection(*(set(measured[model]) for model, _ in members)))
        for batch_size in batch_sizes:
            for quantity in QUANTITIES:
                if not all(quantity in measured[model][batch_size] for model, _ in members):
                    continue
                cells = [measured[model][batch_size][quantity] for model, _ in members]
                per_seed += [
                    {
                        "architecture": architecture,
                        "model": model,
                        "seed": train_seed,
                        "batch_size": batch_size,
                        "quantity": quantity,
                        "value": c.estimate.value,
                        "low": c.estimate.low,
                        "high": c.estimate.high,
                        "peer": STATISTIC_LABELS.get(c.peer, c.peer),
                    }
                    for (model, train_seed), c in zip(members, cells, strict=True)
                ]
                mean, low, high = across_seeds([c.estimate for c in cells], rng)
                summary.append(_summary_row(architecture, batch_size, quantity, cells, mean, low, high))
    table = pd.DataFrame(summary)
    for column in ("seeds above 0", "seeds below 0"):
        if column in table:
            table[column] = table[column].astype("Int64")  # counts; empty where the row is not a difference
    return pd.DataFrame(per_seed), table


def _summary_row(
    architecture: str,
    batch_size: int,
    quantity: str,
    cells: Sequence[SeedDetection],
    mean: float,
    low: float,
    high: float,
) -> dict[str, object]:
    row: dict[str, object] = {
        "architecture": architecture,
        "batch_size": batch_size,
        "quantity": quantity,
        "seeds": len(cells),
        "mean": mean,
        "low": low,
        "high": high,
        "per_seed": " / ".join(
            str(Estimate(c.estimate.value, c.estimate.low, c.estimate.high))
            + (f" ({STATISTIC_LABELS.get(c.peer, c.peer)})" if c.peer else "")
            for c in cells
        ),
    }
    if quantity in DIFFERENCES:
        row["seeds above 0"] = sum(c.estimate.low > 0 for c in cells)
        row["seeds below 0"] = sum(c.estimate.high < 0 for c in cells)
    return row
