"""Claim 4, beats peers: does DeepDrift detect corrupted batches better than the peer detectors?

The README implies it by setting DeepDrift beside pytorch-ood and torchdrift detectors. Where the raw scores carry
the equal-footing columns (every statistic on the same layers, same reference rows, same combination rule), the
verdict separates the two things the shipped comparison confounds: *which statistic* (DeepDrift's min-p against the
best peer statistic on the same layers, a paired bootstrap of the AUROC difference) and *which layers* (what watching
all of DeepDrift's taps instead of the penultimate features adds to each statistic). Without them it falls back to
the shipped comparison (DeepDrift on all taps against peers on the penultimate features), marked as confounded.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from experiments.corruption.footing import LAYER_SETS, STATISTIC_LABELS, footing_layers, footing_table
from experiments.corruption.measure import CHANGED_COLUMN
from experiments.corruption.summary import identity_cells
from experiments.findings.claims.replicates import detection_seed_note, detection_seed_table
from experiments.findings.finding import Finding, Table, Verdict
from experiments.findings.intervals import REPLICATES, SEED, Estimate, mean_auroc, percentile, resample_counts

logger = logging.getLogger(__name__)

DEEPDRIFT_METHOD = "DeepDrift (max)"
TABLE_ROUNDING = 0.001
"""Tables print 3 decimals: a raw AUROC further than this from the table's means the two do not match."""
DEGENERATE: Mapping[str, frozenset[int]] = {"KS (torchdrift)": frozenset({1})}
"""Cells where a method's statistic is degenerate (a one-sample KS statistic takes a handful of values):
marked, never scored as a loss or picked as the best peer."""


def _peer_scores(scores: pd.DataFrame, batch_size: int, key: str) -> tuple[np.ndarray, np.ndarray] | None:
    """``(clean (n_clean,), shifted (cells, n_shifted))`` scores of one method at one batch size."""
    if key not in scores:
        return None
    part = scores[scores["batch_size"] == batch_size]
    clean = part[part["corruption"] == "clean"].sort_values("batch")[key].to_numpy(dtype=float)
    shifted = part[part["corruption"] != "clean"]
    wide = shifted.groupby(["corruption", "severity", "batch"], sort=True)[key].first().unstack("batch")
    shifted = wide.to_numpy(dtype=float)
    if not clean.size or not shifted.size or np.isnan(clean).any() or np.isnan(shifted).any():
        return None
    return clean, shifted


def _difference(scores: pd.DataFrame, batch_size: int, ours: str, theirs: str) -> tuple[Estimate, Estimate] | None:
    """DeepDrift's mean AUROC and its difference to a peer's, with a paired percentile bootstrap over batches."""
    a, b = _peer_scores(scores, batch_size, ours), _peer_scores(scores, batch_size, theirs)
    if a is None or b is None:
        return None
    rng = np.random.default_rng(SEED)
    ws = resample_counts(a[1].shape[1], REPLICATES, rng)
    wc = resample_counts(a[0].size, REPLICATES, rng)
    ones_s, ones_c = np.ones((1, a[1].shape[1])), np.ones((1, a[0].size))
    ours_reps, theirs_reps = mean_auroc(*a, ws, wc), mean_auroc(*b, ws, wc)
    point_ours, point_theirs = float(mean_auroc(*a, ones_s, ones_c)[0]), float(mean_auroc(*b, ones_s, ones_c)[0])
    return (
        Estimate(point_ours, *percentile(ours_reps)),
        Estimate(point_ours - point_theirs, *percentile(ours_reps - theirs_reps)),
    )


