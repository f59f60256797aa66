"""What every study reads of a classifier: per-image logits, penultimate features and pooled tap features.

In eval mode a network treats every image independently, so the pooled features of an image do not depend on the
batch it arrives in. One forward pass per image therefore feeds every method, and batches of any size are formed
from the stored rows afterwards: exactly what ``DeepDriftMonitor.step`` would see, at the cost of one forward pass.

The same forward pass does not mean the same layers: the peers' detectors as shipped read the logits or the
penultimate features, DeepDrift reads its taps. The equal-footing benchmark
(:mod:`experiments.baselines.layerwise`) runs the peers' statistics on the penultimate features and on every tap,
so a comparison can hold the layers fixed and change only the statistic.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from deepdrift import LayerTaps


@dataclass(frozen=True)
class FeatureSet:
    """Per-sample model outputs for a pool of images (row ``i`` of every tensor is image ``i``).

    Attributes:
        logits: ``[N, C]`` classifier outputs.
        penultimate: ``[N, D]`` input of the final linear layer (what pytorch-ood and torchdrift read).
        taps: ``{tap name: [N, D_tap]}`` pooled outputs of DeepDrift's taps, in depth order.
        labels: ``[N]`` int64 class labels, or ``None`` when unknown.
        tap_means: ``{tap name: C}``: the first ``C`` columns of a tap are its channel means (the pooled mean
            comes first in every summary; a flat output is all means). Empty when unknown.
    """

    logits: torch.Tensor
    penultimate: torch.Tensor
    taps: dict[str, torch.Tensor] = field(default_factory=dict)
    labels: torch.Tensor | None = None
    tap_means: dict[str, int] = field(default_factory=dict)

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
            tap_means=self.tap_means,
        )

    def channel_means(self) -> FeatureSet:
        """The same rows with each tap reduced to its channel means: what ``PoolingConfig(summary="mean")`` (and
        so ``deepdrift.preset("fast")``) would have pooled, bit for bit, without a second forward pass."""
        if set(self.tap_means) != set(self.taps):
            raise ValueError("these features do not record which tap columns are channel means (`tap_means`)")
        return FeatureSet(
            logits=self.logits,
            penultimate=self.penultimate,
            taps={name: x[:, : self.tap_means[name]] for name, x in self.taps.items()},
            labels=self.labels,
            tap_means=self.tap_means,
        )

    def msp(self) -> np.ndarray:
        """Maximum softmax probability per image (the model's confidence), float64."""
        return torch.softmax(self.logits.double(), dim=1).max(dim=1).values.numpy()


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
    taps: LayerTaps | Sequence[str] | None = None,
    *,
    labels: torch.Tensor | np.ndarray | None = None,
    batch_size: int = 128,
    desc: str = "features",
) -> FeatureSet:
    """Run ``model`` (in eval mode) over ``x`` once and keep logits, penultimate and tap features.

    Args:
        model: a classifier with a final ``nn.Linear`` (see :func:`classifier_layer`).
        x: ``[N, ...]`` model inputs.
        taps: DeepDrift's taps of ``model``, or the module names to tap (in depth order); ``None`` skips them.
        labels: optional ``[N]`` labels carried along (Mahalanobis, ViM and KNN fit on labelled data).
        batch_size: images per forward pass; keep it fixed between runs that are compared bit for bit.
        desc: progress bar label.

    Example:
        >>> feats = extract_features(model, images, ["layer1", "layer2"])  # doctest: +SKIP
        >>> feats.subset(range(16)).taps["layer2"].shape  # doctest: +SKIP
    """
    model.eval()
    if taps is not None and not isinstance(taps, LayerTaps):
        taps = LayerTaps(model, layers=list(taps))
    head = classifier_layer(model)
    logits, penultimate, tap_chunks = [], [], {}
    captured: list[torch.Tensor] = []
    handle = head.register_forward_pre_hook(lambda _m, inputs: captured.append(inputs[0].detach().flatten(1)))
    try:
        for start in tqdm(range(0, len(x), batch_size), desc=desc, disable=None, leave=False):
            xb = x[start : start + batch_size]
            captured.clear()
            if taps is None:
                out, feats = model(xb), {}
            else:
                out, feats = taps.run(lambda xb=xb: model(xb))
            logits.append(out.float().cpu())
            penultimate.append(captured[-1].float().cpu())
            for name, value in feats.items():
                tap_chunks.setdefault(name, []).append(value.float().cpu())
    finally:
        handle.remove()
    return FeatureSet(
        logits=torch.cat(logits),
        penultimate=torch.cat(penultimate),
        taps={name: torch.cat(parts) for name, parts in tap_chunks.items()},
        labels=None if labels is None else torch.tensor(np.asarray(labels), dtype=torch.long),
        tap_means={} if taps is None else _mean_columns(taps),
    )


_SUMMARY_PARTS = {"mean": 1, "mean_std": 2, "mean_std_max": 3}


def _mean_columns(taps: LayerTaps) -> dict[str, int]:
    """Leading channel-mean columns of each tap's features: outputs with positions or tokens are pooled into
    ``parts`` blocks of one column per channel, means first; flat ``(batch, features)`` outputs are kept whole."""
    parts = _SUMMARY_PARTS[taps.pooling.summary]
    columns = {}
    for tap in taps.taps:
        assert tap.n_features is not None and tap.raw_shape is not None
        flat = "NC" in (taps.layouts.get(tap.name), taps.pooling.layout)
        pooled = len(tap.raw_shape) >= 2 and not flat
        columns[tap.name] = tap.n_features // parts if pooled else tap.n_features
    return columns


def tap_order(model: nn.Module, probe: torch.Tensor) -> list[str]:
    """The automatically chosen taps of ``model`` in execution order (one forward pass of ``probe``)."""
    taps = LayerTaps(model)
    with torch.no_grad():
        taps.run(lambda: model.eval()(probe))
    return taps.names


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run a block with ``n`` intra-op threads, restored afterwards.

    Scoring stored features batch by batch is many tiny tensor operations, where handing work to a second thread
    costs more than it saves; studies score on one thread.
    """
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)
