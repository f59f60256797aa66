"""Visible warnings for usage that makes drift numbers unreliable without making them impossible.

Each problem is reported once per monitor (and per batch size or input shape) through ``warnings.warn`` with
``DeepDriftWarning``, so it shows by default and can be filtered. The calibration-size rules come from the
calibration study's size sweep (``paper_figures/calibration_size.md``: trained CNN, ResNet-20 and ViT on
Fashion-MNIST, 5 calibration splits per size, 2000 / 2000 / 1000 clean batches per split at B = 1 / 16 / 128). Clean
exceedance of 3 sigma as a multiple of the normal tail (0.135%), range over the three models:

| calibration samples N | B = 1 | B = 16 | B = 128 |
| --- | --- | --- | --- |
| 250 | 6.7-11.5x | 1.1-13x | 0.4-30x |
| 500 | 2.6-7.7x | 1.1-6.9x | 1.4-12x |
| 1000 | 2.2-3.4x | 0.8-4.1x | 0.7-2.7x |
| 2000 | 1.7-3.0x | 0.8-3.2x | 0.9-2.7x |
| 4000 | 1.5-2.8x | 1.0-2.9x | 0.8-2.5x |

Below 1000 samples the excess grows fast; from 1000 on it levels off at 1-3x (the resampled null's own far tail is
too light there, whatever N: ``paper_figures/FINDINGS.md``). Hence at least 1000 samples, and at least 8 per sample of
the batch (N / B = 4 gave up to 12x at B = 128).
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable

from .calibration import Calibration
from .errors import DeepDriftWarning

MIN_CALIBRATION_SAMPLES = 1000
"""Calibrating on fewer clean samples lets clean batches exceed 3 sigma several times more often than nominal."""
MIN_HOLDOUT_PER_BATCH = 2
"""The null at batch size B resamples the held-out reservoir; it needs at least this many samples per batch slot."""
MIN_HOLDOUT = 32
MIN_SAMPLES_PER_BATCH = 8
"""The reference mean is estimated from N samples; with B > N / 8 its own error is a visible part of every score."""


def minimum_samples(batch_size: int) -> int:
    """Clean calibration samples this library asks for before scoring batches of ``batch_size``."""
    return max(MIN_CALIBRATION_SAMPLES, MIN_SAMPLES_PER_BATCH * batch_size)


class UsageChecks:
    """Remembers which warnings were already given, so a long stream warns once, not on every batch."""

    def __init__(self) -> None:
        self._given: set[Hashable] = set()
        self._checked: dict[Hashable, tuple[Calibration, set[int]]] = {}  # context -> (calibration, batch sizes)

    def warn_once(self, key: Hashable, message: str, stacklevel: int = 4) -> None:
        if key not in self._given:
            self._given.add(key)
            warnings.warn(message, DeepDriftWarning, stacklevel=stacklevel)

    def reset(self) -> None:
        self._given.clear()
        self._checked.clear()

    def calibration_size(self, calibration: Calibration, context: Hashable) -> None:
        """After calibrating: too few samples overall."""
        if calibration.n_seen < MIN_CALIBRATION_SAMPLES:
            where = "" if context is None else f" (context {context!r})"
            self.warn_once(
                ("calibration_size", context),
                f"calibrated on only {calibration.n_seen} samples{where}; with fewer than {MIN_CALIBRATION_SAMPLES} "
                "clean samples, clean batches exceed 3 sigma several times more often than nominal. Calibrate on "
                f"at least {MIN_CALIBRATION_SAMPLES} (and at least 8 x the batch size you score).",
            )

    def batch_size(self, calibration: Calibration, batch_size: int, context: Hashable) -> None:
        """Before scoring at a batch size: the reservoir and the reference mean must be large enough for it.

        Runs per batch, so each (calibration, batch size, context) is checked once."""
        checked = self._checked.get(context)
        if checked is None or checked[0] is not calibration:
            checked = self._checked[context] = (calibration, set())
        if batch_size in checked[1]:
            return
        checked[1].add(batch_size)
        n_holdout = min(int(ref.holdout.shape[0]) for ref in calibration.layers.values())
        needed_holdout = max(MIN_HOLDOUT, MIN_HOLDOUT_PER_BATCH * batch_size)
        if n_holdout < needed_holdout:
            self.warn_once(
                ("holdout", batch_size, context),
                f"the null distribution at batch size {batch_size} is resampled from only {n_holdout} held-out "
                f"calibration samples; at least {needed_holdout} are needed (calibrate on >= "
                f"{minimum_samples(batch_size)} samples, or raise CalibrationConfig.holdout_fraction).",
            )
        count = min(ref.count for ref in calibration.layers.values())
        if MIN_SAMPLES_PER_BATCH * batch_size > count:
            self.warn_once(
                ("batch_vs_calibration", batch_size, context),
                f"batch size {batch_size} is close to the {count} samples behind the reference mean; its "
                "estimation error then shifts every score of this deployment. Use batches of at most "
                f"{max(1, count // MIN_SAMPLES_PER_BATCH)} or calibrate on >= {minimum_samples(batch_size)} samples.",
            )

    def input_shape(self, expected: tuple[int, ...] | None, seen: tuple[int, ...] | None) -> None:
        """Inputs of another per-sample shape than the calibration's (another resolution changes every statistic)."""
        if expected is None or seen is None or tuple(expected) == tuple(seen):
            return
        self.warn_once(
            ("input_shape", tuple(seen)),
            f"inputs have per-sample shape {tuple(seen)} but the calibration saw {tuple(expected)}; pooled "
            "statistics depend on the input size, so drift will be large for that reason alone. Resize inputs "
            "to the calibration shape or recalibrate at this shape.",
        )

    def training_mode(self) -> None:
        self.warn_once(
            "training_mode",
            "the model is in training mode; step()/score() run it in eval mode (as calibrate() does) so batch-norm "
            "buffers and dropout do not change. Call model.eval() to silence this.",
        )