def beats_peers(
    auroc: pd.DataFrame,
    layer_auroc: pd.DataFrame | None = None,
    scores: Mapping[str, pd.DataFrame] | None = None,
    method_keys: Mapping[str, str] | None = None,
    replicates: pd.DataFrame | None = None,
) -> Finding:
    """DeepDrift (max) against the best peer per model and batch size (mean AUROC over corruptions x severities).

    Args:
        auroc: ``corruption_auroc.csv`` (model, method, batch_size, ..., mean).
        layer_auroc: ``corruption_layer_auroc.csv``: DeepDrift's deepest tap alone, beside the peers that see only
            the penultimate features.
        scores: the raw per-batch scores per model (``results/<set>/corruption/<model>/scores.csv.gz``), for a
            paired bootstrap of the AUROC difference over clean and shifted batches.
        method_keys: display name -> score column of the raw scores (the corruption study's labels, inverted).
        replicates: ``replicates_detection.csv`` (the equal-footing gaps per training seed), shown beside the
            verdict's rows; the verdict stays on the study models.
    """
    identity = _identity(scores)
    scores = _without(scores, identity)
    if scores is not None and all(footing_layers(frame) for frame in scores.values()):
        return _equal_footing(scores, identity, replicates)
    rows, wins, clear, last_ok = _peer_rows(auroc, layer_auroc, scores, dict(method_keys or {}))
    n_last_below = sum(not ok for ok in last_ok)
    return Finding(
        key="beats_peers",
        claim="DeepDrift detects corrupted batches better than the peer detectors",
        quotes=(),
        verdict=_peers_verdict(rows, wins, clear, last_ok),
        why=_peers_why(scores is not None, wins, clear, last_ok),
        summary=f"above the best peer in {sum(wins)}/{len(wins)} cells"
        + (f" ({sum(clear)} by interval)" if scores is not None else " (point estimates)")
        + (f"; deepest tap alone below it in {n_last_below}/{len(last_ok)}" if last_ok else ""),
        tables=(
            Table(
                "Mean AUROC over corruptions x severities; difference = DeepDrift (max) - best peer "
                + (
                    "(95% paired percentile bootstrap over clean and corrupted batches)."
                    if scores is not None
                    else "(point estimates: intervals need the raw per-batch scores)."
                ),
                pd.DataFrame(rows),
            ),
        ),
        notes=(
            "The best peer is chosen on the same data it is compared on, which favours the peer slightly.",
            "Bootstrap resamples batches, not images: batches at B = 16 and 64 share images of one small pool, so "
            "the interval understates the uncertainty of a fresh image sample; one trained model per architecture.",
        ),
    )


def _peer_rows(
    auroc: pd.DataFrame,
    layer_auroc: pd.DataFrame | None,
    scores: Mapping[str, pd.DataFrame] | None,
    keys: Mapping[str, str],
) -> tuple[list[dict[str, object]], list[bool], list[bool], list[bool]]:
    """One row per model and batch size with a DeepDrift score and an eligible peer; whether DeepDrift is higher
    (at all, and by an interval), and whether its deepest tap alone reaches the best peer."""
    rows, wins, clear, last_ok = [], [], [], []
    for (model, batch_size), cell in auroc.groupby(["model", "batch_size"], sort=False):
        model, batch_size = str(model), int(batch_size)
        ours = cell[cell["method"] == DEEPDRIFT_METHOD]
        if ours.empty:
            continue
        best, excluded = _best_peer(cell, batch_size)
        if best is None:
            continue
        best_method, best_mean = str(best["method"]), float(best["mean"])
        deepdrift, diff = _against_best(
            model, batch_size, float(ours["mean"].iloc[0]), best_method, best_mean, scores, keys
        )
        status = _status(diff)
        wins.append(status.startswith("DeepDrift higher"))
        clear.append(status == "DeepDrift higher")
        last = _last_tap(layer_auroc, model, batch_size)
        if math.isfinite(last):
            last_ok.append(last >= best_mean)
        rows.append(
            {
                "model": model,
                "batch size": batch_size,
                DEEPDRIFT_METHOD: deepdrift,
                "best peer": best_method,
                "peer AUROC": best_mean,
                "difference": diff,
                "deepest tap alone": last,
                "deepest tap - peer": last - best_mean,
                "status": status,
                "not compared": ", ".join(excluded) or "-",
            }
        )
    return rows, wins, clear, last_ok


def _best_peer(cell: pd.DataFrame, batch_size: int) -> tuple[pd.Series | None, list[str]]:
    """The peer with the highest mean AUROC in one cell (None if none is eligible), and the peers not compared."""
    peers = cell[~cell["method"].str.startswith("DeepDrift")]
    if "status" in peers.columns:  # the study table says which cells it did not score, and why
        marked = peers["status"].fillna("ok") != "ok"
        excluded = [f"{m} {st}" for m, st in zip(peers["method"], peers["status"], strict=True) if st != "ok"]
        excluded += [f"{m} undefined" for m, v, k in zip(peers["method"], peers["mean"], marked, strict=True)
                     if pd.isna(v) and not k]  # fmt: skip
        eligible = peers[peers["mean"].notna() & ~marked]
        return (eligible.loc[eligible["mean"].idxmax()] if len(eligible) else None), excluded
    excluded = [f"{m} degenerate" for m in peers["method"] if batch_size in DEGENERATE.get(m, frozenset())]
    excluded += [f"{m} undefined" for m, v in zip(peers["method"], peers["mean"], strict=True) if pd.isna(v)]
    degenerate = peers["method"].map(lambda m, b=batch_size: b in DEGENERATE.get(m, frozenset()))
    eligible = peers[peers["mean"].notna() & ~degenerate]
    if eligible.empty:
        return None, excluded
    return eligible.loc[eligible["mean"].idxmax()], excluded


