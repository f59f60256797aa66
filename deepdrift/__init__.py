"""DeepDrift: layer-wise drift diagnostics for PyTorch networks. "See exactly where your model broke."

The public surface is re-exported here; everything else is an implementation detail.
"""

import logging as _logging

from ._version import __version__
from .calibration import Calibration, CalibrationConfig
from .doctor import Diagnosis, DoctorConfig, FailureMode, diagnose_drift
from .errors import (
    CalibrationMismatchError,
    CorruptCalibrationError,
    DeepDriftError,
    DeepDriftWarning,
    HookNotFiredError,
    LayerNotFoundError,
    NonFiniteActivationError,
    NotCalibratedError,
    UnsupportedOutputError,
)
from .monitor import DeepDriftMonitor
from .observer import Alert, AlertKind, MonitorState, ObserverConfig
from .plots import plot_drift_profile, plot_drift_timeline
from .pooling import PoolingConfig
from .scores import DriftScorer, LayerScore
from .status import LayerStatus
from .taps import ZONES, LayerTaps, Tap

__all__ = [
    "ZONES",
    "Alert",
    "AlertKind",
    "Calibration",
    "CalibrationConfig",
    "CalibrationMismatchError",
    "CorruptCalibrationError",
    "DeepDriftError",
    "DeepDriftMonitor",
    "DeepDriftWarning",
    "Diagnosis",
    "DoctorConfig",
    "DriftScorer",
    "FailureMode",
    "HookNotFiredError",
    "LayerNotFoundError",
    "LayerScore",
    "LayerStatus",
    "LayerTaps",
    "MonitorState",
    "NonFiniteActivationError",
    "NotCalibratedError",
    "ObserverConfig",
    "PoolingConfig",
    "Tap",
    "UnsupportedOutputError",
    "__version__",
    "diagnose_drift",
    "plot_drift_profile",
    "plot_drift_timeline",
]

_logging.getLogger(__name__).addHandler(_logging.NullHandler())
