"""Per-image pooled tap features and logits of a model, computed once and batched afterwards.

In eval mode a network treats every image independently, so the pooled features of an image do not depend on the
batch it arrives in. Computing them once per image and forming batches of 1 and 16 from them afterwards scores
exactly what ``DeepDriftMonitor.step`` would see, at a fraction of the cost of one forward pass per batch size.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from deepdrift import DriftScorer, LayerTaps


@dataclass(frozen=True)
class FeatureSet:
    """Features of ``n`` images at every tap (depth order) plus the model's logits.

    Attributes:
        features: ``{tap name: (n, features) float32}`` in depth order.
        logits: ``(n, classes)`` float32.
    """

    features: dict[str, torch.Tensor]
    logits: torch.Tensor

    def __len__(self) -> int:
        return int(self.logits.shape[0])

    def take(self, index: np.ndarray | torch.Tensor) -> dict[str, torch.Tensor]:
        """Features of a subset (one batch) of the images."""
        idx = torch.as_tensor(np.asarray(index), dtype=torch.long)
        return {name: x[idx] for name, x in self.features.items()}

    def msp(self) -> np.ndarray:
        """Maximum softmax probability per image (the model's confidence)."""
        return torch.softmax(self.logits.double(), dim=1).max(dim=1).values.numpy()


def extract_features(
    model: nn.Module,
    tap_names: Sequence[str],
    images: torch.Tensor,
    chunk: int = 128,
) -> FeatureSet:
    """Run ``images`` through ``model`` in fixed chunks and keep every tap's pooled output and the logits.

    Args:
        model: the network (eval mode is enforced).
        tap_names: module names to tap, in depth order (the clean model's taps).
        images: ``(n, C, H, W)`` model inputs.
        chunk: images per forward pass; keep it fixed between runs that are compared bit for bit.
    """
    model.eval()
    taps = LayerTaps(model, layers=list(tap_names))
    feats: dict[str, list[torch.Tensor]] = {name: [] for name in tap_names}
    logits = []
    with torch.no_grad():
        for start in range(0, len(images), chunk):
            x = images[start : start + chunk]
            out, captured = taps.run(lambda x=x: model(x))
            for name in tap_names:
                feats[name].append(captured[name].float())
            logits.append(out.float())
    return FeatureSet({name: torch.cat(v) for name, v in feats.items()}, torch.cat(logits))


def fit_scorer(calib: FeatureSet, n_null_draws: int = 4000) -> DriftScorer:
    """A drift scorer calibrated on clean calibration features (the same statistics a monitor would learn)."""
    scorer = DriftScorer(n_null_draws=n_null_draws)
    return scorer.fit_features([calib.features])


def tap_order(model: nn.Module, probe: torch.Tensor) -> list[str]:
    """The automatically chosen taps of ``model`` in execution order."""
    taps = LayerTaps(model)
    with torch.no_grad():
        taps.run(lambda: model.eval()(probe))
    return taps.names


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run a block with ``n`` intra-op threads. Per-batch scoring is many tiny tensor operations, where thread
    hand-offs cost more than they save (10x slower with 2 threads on a busy 2-core machine, measured)."""
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)