def _against_best(
    model: str,
    batch_size: int,
    ours_mean: float,
    best_method: str,
    best_mean: float,
    scores: Mapping[str, pd.DataFrame] | None,
    keys: Mapping[str, str],
) -> tuple[Estimate, Estimate]:
    """DeepDrift's AUROC and its difference to the best peer: bootstrapped from the raw scores where they hold both
    methods, else the table's point estimates (warns when the raw scores disagree with the table)."""
    bootstrapped = None
    if scores is not None and model in scores:
        theirs_key = keys.get(best_method, best_method)
        bootstrapped = _difference(scores[model], batch_size, keys.get(DEEPDRIFT_METHOD, DEEPDRIFT_METHOD), theirs_key)
    deepdrift, diff = bootstrapped or (Estimate(ours_mean), Estimate(ours_mean - best_mean))
    if abs(deepdrift.value - ours_mean) > TABLE_ROUNDING:
        logger.warning(
            "%s B=%d: raw scores give AUROC %.4f, the table %.3f", model, batch_size, deepdrift.value, ours_mean
        )
    return deepdrift, diff


def _status(diff: Estimate) -> str:
    """Which side is higher: by the difference's interval where it has one, else by its point estimate."""
    if diff.has_interval:
        return "DeepDrift higher" if diff.low > 0 else ("peer higher" if diff.high < 0 else "no clear difference")
    return ("DeepDrift higher" if diff.value > 0 else "peer higher") + " (point only)"


def _peers_verdict(rows: list[dict[str, object]], wins: list[bool], clear: list[bool], last_ok: list[bool]) -> Verdict:
    if not rows:
        return Verdict.INCONCLUSIVE
    if not any(wins):
        return Verdict.NOT_SUPPORTED
    if all(clear) and last_ok and all(last_ok):
        return Verdict.SUPPORTED
    return Verdict.PARTLY


def _peers_why(raw: bool, wins: list[bool], clear: list[bool], last_ok: list[bool]) -> str:
    n_last_below = sum(not ok for ok in last_ok)
    return (
        "The corruption benchmark implies it by setting DeepDrift beside pytorch-ood and torchdrift detectors. "
        f"DeepDrift (max) scores above the best peer in {sum(wins)} of {len(wins)} model x batch-size cells"
        + (
            f", by a 95% interval that excludes zero in {sum(clear)}. "
            if raw
            else " on point estimates; no cell has an interval without the raw per-batch scores. "
        )
        + "The comparison is not on equal footing: the peers see only the penultimate features while DeepDrift "
        "watches every tap, so layers are confounded with statistics"
        + (
            f"; DeepDrift's deepest tap alone, nearest to what the peers see, falls below the best peer in "
            f"{n_last_below} of {len(last_ok)} cells"
            if last_ok
            else ""
        )
        + ". Reference sets differ in size (MMD and KS are fit on bounded subsets), and KS at batch 1 is degenerate "
        "(marked, not scored). An advantage that rests on more layers is partly a different claim."
    )


def _last_tap(layer_auroc: pd.DataFrame | None, model: str, batch_size: int) -> float:
    """Mean AUROC of the model's deepest tap alone (the layer table lists taps from the input side)."""
    if layer_auroc is None:
        return math.nan
    part = layer_auroc[(layer_auroc["model"] == model) & (layer_auroc["batch_size"] == batch_size)]
    return float(part["mean"].iloc[-1]) if len(part) else math.nan


# --- equal footing ---------------------------------------------------------------------------------------------------

HEADLINE_LAYERS = "all taps (max)"
"""DeepDrift's layer set as deployed (every tap, largest sigma): the statistic comparison the verdict leads with."""


def _identity(scores: Mapping[str, pd.DataFrame] | None) -> dict[str, list[tuple[str, int]]]:
    """Cells whose corrupted images equal the clean ones, per model (from the raw scores' pixel-change column)."""
    if scores is None:
        return {}
    found = {}
    for model, frame in scores.items():
        cells = identity_cells(frame.assign(model=model), CHANGED_COLUMN)
        if cells:
            found[model] = cells[model]
    return found


