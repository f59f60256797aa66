"""The doctor: name the failure mode and the layer where drift starts, from a depth profile.

Rules (all on relative depth and significance, never on list positions):

1. A tap is *significant* when its one-sided p-value (from the status, or ``Phi(-drift)`` for a plain list), adjusted
   across taps (Holm by default), is below ``alpha``. No significant tap: STABLE. Per-layer drift is ~N(0, 1) on
   clean data, so this controls the chance of a false diagnosis on a clean batch at ``alpha``.
2. The *onset* is the first significant tap in depth order: every earlier tap looks clean, so the representation
   broke between the previous tap and this one ("where it broke").
3. GLOBAL_COLLAPSE: every tap is significant, the profile is flat (its weakest tap still carries at least
   ``flat_ratio`` of the strongest) and it does not decay towards the output (the last tap drifts at least as much
   as the first): the whole network is off its reference, not one part of it. A profile that decays from the
   input side is an input change the network partly absorbs, so rule 4 decides.
4. Onset in the input-side zone (UV):
   - GEOMETRIC_COLLAPSE ("avalanche") when drift keeps growing with depth, ending at least ``avalanche_ratio``
     times the onset's drift at the output side (a small input change amplified by the network);
   - otherwise SENSOR_FAILURE: the input itself changed and the network does not amplify it.
5. Onset in the Mid zone: SPURIOUS_CORRELATION (internal feature mismatch): the input-side features are normal,
   so the inputs look familiar, yet mid-level features react to something new.
6. Onset in Deep / IR: GEOMETRIC_COLLAPSE: only the output-side geometry is broken.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from .corrections import Correction, adjust_pvalues, check_correction
from .profile import DriftProfile, read_profile
from .taps import ZONES
from .validation import require_float


class FailureMode(enum.Enum):
    """The original's failure modes, kept by name for compatibility; each is a shape of the depth profile.

    The names say a cause, but the rules see only where drift starts, whether it grows with depth and whether it is
    flat. Against perturbations whose mechanism fixes the cause (the suite's ``mode_truth`` study) only the input-side
    onset is recovered reliably: a class shift or all-layer weight noise also starts at the first tap. Read a
    diagnosis by its :attr:`Diagnosis.pattern` and ``zone``, not as a proven cause.
    """

    STABLE = "STABLE"
    SENSOR_FAILURE = "SENSOR_FAILURE"
    SPURIOUS_CORRELATION = "SPURIOUS_CORRELATION"
    GEOMETRIC_COLLAPSE = "GEOMETRIC_COLLAPSE"
    GLOBAL_COLLAPSE = "GLOBAL_COLLAPSE"


_MESSAGES = {
    FailureMode.STABLE: ("OK", "Stable (no significant drift)"),
    FailureMode.SENSOR_FAILURE: ("WARNING", "Sensor Failure (Input-layer Drift)"),
    FailureMode.SPURIOUS_CORRELATION: ("WARNING", "Spurious Correlation (Mid-level Feature Mismatch)"),
    FailureMode.GEOMETRIC_COLLAPSE: ("WARNING", "Avalanche Effect (Geometric Failure)"),
    FailureMode.GLOBAL_COLLAPSE: ("CRITICAL", "Global Collapse (All Zones Drifting)"),
}


_PATTERNS = {
    FailureMode.STABLE: "no significant drift",
    FailureMode.SENSOR_FAILURE: "input-side onset, not amplified",
    FailureMode.SPURIOUS_CORRELATION: "mid-level onset",
    FailureMode.GLOBAL_COLLAPSE: "every tap significant, flat profile",
}


@dataclass(frozen=True)
class DoctorConfig:
    """Knobs of the diagnosis rules (see the module docstring for the reasoning).

    Attributes:
        alpha: significance level per profile, after the correction across taps.
        correction: ``'holm'`` (family-wise) or ``'bh'`` (false discovery rate).
        flat_ratio: weakest/strongest drift ratio above which an all-significant profile is "global".
        avalanche_ratio: output-side/onset drift ratio for an input-side onset to count as amplified.
    """

    alpha: float = 0.01
    correction: Correction = "holm"
    flat_ratio: float = 0.5
    avalanche_ratio: float = 3.0

    def __post_init__(self) -> None:
        require_float("DoctorConfig.alpha", self.alpha, minimum=0.0, maximum=1.0, strict_minimum=True)
        check_correction(self.correction)
        require_float("DoctorConfig.flat_ratio", self.flat_ratio, minimum=0.0, maximum=1.0)
        require_float("DoctorConfig.avalanche_ratio", self.avalanche_ratio, minimum=1.0)


@dataclass(frozen=True)
class Diagnosis:
    """What the doctor found. ``str()`` reads like the original: ``"WARNING: Avalanche Effect (Geometric Failure)"``."""

    mode: FailureMode
    onset_layer: str | None
    onset_index: int | None
    zone: str | None
    severity: float
    significant: tuple[bool, ...]
    message: str

    def __str__(self) -> str:
        return self.message

    @property
    def pattern(self) -> str:
        """What the profile shows, named after where drift starts: the evidence behind ``mode``, without its cause."""
        if self.mode is FailureMode.GEOMETRIC_COLLAPSE:
            return "input-side onset, amplified with depth" if self.zone == ZONES[0] else "output-side onset"
        return _PATTERNS[self.mode]

    @property
    def detail(self) -> str:
        """The message plus where it broke and how strongly."""
        where = f" starting at {self.onset_layer} [{self.zone}]" if self.onset_layer is not None else ""
        return f"{self.message}{where}; peak drift {self.severity:.1f} sigma"


def diagnose_drift(profile: DriftProfile, config: DoctorConfig = DoctorConfig()) -> Diagnosis:
    """Diagnose a drift profile.

    Args:
        profile: the original's plain list of drifts in depth order, or the monitor's ``status`` dict (which
            carries depths, zones and p-values).
        config: rule thresholds.
    """
    arrays = read_profile(profile)
    names, drift, zones = arrays.names, arrays.drift, arrays.zones
    significant = adjust_pvalues(arrays.p_values, config.correction) < config.alpha
    severity = float(np.nanmax(drift)) if np.isfinite(drift).any() else float("nan")
    nonfinite = ~np.isfinite(drift)
    significant = significant | nonfinite  # NaN activations are the strongest possible evidence
    if not significant.any():
        return _make(FailureMode.STABLE, None, None, None, severity, significant)
    onset = int(np.flatnonzero(significant)[0])
    finite = np.where(nonfinite, np.inf, drift)
    mode = _classify(finite, significant, zones, onset, config)
    return _make(mode, names[onset], onset, zones[onset], severity, significant)


def _classify(
    drift: np.ndarray, significant: np.ndarray, zones: list[str], onset: int, config: DoctorConfig
) -> FailureMode:
    strongest = float(np.max(drift))
    flat = float(np.min(drift)) >= config.flat_ratio * strongest
    if significant.all() and (drift.size == 1 or (flat and drift[-1] >= drift[0])):
        return FailureMode.GLOBAL_COLLAPSE
    zone = zones[onset]
    if zone == ZONES[0]:
        tail = drift[onset:]
        output_side = float(np.max(tail[len(tail) // 2 :])) if len(tail) > 1 else float(tail[0])
        grows = len(tail) > 1 and output_side >= config.avalanche_ratio * max(float(drift[onset]), 1e-12)
        return FailureMode.GEOMETRIC_COLLAPSE if grows else FailureMode.SENSOR_FAILURE
    if zone == ZONES[1]:
        return FailureMode.SPURIOUS_CORRELATION
    return FailureMode.GEOMETRIC_COLLAPSE


def _make(
    mode: FailureMode, onset: str | None, index: int | None, zone: str | None, severity: float, significant: np.ndarray
) -> Diagnosis:
    level, text = _MESSAGES[mode]
    return Diagnosis(
        mode=mode,
        onset_layer=onset,
        onset_index=index,
        zone=zone,
        severity=severity,
        significant=tuple(bool(s) for s in significant),
        message=f"{level}: {text}",
    )
