"""Tables of the localisation benchmark: accuracies per subset of faults, and the doctor's mode confusion."""

from __future__ import annotations

import pandas as pd

from deepdrift import FailureMode

MODES = [m.value for m in FailureMode]
CLEAN_CONTROL = "clean control"
"""Subset label of the control set's clean batches (the development set's one clean fault keeps its old label)."""


def _subsets(df: pd.DataFrame, min_drop: float) -> dict[str, pd.DataFrame]:
    faulty = df[df["kind"] != "none"]
    clean = df[df["kind"] == "none"]
    control = clean["fault_set"] == "control" if "fault_set" in clean.columns else pd.Series(False, clean.index)
    return {
        "clean model (no fault)": clean[~control],
        CLEAN_CONTROL: clean[control],
        "all faults": faulty,
        f"accuracy change >= {min_drop:g} pts": faulty[faulty["accuracy_drop"].abs() >= min_drop],
        "input faults": faulty[faulty["kind"] == "input"],
        "internal faults": faulty[faulty["kind"] == "internal"],
    }


def _with_defaults(scored: pd.DataFrame) -> pd.DataFrame:
    """Verdicts from before the held-out set and the peers: the development set, the doctor."""
    defaults = {"fault_set": "development", "localiser": "doctor"}
    return scored.assign(**{k: v for k, v in defaults.items() if k not in scored.columns})


def accuracy_table(scored: pd.DataFrame, min_drop: float = 2.0) -> pd.DataFrame:
    """Per fault set, localiser, model, batch size and subset of faults: detection, onset (exact / within one
    tap) and mode accuracy.

    Onset accuracies count an undetected batch as wrong; ``onset_exact_if_detected`` conditions on detection.
    For the clean model and the clean control, ``detected`` is the false-diagnosis rate. ``mode_accuracy`` is the
    doctor's only (the other localisers name no mode).
    """
    rows = []
    keys = ["fault_set", "localiser", "model", "batch_size"]
    for (fault_set, localiser, model, batch_size), group in _with_defaults(scored).groupby(keys, sort=False):
        for subset, part in _subsets(group, min_drop).items():
            if part.empty:
                continue
            detected = part[part["detected"]]
            rows.append(
                {
                    "fault_set": fault_set,
                    "localiser": localiser,
                    "model": model,
                    "batch_size": int(batch_size),
                    "subset": subset,
                    "faults": part["fault_id"].nunique(),
                    "batches": len(part),
                    "detected": part["detected"].mean(),
                    "onset_exact": part["onset_exact"].mean(),
                    "onset_within_1": part["onset_within1"].mean(),
                    "onset_exact_if_detected": detected["onset_exact"].mean() if len(detected) else float("nan"),
                    "mode_accuracy": part["mode_correct"].astype(float).mean(),
                }
            )
    return pd.DataFrame(rows)


def mode_confusion(scored: pd.DataFrame, batch_size: int = 16) -> pd.DataFrame:
    """The doctor's counts of (expected mode, diagnosed mode) per fault set and model at one batch size, faults
    only."""
    scored = _with_defaults(scored)
    part = scored[(scored["batch_size"] == batch_size) & (scored["kind"] != "none") & (scored["localiser"] == "doctor")]
    table = pd.crosstab([part["fault_set"], part["model"], part["expected_mode"]], part["mode"])
    table = table.reindex(columns=MODES, fill_value=0)
    return table.reset_index().rename_axis(columns=None)


def fault_table(scored: pd.DataFrame, batch_size: int = 16) -> pd.DataFrame:
    """One row per fault: accuracy drop, pre-onset change, the doctor's detection / onset / mode rates at
    ``batch_size``."""
    scored = _with_defaults(scored)
    part = scored[(scored["batch_size"] == batch_size) & (scored["localiser"] == "doctor")]
    keys = [
        "fault_set",
        "model",
        "kind",
        "family",
        "module",
        "strength",
        "onset_true",
        "onset_zone",
        "expected_mode",
        "accuracy",
        "accuracy_drop",
        "pre_onset_max_change",
    ]
    table = part.groupby(keys, sort=False).agg(
        detected=("detected", "mean"),
        onset_exact=("onset_exact", "mean"),
        mode_correct=("mode_correct", "mean"),
        top_mode=("mode", lambda m: m.value_counts().index[0]),
    )
    return table.reset_index()
