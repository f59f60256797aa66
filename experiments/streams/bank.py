"""Per-image features of every image a stream can show: clean held-out images and each corrupted pool."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from deepdrift import Tap
from experiments.data.study_images import StudyImages
from experiments.features import FeatureSet, extract_features
from experiments.streams.generate import Pools
from experiments.streams.replay import pack

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeatureBank:
    """Packed tap features, penultimate features and MSP of every pooled image, plus the calibration split's.

    The penultimate features are the last tap's pooled output (the representation the classifier head reads).
    """

    packed: torch.Tensor
    msp: np.ndarray
    pools: Pools
    calib_packed: torch.Tensor
    calib_msp: np.ndarray
    widths: tuple[int, ...]
    labels: tuple[str, ...]

    @property
    def penultimate(self) -> torch.Tensor:
        return self.packed[:, -self.widths[-1] :]

    @property
    def calib_penultimate(self) -> torch.Tensor:
        return self.calib_packed[:, -self.widths[-1] :]


def build_bank(
    model: nn.Module,
    taps: Sequence[Tap],
    images: StudyImages,
    corruptions: Sequence[str],
    severities: Sequence[int],
    n_corrupt: int,
    seed: int,
    cache_dir: str | Path | None,
) -> FeatureBank:
    """Extract features once per image: the whole clean held-out pool and ``n_corrupt`` images per corruption."""
    names = [t.name for t in taps]
    calib = extract_features(model, images.calib, names)
    sets: list[tuple[object, FeatureSet]] = [("clean", extract_features(model, images.heldout, names))]
    for name in corruptions:
        for severity in severities:
            x = images.corrupted(name, severity, n_corrupt, seed, cache_dir)
            sets.append(((name, int(severity)), extract_features(model, x, names)))
            logger.info("features of %s s%d: %d images", name, severity, len(x))
    spans, start = {}, 0
    for key, feats in sets:
        spans[key] = (start, len(feats))
        start += len(feats)
    return FeatureBank(
        packed=torch.cat([pack(f.taps) for _, f in sets]),
        msp=np.concatenate([f.msp() for _, f in sets]),
        pools=Pools(spans),
        calib_packed=pack(calib.taps),
        calib_msp=calib.msp(),
        widths=tuple(int(x.shape[1]) for x in calib.taps.values()),
        labels=tuple(t.label for t in taps),
    )
