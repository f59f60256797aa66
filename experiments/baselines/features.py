"""What every shift detector reads: logits, penultimate features and pooled tap features, from one forward pass.

Detectors of the corruption and streaming studies all score the same images; extracting everything a detector
could need in a single pass (rather than letting each peer library run the model again) keeps the CPU budget of
the benchmarks small and guarantees that all methods see exactly the same activations.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from deepdrift import LayerTaps

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeatureSet:
    """Per-sample model outputs for a pool of images (row ``i`` of every tensor is image ``i``).

    Attributes:
        logits: ``[N, C]`` classifier outputs.
        penultimate: ``[N, D]`` input of the final linear layer (what pytorch-ood and torchdrift read).
        taps: ``{tap name: [N, D_tap]}`` pooled outputs of DeepDrift's taps, in depth order.
        labels: ``[N]`` int64 class labels, or ``None`` when unknown.
    """

    logits: torch.Tensor
    penultimate: torch.Tensor
    taps: dict[str, torch.Tensor] = field(default_factory=dict)
    labels: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.logits.shape[0])

    def subset(self, index: np.ndarray | torch.Tensor | Sequence[int]) -> FeatureSet:
        """Rows ``index`` of every tensor (a batch drawn from the pool)."""
        idx = torch.as_tensor(np.asarray(index), dtype=torch.long)
        return FeatureSet(
            logits=self.logits[idx],
            penultimate=self.penultimate[idx],
            taps={name: x[idx] for name, x in self.taps.items()},
            labels=None if self.labels is None else self.labels[idx],
        )


def classifier_layer(model: nn.Module) -> nn.Linear:
    """The final linear layer of a classifier: timm's ``get_classifier()``, else the last ``nn.Linear``.

    Raises:
        ValueError: the model has no linear layer (say which module to use instead).
    """
    get_classifier = getattr(model, "get_classifier", None)
    if callable(get_classifier):
        head = get_classifier()
        if isinstance(head, nn.Linear):
            return head
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(
            f"{type(model).__name__} has no nn.Linear classifier; the baselines need penultimate features, "
            "so give the model a linear head (or extract features yourself and build a FeatureSet)"
        )
    return linears[-1]


@torch.no_grad()
def extract_features(
    model: nn.Module,
    x: torch.Tensor,
    labels: torch.Tensor | None = None,
    taps: LayerTaps | None = None,
    batch_size: int = 256,
    desc: str = "features",
) -> FeatureSet:
    """Run ``model`` (in eval mode) over ``x`` once and keep logits, penultimate and tap features.

    Args:
        model: a classifier with a final ``nn.Linear`` (see :func:`classifier_layer`).
        x: ``[N, ...]`` model inputs.
        labels: optional ``[N]`` labels carried along (Mahalanobis, ViM and KNN fit on labelled data).
        taps: DeepDrift's taps; ``None`` skips them (baselines only).
        batch_size: forward batch size (activations are pooled per sample, so it does not change results).
        desc: progress bar label.
    """
    model.eval()
    head = classifier_layer(model)
    chunks: dict[str, list[torch.Tensor]] = {"logits": [], "penultimate": []}
    tap_chunks: dict[str, list[torch.Tensor]] = {}
    captured: list[torch.Tensor] = []
    handle = head.register_forward_pre_hook(lambda _m, inputs: captured.append(inputs[0].detach().flatten(1)))
    try:
        for start in tqdm(range(0, len(x), batch_size), desc=desc, disable=None, leave=False):
            xb = x[start : start + batch_size]
            captured.clear()
            if taps is None:
                logits, feats = model(xb), {}
            else:
                logits, feats = taps.run(lambda xb=xb: model(xb))
            chunks["logits"].append(logits.float().cpu())
            chunks["penultimate"].append(captured[-1].float().cpu())
            for name, value in feats.items():
                tap_chunks.setdefault(name, []).append(value.float().cpu())
    finally:
        handle.remove()
    return FeatureSet(
        logits=torch.cat(chunks["logits"]),
        penultimate=torch.cat(chunks["penultimate"]),
        taps={name: torch.cat(parts) for name, parts in tap_chunks.items()},
        labels=None if labels is None else torch.tensor(np.asarray(labels), dtype=torch.long),
    )
