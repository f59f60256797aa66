"""Tables of the localisation benchmark: accuracies per subset of faults, and the doctor's mode confusion."""

from __future__ import annotations

import pandas as pd

from deepdrift import FailureMode

MODES = [m.value for m in FailureMode]


def _subsets(df: pd.DataFrame, min_drop: float) -> dict[str, pd.DataFrame]:
    faulty = df[df["kind"] != "none"]
    return {
        "clean model (no fault)": df[df["kind"] == "none"],
        "all faults": faulty,
        f"accuracy change >= {min_drop:g} pts": faulty[faulty["accuracy_drop"].abs() >= min_drop],
        "input faults": faulty[faulty["kind"] == "input"],
        "internal faults": faulty[faulty["kind"] == "internal"],
    }


def accuracy_table(scored: pd.DataFrame, min_drop: float = 2.0) -> pd.DataFrame:
    """Per model, batch size and subset of faults: detection, onset (exact / within one tap) and mode accuracy.

    Onset accuracies count an undetected batch as wrong; ``onset_exact_if_detected`` conditions on detection.
    For the clean model, ``detected`` is the false-diagnosis rate.
    """
    rows = []
    for (model, batch_size), group in scored.groupby(["model", "batch_size"], sort=False):
        for subset, part in _subsets(group, min_drop).items():
            if part.empty:
                continue
            detected = part[part["detected"]]
            rows.append(
                {
                    "model": model,
                    "batch_size": int(batch_size),
                    "subset": subset,
                    "faults": part["fault_id"].nunique(),
                    "batches": len(part),
                    "detected": part["detected"].mean(),
                    "onset_exact": part["onset_exact"].mean(),
                    "onset_within_1": part["onset_within1"].mean(),
                    "onset_exact_if_detected": detected["onset_exact"].mean() if len(detected) else float("nan"),
                    "mode_accuracy": part["mode_correct"].mean(),
                }
            )
    return pd.DataFrame(rows)


def mode_confusion(scored: pd.DataFrame, batch_size: int = 16) -> pd.DataFrame:
    """Counts of (expected mode, diagnosed mode) per model at one batch size, faults only."""
    part = scored[(scored["batch_size"] == batch_size) & (scored["kind"] != "none")]
    table = pd.crosstab([part["model"], part["expected_mode"]], part["mode"]).reindex(columns=MODES, fill_value=0)
    return table.reset_index().rename_axis(columns=None)


def fault_table(scored: pd.DataFrame, batch_size: int = 16) -> pd.DataFrame:
    """One row per fault: accuracy drop, pre-onset change, detection / onset / mode rates at ``batch_size``."""
    part = scored[scored["batch_size"] == batch_size]
    keys = [
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
