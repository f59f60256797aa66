"""Named sets of monitor settings that trade detection power for cost: ``DeepDriftMonitor(model, **preset("fast"))``.

``default`` is what ``DeepDriftMonitor(model)`` does: three features per channel (mean, std, max) and the min-p
combination of the mean-, peak- and principal-axes shifts. ``fast`` keeps each channel's mean only and scores the
mean shift alone (no principal axes, so no covariance is accumulated while calibrating). Its cost and its power on
the corruption benchmark are measured side by side with the default in ``paper_figures/monitor_overhead.*`` and
``paper_figures/corruption_*``: choose it where the monitor's cost matters more than catching changes that leave
channel means alone (zero-mean noise, occlusions, dead channels).
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from .calibration import CalibrationConfig
from .pooling import PoolingConfig

PresetName = Literal["default", "fast"]


def preset(name: PresetName, **overrides: Any) -> dict[str, Any]:
    """Keyword arguments of ``DeepDriftMonitor`` for a named preset; ``overrides`` replace single entries.

    Example:
        >>> from deepdrift import DeepDriftMonitor, preset
        >>> monitor = DeepDriftMonitor(model, **preset("fast"))  # doctest: +SKIP
        >>> sorted(preset("fast"))
        ['calibration_config', 'pooling', 'statistic']
    """
    if name == "default":
        settings: dict[str, Any] = {
            "pooling": PoolingConfig(),
            "statistic": "combined",
            "calibration_config": CalibrationConfig(),
        }
    elif name == "fast":
        settings = {
            "pooling": PoolingConfig(summary="mean"),
            "statistic": "mean_shift",
            "calibration_config": CalibrationConfig(principal_max_features=0),
        }
    else:
        raise ValueError(f"unknown preset {name!r}; choose one of {get_args(PresetName)}")
    unknown = sorted(set(overrides) - set(settings))
    if unknown:
        raise TypeError(f"preset overrides {unknown} are not settings of a preset; it sets {sorted(settings)}")
    return {**settings, **overrides}