def _without(
    scores: Mapping[str, pd.DataFrame] | None, identity: Mapping[str, list[tuple[str, int]]]
) -> dict[str, pd.DataFrame] | None:
    """The raw scores without identity cells (the study tables leave them out too)."""
    if scores is None:
        return None
    out = {}
    for model, frame in scores.items():
        drop = set(identity.get(model, ()))
        keys = zip(frame["corruption"], frame["severity"].astype(int), strict=True)
        out[model] = frame[[key not in drop for key in keys]] if drop else frame
    return out


def _equal_footing(
    scores: Mapping[str, pd.DataFrame],
    identity: Mapping[str, list[tuple[str, int]]],
    replicates: pd.DataFrame | None = None,
) -> Finding:
    table, versus = footing_table(scores)
    rows, sides = [], []
    for _, row in versus.iterrows():
        model, batch_size, layers, best = (
            str(row["model"]),
            int(row["batch_size"]),
            str(row["layers"]),
            row["best peer"],
        )
        diff = Estimate(float(row["difference"]), float(row["low"]), float(row["high"]))
        status = _status(diff)
        if layers == HEADLINE_LAYERS:
            sides.append(status)
        rows.append(
            {
                "model": model,
                "batch size": batch_size,
                "layers": layers,
                "DeepDrift (min-p)": _estimate(table, model, batch_size, "deepdrift", layers),
                "best peer statistic": STATISTIC_LABELS.get(best, best),
                "peer AUROC": _estimate(table, model, batch_size, best, layers),
                "difference": diff,
                "status": status,
                "not scored": row["not scored"],
            }
        )
    all_sides = [r["status"] for r in rows]
    gains = _layer_gains(table)
    wins, losses = sides.count("DeepDrift higher"), sides.count("peer higher")
    verdict = _footing_verdict(all_sides)
    gain_text = ", ".join(f"{STATISTIC_LABELS.get(s, s)} {g:+.3f}" for s, g in gains.items())
    shipped, equal = _gaps(versus)
    why = (
        "On equal footing (every statistic on the same layers, fitted on the same reference rows, each turned into"
        " sigma by its own clean null and combined over taps by the same rule), the two questions separate. "
        f"Which statistic: on DeepDrift's own layer set ({HEADLINE_LAYERS}) DeepDrift's min-p is above the best peer"
        f" statistic by a 95% interval that excludes zero in {wins} of {len(sides)} model x batch-size cells and below"
        f" it in {losses}; over every layer set, above in {all_sides.count('DeepDrift higher')} of {len(all_sides)}"
        f" ({_batch_sizes(rows, 'DeepDrift higher')}) and below in {all_sides.count('peer higher')}"
        f" ({_batch_sizes(rows, 'peer higher')}). Which layers: going from the penultimate features to all"
        f" taps changes each statistic's mean AUROC (over models and batch sizes where scored) by {gain_text}. "
        f"The shipped comparison (DeepDrift on all taps against the best peer on the penultimate features) puts"
        f" DeepDrift {shipped:+.3f} ahead on average; on the same layers the gap is {equal:+.3f}. "
        + _footing_reading(verdict)
    )
    summary = (
        f"same layers ({HEADLINE_LAYERS}): DeepDrift above the best peer statistic in {wins}/{len(sides)} cells,"
        f" below in {losses} (by interval); mean gap {equal:+.3f} on the same layers, {shipped:+.3f} against peers"
        " on the penultimate features"
    )
    identity_text = "; ".join(
        f"{m}: " + ", ".join(f"{c} s{s}" for c, s in cells) for m, cells in sorted(identity.items())
    )
    return Finding(
        key="beats_peers",
        claim="DeepDrift detects corrupted batches better than the peer detectors",
        quotes=(),
        verdict=verdict,
        why=why,
        summary=summary,
        tables=(
            Table(
                "Which statistic, on equal layers: DeepDrift (min-p) against the best peer statistic (Mahalanobis,"
                " KNN, MMD, KS) on the same layer set; mean AUROC over corrupted cells, difference with a 95% paired"
                " percentile bootstrap over clean and corrupted batches.",
                pd.DataFrame(rows),
            ),
            Table(
                "Which layers: each statistic's mean AUROC per layer set (means over models and batch sizes where"
                " the statistic is scored: MMD and KS have no batch-1 cells, so compare along a row, not down a"
                " column; the full table with intervals is corruption_footing).",
                _layer_frame(table),
            ),
            *detection_seed_table(replicates),
        ),
        notes=(
            "The best peer statistic is chosen on the same data it is compared on, which favours the peer slightly.",
            "Bootstrap resamples batches, not images: batches at B = 16 and 64 share images of one small pool, so "
            "the interval understates the uncertainty of a fresh image sample.",
            detection_seed_note(replicates, list(scores)),
            "MMD at batch 1 is undefined and KS at batch 1 degenerate: those cells are marked, not scored.",
            "Left out as identities on these images (no pixel changes): " + (identity_text or "none") + ".",
        ),
    )


