"""Claim 3, mode diagnosis: does the doctor name which failure mode the drift looks like?

Testable only if the expected mode is known independently of the doctor's zone-to-mode rule. The fault list derives
it from the injected zone, so agreement there measures the zone, not the mode (the circularity check below says so
whenever it holds). The mode-truth study (:mod:`experiments.mode_truth`) supplies the independent truth: each
perturbation family's mechanism fixes its mode, and the verdict reads its per-mode recall with intervals over
perturbation instances. Without that study's tables the claim falls back to the circular fault list.
"""

from __future__ import annotations

import math

import pandas as pd

from experiments.findings.claims.common import ALL_FAULTS, README_BATCH
from experiments.findings.finding import Finding, Table, Verdict, combine
from experiments.findings.intervals import Estimate, proportion

MODE_QUOTES = ("the doctor says where in the network the drift starts and which failure mode it looks like",)
MODE_TARGET = 0.9
"""Share of batches whose mode matches an independent ground truth for the claim to hold (if one existed)."""


def mode_diagnosis(
    accuracy: pd.DataFrame,
    confusion: pd.DataFrame,
    faults: pd.DataFrame,
    recall: pd.DataFrame | None = None,
    natural: pd.DataFrame | None = None,
    mechanism: pd.DataFrame | None = None,
    streams: pd.DataFrame | None = None,
) -> Finding:
    """Does the doctor name the failure mode? Only if the expected mode is known independently of the zone rule.

    Args:
        accuracy: ``faults_accuracy.csv`` (mode_accuracy per model, batch size, subset).
        confusion: ``faults_mode_confusion.csv`` (model, expected_mode, one count column per diagnosed mode).
        faults: ``faults_list.csv`` (onset_zone and expected_mode per fault): decides whether the expected mode
            is anything more than a function of the injected zone.
        recall: ``mode_truth_recall.csv`` (per-mode recall against mechanism-defined truth); None: the fault
            list alone judges (circular: not supported).
        natural, mechanism, streams: ``mode_truth_natural.csv``, ``mode_truth_mechanism.csv`` and
            ``mode_truth_streams.csv``: context for the page (they do not change the verdict).
    """
    if recall is not None:
        from experiments.findings.claims.mode_truth import independent_mode_diagnosis

        circular, mapping = _circularity(faults)
        return independent_mode_diagnosis(recall, circular, mapping, natural, mechanism, streams)
    accuracy = _doctor(accuracy)
    circular, mapping = _circularity(faults)
    agreement = _agreement(accuracy)
    verdict, why = _mode_verdict(circular, mapping, agreement)
    return Finding(
        key="mode_diagnosis",
        claim="The doctor names which failure mode the drift looks like",
        quotes=MODE_QUOTES,
        verdict=verdict,
        why=why,
        summary=(
            "circular ground truth (expected mode = zone rule); zone agreement B=16 (held-out set where present): "
            if circular
            else "mode agreement B=16: "
        )
        + ", ".join(f"{m} {e.value:.2f}" for m, e in agreement.items()),
        tables=(
            Table(
                f"Diagnosed mode against the zone-derived expected mode, batches of {README_BATCH} "
                "(95% Wilson over batches).",
                _confusion_table(confusion),
            ),
        ),
        notes=("Wilson intervals treat batches as independent; batches of one fault are not.",),
    )


def _circularity(faults: pd.DataFrame) -> tuple[bool, pd.Series]:
    """Whether the fault list's expected mode is a function of the injected zone, and that zone -> mode map."""
    injected = faults[faults["kind"] != "none"]
    modes_per_zone = injected.groupby("onset_zone")["expected_mode"].nunique()
    circular = bool(len(modes_per_zone)) and bool((modes_per_zone == 1).all())
    return circular, injected.groupby("onset_zone", sort=True)["expected_mode"].first()


def _doctor(accuracy: pd.DataFrame) -> pd.DataFrame:
    """The doctor's rows of the accuracy table, on the held-out fault set where there is one (the development set
    in tables from before it)."""
    if "localiser" in accuracy.columns:
        accuracy = accuracy[accuracy["localiser"] == "doctor"]
    if "fault_set" in accuracy.columns:
        chosen = "held-out" if (accuracy["fault_set"] == "held-out").any() else "development"
        accuracy = accuracy[accuracy["fault_set"] == chosen]
    return accuracy


def _confusion_table(confusion: pd.DataFrame) -> pd.DataFrame:
    """Per fault set, model and expected mode: the share diagnosed as expected and the most frequent other
    diagnosis."""
    mode_columns = [c for c in confusion.columns if c not in ("fault_set", "model", "expected_mode")]
    rows = []
    for _, row in confusion.iterrows():
        counts = row[mode_columns].astype(int)
        n, expected = int(counts.sum()), str(row["expected_mode"])
        others = counts.drop(expected, errors="ignore")
        top = str(others.idxmax()) if len(others) and others.max() > 0 else "-"
        rows.append(
            {
                **({"fault set": row["fault_set"]} if "fault_set" in confusion.columns else {}),
                "model": row["model"],
                "expected mode (from zone)": expected,
                "batches": n,
                "diagnosed as expected": proportion(int(counts.get(expected, 0)), n) if n else Estimate(math.nan),
                "most frequent other": top,
                "its share": float(others.max() / n) if n and top != "-" else math.nan,
            }
        )
    return pd.DataFrame(rows)


def _agreement(accuracy: pd.DataFrame) -> dict[str, Estimate]:
    """Per model: the share of batches on all faults at the README's batch size whose mode matches the expected
    (the doctor, on the held-out set where there is one)."""
    at16 = accuracy[(accuracy["subset"] == ALL_FAULTS) & (accuracy["batch_size"] == README_BATCH)]
    return {
        str(r["model"]): proportion(round(float(r["mode_accuracy"]) * int(r["batches"])), int(r["batches"]))
        for _, r in at16.iterrows()
    }


def _mode_verdict(circular: bool, mapping: pd.Series, agreement: dict[str, Estimate]) -> tuple[Verdict, str]:
    """Not supported when the expected mode is the zone rule's; else every model's agreement against the target."""
    listed = ", ".join(f"{m} {e}" for m, e in agreement.items()) or "n/a"
    if circular:
        why = (
            "Not supported as stated. The benchmark has no ground truth for the failure mode: in the fault list "
            "every injected zone maps to exactly one expected mode ("
            + ", ".join(f"{zone} -> {mode}" for zone, mode in mapping.items())
            + "), the doctor's own zone-to-mode rule. Agreement with that mode therefore measures only whether the "
            f"doctor puts the onset in the injected zone, not which failure mode the drift looks like. As a zone "
            f"measurement it reads, on all faults at batch {README_BATCH}: {listed}. Testing the claim needs "
            "perturbation families whose mechanism defines the mode (issue 12, item 4)."
        )
        return Verdict.NOT_SUPPORTED, why
    passed = [e.low >= MODE_TARGET for e in agreement.values()]
    why = (
        f"The expected mode is not a function of the injected zone, so agreement measures the mode: {listed} "
        f"(target: {MODE_TARGET:.0%} by the interval's lower bound)."
    )
    return combine(passed), why
