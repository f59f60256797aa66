"""The diffusion report's figures on small synthetic tables (edge cases the study can produce)."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd

from experiments.diffusion.figures import bottleneck_figure, detector_onset_figure

BLOCKS = ["down_blocks.0", "mid_block", "up_blocks.0"]


def _tables(onset_sizes: set[int]) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(0)
    gaps = pd.DataFrame(
        [
            {"n_train": n, "seed": s, "t": t, "block": b, "block_index": i, "step": step, "gap_z": rng.normal()}
            for n in (10, 100, 1000)
            for s in (0, 1)
            for t in (50, 500)
            for i, b in enumerate(BLOCKS)
            for step in (100, 200)
        ]
    )
    onsets = pd.DataFrame(
        [
            {"n_train": n, "seed": s, "t": t, **{f"onset[{b}]": 200.0 if n in onset_sizes else np.nan for b in BLOCKS}}
            for n in (10, 100, 1000)
            for s in (0, 1)
            for t in (50, 500)
        ]
    )
    return gaps, onsets


def test_bottleneck_figure_when_only_one_training_size_has_an_onset():
    """Seaborn divides the dodge by (hue levels - 1): one N with an onset used to crash the report."""
    fig = bottleneck_figure(*_tables({10}))
    bottom = fig.axes[len(fig.axes) // 2]
    assert len(bottom.collections) + len(bottom.lines) > 0


def test_bottleneck_figure_without_any_onset_says_so():
    fig = bottleneck_figure(*_tables(set()))
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert "no significant onset" in texts


def test_detector_onset_figure_puts_missing_onsets_on_the_horizon():
    detected = pd.DataFrame(
        [
            {"detector": det, "n_train": n, "seed": s, "t": t, "onset": onset}
            for det, onset in (("loss gap", 1000.0), ("drift, pooled", np.nan))
            for n in (10, 100)
            for s in (0, 1)
            for t in (50, 200)
        ]
    )
    mem = pd.DataFrame([{"n_train": n, "seed": s, "memorisation_onset": 500.0} for n in (10, 100) for s in (0, 1)])
    fig = detector_onset_figure(detected, mem, ["loss gap", "drift, pooled"], horizon=4500.0)
    axes = fig.get_axes()
    assert len(axes) == 2 and next(t.get_text() for t in axes[0].get_yticklabels()) == "memorisation"
    pooled = [c.get_offsets()[:, 0] for c in axes[0].collections]
    assert any(np.isclose(x, 4500.0).any() for x in pooled)
