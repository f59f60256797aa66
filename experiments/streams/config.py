"""The streaming benchmark's settings (``config["streams"]``) as a frozen dataclass."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from experiments.config import from_mapping, parsed
from experiments.data.corruptions import config_corruptions


@dataclass(frozen=True)
class StrongChange:
    """The clear corruption of the monitor's acceptance check: ALERT within a few batches of a sudden change."""

    corruption: str = parsed(config_corruptions)
    severity: int


@dataclass(frozen=True)
class StreamStudyConfig:
    """Clean streams that switch to corrupted ones; every detector's delay and false alarms.

    Attributes:
        models: keys of ``config["models"]`` to benchmark.
        corruptions: corruption names of the change streams.
        severities: corrupted pools per corruption (the severity ramps walk through all of them).
        n_clean_pool: held-out images a clean batch is drawn from (None: all of them).
        n_corrupt: images per corruption and severity.
        sudden_severities: severities of the sudden changes.
        ramp_severity: final severity of the share ramps.
        batch_size: images per batch.
        repeats: streams per corruption and kind.
        pre: clean batches before the change (drawn uniformly from this range).
        post: batches after the change.
        ramp: batches a ramp takes to reach 100% (or the top severity).
        clean_streams: clean streams of ``clean_length`` batches for threshold tuning, and as many for testing.
            Their batches resample the clean pool (``n_clean_pool`` images), never repeating an image in a batch.
        clean_length: batches per clean stream.
        window_clean_streams: clean tuning and test streams the MMD / KS detectors are scored on (a window costs
            them about a millisecond, against microseconds for DeepDrift and river; None: all).
        theta_high: DeepDrift alert thresholds swept.
        adwin_delta, ph_threshold: river's ADWIN and Page-Hinkley settings swept (Page-Hinkley's threshold in
            standard deviations of the input's calibration values).
        window: batches per MMD / KS window.
        n_reference: calibration features the MMD / KS detectors are fit on.
        quantiles: clean-score quantiles swept as MMD / KS alarm thresholds.
        warmup_batches: batches river's detectors see before they may fire.
        budget: false alarms per 1000 clean batches of the matched comparison.
        strong: the monitor's clear-corruption check.
        slow_ramp: batches of the slow share ramp of the WARNING-before-ALERT check.
        ramp_streams: slow ramps the warning is tuned on, and as many fresh ones it is reported on.
        theta_warn_grid, theta_slope_grid: warning settings tried when tuning the warning.
        clean_warnings: WARNING events over all layers per 1000 clean tuning batches a tuned warning may raise.
        seed: seeds the streams and the detectors.
    """

    models: tuple[str, ...]
    corruptions: tuple[str, ...] = parsed(config_corruptions)
    severities: tuple[int, ...]
    n_clean_pool: int | None = None
    n_corrupt: int = 512
    sudden_severities: tuple[int, ...] = (1, 3, 5)
    ramp_severity: int = 3
    batch_size: int = 16
    repeats: int = 5
    pre: tuple[int, int] = (20, 60)
    post: int = 60
    ramp: int = 30
    clean_streams: int = 10
    clean_length: int = 1000
    window_clean_streams: int | None = 2
    theta_high: tuple[float, ...] = (1.75, 2.0, 2.5, 3.0, 4.0, 6.0)
    adwin_delta: tuple[float, ...] = (1e-5, 0.001, 0.01, 0.05, 0.2, 0.5, 0.9, 0.99, 0.999)
    ph_threshold: tuple[float, ...] = (200.0, 100.0, 50.0, 30.0, 20.0, 15.0, 10.0, 7.0, 5.0)
    window: int = 2
    n_reference: int = 256
    quantiles: tuple[float, ...] = (0.9, 0.99, 0.995, 0.999, 0.9995, 0.9999, 1.0)
    warmup_batches: int = 50
    budget: float = 1.0
    strong: StrongChange = field(default_factory=lambda: StrongChange("gaussian_noise", 5))
    slow_ramp: int = 50
    ramp_streams: int = 10
    theta_warn_grid: tuple[float, ...] = (2.0, 1.5, 1.0)
    theta_slope_grid: tuple[float, ...] = (0.05, 0.02)
    clean_warnings: float = 5.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.strong.corruption not in self.corruptions or self.strong.severity not in self.severities:
            raise ValueError("strong must name one of corruptions and one of severities")

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], path: str = "streams") -> StreamStudyConfig:
        return from_mapping(cls, cfg, path)
