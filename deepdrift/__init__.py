"""DeepDrift: layer-wise drift diagnostics for PyTorch networks. "See exactly where your model broke."

The public surface is re-exported here; everything else is an implementation detail.
"""

import logging as _logging

from ._version import __version__
from .calibration import Calibration, CalibrationAccumulator, CalibrationConfig
from .distributed import all_reduce_accumulator, all_reduce_accumulators
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
from .merge import merge_accumulators
from .monitor import DeepDriftMonitor
from .observer import Alert, AlertKind, MonitorState, ObserverConfig
from .pooling import Layout, PoolingConfig
from .presets import preset
from .scores import DriftScorer, LayerScore
from .status import LayerStatus
from .taps import ZONES, LayerTaps, Tap
from .verbosity import log_level, set_log_level

__all__ = [
    "ZONES",
    "Alert",
    "AlertKind",
    "Calibration",
    "CalibrationAccumulator",
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
    "Layout",
    "MonitorState",
    "NonFiniteActivationError",
    "NotCalibratedError",
    "ObserverConfig",
    "PoolingConfig",
    "Tap",
    "UnsupportedOutputError",
    "__version__",
    "all_reduce_accumulator",
    "all_reduce_accumulators",
    "diagnose_drift",
    "log_level",
    "merge_accumulators",
    "plot_drift_profile",
    "plot_drift_timeline",
    "preset",
    "render_report",
    "set_log_level",
]

_logging.getLogger(__name__).addHandler(_logging.NullHandler())

_LAZY = {"plot_drift_profile": "plots", "plot_drift_timeline": "plots", "render_report": "report"}
"""Public names whose modules import heavy optional packages (matplotlib, seaborn): loaded on first use."""


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'deepdrift' has no attribute {name!r}")
    from importlib import import_module

    try:
        value = getattr(import_module(f".{module}", __name__), name)
    except ImportError as exc:
        raise ImportError(
            f"deepdrift.{name} needs matplotlib and seaborn: pip install 'deepdrift[plots]' ({exc})"
        ) from exc
    globals()[name] = value
    return value
