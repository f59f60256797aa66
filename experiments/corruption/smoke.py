"""A tiny drift profile computed on the spot, so notebooks run in smoke mode without the workflow's results.

Real Fashion-MNIST images and real corruptions, but an *untrained* small CNN and a few dozen images: the numbers
only prove that the notebook's code runs, they are not results.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from experiments.corruption.config import CorruptionConfig, FootingConfig
from experiments.corruption.measure import measure_model
from experiments.corruption.summary import drift_profile, tap_scores
from experiments.data import MEAN, STD, corrupt_images, corruption_family, load_fashion_mnist, make_splits
from experiments.data.tensors import pad_images, to_model_input
from experiments.models import build_model

SMOKE_CORRUPTIONS = ("gaussian_noise", "shot_noise", "defocus_blur", "motion_blur", "fog", "contrast")


def smoke_profile(
    n_images: int = 32,
    n_calib: int = 256,
    corruptions: tuple[str, ...] = SMOKE_CORRUPTIONS,
    severities: tuple[int, ...] = (2, 4),
    seed: int = 0,
) -> pd.DataFrame:
    """Mean per-tap drift (batch 8) of an untrained ``small_cnn`` under a few corruptions (drift_profile format)."""
    torch.manual_seed(seed)
    model = build_model("small_cnn").eval()
    splits = make_splits(seed, n_calib, n_images)
    images, labels = load_fashion_mnist("test")
    calib = (pad_images(images[splits.calib], 32), labels[splits.calib])
    clean = (pad_images(images[splits.heldout], 32), labels[splits.heldout])
    corrupted = [
        (
            {"corruption": name, "family": corruption_family(name), "severity": s},
            corrupt_images(clean[0], name, s, seed, progress=False),
        )
        for name in corruptions
        for s in severities
    ]
    cfg = CorruptionConfig(
        models=("smoke",),
        corruptions=corruptions,
        severities=severities,
        n_images=n_images,
        seed=seed,
        batch_sizes=(8,),
        n_batches=4,
        n_clean_batches=4,
        profile_batch_size=8,
        methods=("deepdrift_max",),
        mri_severity=severities[0],
        footing=FootingConfig(statistics=()),  # the profile needs DeepDrift's taps only
    )

    def to_input(x: np.ndarray) -> torch.Tensor:
        return to_model_input(x, size=32, channels=1, mean=MEAN, std=STD)

    scores, _, taps = measure_model(model, to_input, calib, clean, corrupted, cfg)
    long = tap_scores(scores.assign(model="smoke_cnn_untrained"), taps.assign(model="smoke_cnn_untrained"))
    return drift_profile(long, batch_size=8)