def _gaps(versus: pd.DataFrame) -> tuple[float, float]:
    """Mean AUROC gap of DeepDrift on all taps over the best peer on the penultimate features (the shipped
    comparison, layers and statistic changed together) and over the best peer on all taps (statistic alone)."""
    frame = versus.set_index(["model", "batch_size", "layers"])
    shipped, equal = [], []
    for model, batch_size in dict.fromkeys(zip(versus["model"], versus["batch_size"], strict=True)):
        if (model, batch_size, HEADLINE_LAYERS) in frame.index and (model, batch_size, "penultimate") in frame.index:
            ours = frame.loc[(model, batch_size, HEADLINE_LAYERS), "deepdrift"]
            shipped.append(ours - frame.loc[(model, batch_size, "penultimate"), "peer auroc"])
            equal.append(ours - frame.loc[(model, batch_size, HEADLINE_LAYERS), "peer auroc"])
    return (float(np.mean(shipped)), float(np.mean(equal))) if shipped else (math.nan, math.nan)


def _batch_sizes(rows: list[dict[str, object]], status: str) -> str:
    sizes = sorted({int(r["batch size"]) for r in rows if r["status"] == status})  # type: ignore[call-overload]
    return "batch " + ", ".join(map(str, sizes)) if sizes else "none"


def _estimate(table: pd.DataFrame, model: str, batch_size: int, statistic: str, layers: str) -> Estimate:
    row = table[
        (table["model"] == model)
        & (table["batch_size"] == batch_size)
        & (table["statistic"] == statistic)
        & (table["layers"] == layers)
    ].iloc[0]
    return Estimate(float(row["auroc"]), float(row["low"]), float(row["high"]))


def _layer_gains(table: pd.DataFrame) -> dict[str, float]:
    """Per statistic: mean AUROC on all taps (max) minus on the penultimate features, over scored cells."""
    ok = table[table["status"] == "ok"]
    wide = ok.pivot_table(index=["model", "batch_size", "statistic"], columns="layers", values="auroc")
    if "penultimate" not in wide or HEADLINE_LAYERS not in wide:
        return {}
    gain = (wide[HEADLINE_LAYERS] - wide["penultimate"]).groupby(level="statistic", sort=False).mean()
    order = [s for s in STATISTIC_LABELS if s in gain.index]
    return {s: float(gain[s]) for s in order}


def _layer_frame(table: pd.DataFrame) -> pd.DataFrame:
    ok = table[table["status"] == "ok"]
    means = ok.pivot_table(index="statistic", columns="layers", values="auroc", aggfunc="mean")
    means = means.reindex(index=[s for s in STATISTIC_LABELS if s in means.index])
    means = means.reindex(columns=[c for c in LAYER_SETS if c in means.columns])
    frame = means.reset_index()
    frame["statistic"] = frame["statistic"].map(STATISTIC_LABELS)
    return frame


def _footing_verdict(sides: list[str]) -> Verdict:
    if not sides:
        return Verdict.INCONCLUSIVE
    if all(s == "DeepDrift higher" for s in sides):
        return Verdict.SUPPORTED
    if not any(s == "DeepDrift higher" for s in sides):
        return Verdict.NOT_SUPPORTED
    return Verdict.PARTLY


def _footing_reading(verdict: Verdict) -> str:
    return {
        Verdict.SUPPORTED: "DeepDrift's statistic is better than every peer statistic on every layer set.",
        Verdict.PARTLY: "DeepDrift's statistic is better in some cells and worse in others: the claim holds only where "
        "the table says so, and an advantage measured against peers on fewer layers is mostly the layers'.",
        Verdict.NOT_SUPPORTED: "On the same layers no cell shows DeepDrift's statistic above the best peer statistic "
        "by an interval: its advantage in the shipped comparison comes from the layers it watches, not its statistic.",
        Verdict.INCONCLUSIVE: "No cell could be compared.",
    }[verdict]
