"""What-if analysis of the doctor's rules on the stored verdicts (the doctor itself lives in deepdrift.doctor).

Finding on the default models: strong input-side faults propagate to every tap with a *decaying* profile, and the
GLOBAL_COLLAPSE rule (every tap significant, weakest >= half the strongest) fires before the onset-zone rules, so
a sensor fault is called a global collapse. The variant tested here keeps GLOBAL_COLLAPSE only when the profile does
not decay from the onset (drift at the last tap >= drift at the onset tap, or non-finite drift everywhere); otherwise
the onset-zone rules decide. It is evaluated with the library's own ``diagnose_drift`` (GLOBAL switched off through
``flat_ratio=inf`` for the re-diagnosis), on the same drift profiles and p-values.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from deepdrift import DoctorConfig, FailureMode, diagnose_drift

_NO_GLOBAL = DoctorConfig(flat_ratio=float("inf"))


def _profile(drift: str, p_values: str) -> dict[str, dict[str, float | str]]:
    d = [float(x) for x in drift.split(";")]
    p = [float(x) for x in p_values.split(";")]
    n = len(d)
    return {f"t{i}": {"drift": d[i], "p_value": p[i], "depth": i / max(n - 1, 1)} for i in range(n)}  # zones: doctor


def variant_mode(drift: str, p_values: str) -> str:
    """The doctor's mode with GLOBAL_COLLAPSE kept only for non-decaying profiles."""
    profile = _profile(drift, p_values)
    diagnosis = diagnose_drift(profile)
    if diagnosis.mode is not FailureMode.GLOBAL_COLLAPSE:
        return diagnosis.mode.value
    d = np.array([v["drift"] for v in profile.values()], dtype=float)
    onset = diagnosis.onset_index or 0
    if not np.isfinite(d).any() or (np.isfinite(d[[onset, -1]]).all() and d[-1] >= d[onset]):
        return diagnosis.mode.value
    return diagnose_drift(profile, _NO_GLOBAL).mode.value


def rule_variant_table(scored: pd.DataFrame, batch_size: int = 16) -> pd.DataFrame:
    """Mode accuracy per model and expected mode under the current rules and under the variant."""
    part = scored[(scored["batch_size"] == batch_size) & (scored["kind"] != "none")].copy()
    part["mode_variant"] = [variant_mode(d, p) for d, p in zip(part["profile"], part["p_values"], strict=True)]
    part["variant_correct"] = part["mode_variant"] == part["expected_mode"]
    table = part.groupby(["model", "expected_mode"]).agg(
        batches=("mode", "size"), current_rules=("mode_correct", "mean"), variant=("variant_correct", "mean"),
        current_global=("mode", lambda m: (m == FailureMode.GLOBAL_COLLAPSE.value).mean()),
        variant_global=("mode_variant", lambda m: (m == FailureMode.GLOBAL_COLLAPSE.value).mean()))
    return table.reset_index()
