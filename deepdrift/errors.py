"""Typed exceptions, so callers can catch exactly what went wrong and the message says how to fix it."""

from __future__ import annotations


class DeepDriftError(Exception):
    """Base class of every error DeepDrift raises on purpose."""


class LayerNotFoundError(DeepDriftError, KeyError):
    """A requested layer name does not exist in the model."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class HookNotFiredError(DeepDriftError, RuntimeError):
    """A tapped layer was not executed by the forward pass, so it has no activation to score."""


class NotCalibratedError(DeepDriftError, RuntimeError):
    """Scoring was requested before reference statistics were calibrated or loaded."""


class CalibrationMismatchError(DeepDriftError, ValueError):
    """A saved calibration does not fit the model's taps (names or feature sizes differ)."""


class UnsupportedOutputError(DeepDriftError, TypeError):
    """A layer returned something that cannot be pooled to one vector per sample."""


class NonFiniteActivationError(DeepDriftError, ValueError):
    """NaN or Inf activations were seen where they cannot be tolerated (during calibration)."""


class CorruptCalibrationError(CalibrationMismatchError):
    """A calibration file is damaged or malformed: a header field or tensor has the wrong type, size or value."""


class DeepDriftWarning(UserWarning):
    """A problem the user can act on (too little calibration data, a model in training mode, too few taps ...).

    Issued with ``warnings.warn`` so it is visible by default; filter it with
    ``warnings.filterwarnings("ignore", category=deepdrift.DeepDriftWarning)``.
    """
