"""Reduce any layer output to one feature vector per sample.

Layers return conv maps, token sequences, tuples, dicts or ``ModelOutput`` objects; drift statistics need a ``(batch,
features)`` matrix. Pooling happens inside the forward hook, so a later in-place op cannot corrupt what was captured.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

import torch

from .errors import UnsupportedOutputError

Layout = Literal["auto", "NCHW", "NHWC", "NLC", "NCL", "NC"]
TokenPool = Literal["mean", "cls"]
Summary = Literal["mean", "mean_std", "mean_std_max"]

_HIDDEN_KEYS = ("last_hidden_state", "hidden_states", "sample", "logits", "x", "out", "output")


@dataclass(frozen=True)
class PoolingConfig:
    """How outputs are reduced to vectors.

    Attributes:
        layout: memory layout of the output; ``auto`` treats 4-D as NCHW and 3-D as tokens (N, L, C).
        token_pool: ``mean`` averages over all tokens; ``cls`` keeps the first token (ViT class token).
        summary: what each channel keeps of its values over positions (conv maps) or tokens.
            ``mean_std_max`` (default): mean, standard deviation and maximum (three features per channel).
            The std moves under changes that leave channel means alone (zero-mean noise, occlusions, attention
            faults); the maximum moves under changes confined to a few positions (a small occluded or inverted
            region, stuck pixels) and under offsets of the background, which is constant on clean images and
            therefore sets a channel's extreme without any natural spread. ``mean_std`` drops the maximum,
            ``mean`` keeps the mean only (one feature per channel). Measured on the fault-localisation benchmark
            (batches of 16): exact onset-tap accuracy ViT 0.936 -> 0.965, CNN 0.917 -> 0.957 when the maximum is
            added to ``mean_std``.
    """

    layout: Layout = "auto"
    token_pool: TokenPool = "mean"
    summary: Summary = "mean_std_max"

    def __post_init__(self) -> None:
        for name, kind in (("layout", Layout), ("token_pool", TokenPool), ("summary", Summary)):
            value, allowed = getattr(self, name), get_args(kind)
            if value not in allowed:
                raise ValueError(f"PoolingConfig.{name} must be one of {allowed}, got {value!r}")


def extract_tensor(output: Any) -> torch.Tensor:
    """Find the hidden-state tensor inside a layer's output (tensor, tuple, dict or ModelOutput)."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, Mapping):  # dicts and transformers' ModelOutput (an OrderedDict)
        for key in _HIDDEN_KEYS:
            value = output.get(key)
            if isinstance(value, torch.Tensor):
                return value
        for value in output.values():
            if isinstance(value, torch.Tensor):
                return value
    elif isinstance(output, Sequence) and not isinstance(output, str):
        for value in output:  # diffusers down blocks return (hidden_states, residuals)
            if isinstance(value, torch.Tensor):
                return value
    else:
        for key in _HIDDEN_KEYS:  # dataclass-like outputs, e.g. diffusers UNet2DOutput.sample
            value = getattr(output, key, None)
            if isinstance(value, torch.Tensor):
                return value
    raise UnsupportedOutputError(
        f"cannot find a tensor in a layer output of type {type(output).__name__}. "
        "Tap a module that returns a tensor, tuple, dict or ModelOutput, or pass explicit `layers=`."
    )


def pool_output(output: Any, config: PoolingConfig = PoolingConfig()) -> torch.Tensor:
    """Pool a layer output to a float32 ``(batch, features)`` matrix, detached from autograd."""
    x = extract_tensor(output).detach()
    layout = config.layout
    if layout == "auto":
        layout = {1: "NC", 2: "NC", 3: "NLC", 4: "NCHW"}.get(x.ndim, "NCHW")
    if x.ndim == 1:
        return x.unsqueeze(1).float()
    if layout == "NC" or x.ndim == 2:
        return x.flatten(1).float()
    # average in float32 so bf16/fp16 activations are not rounded before pooling
    if layout == "NLC":
        dim, positions = 1, x
    elif layout == "NHWC":
        dim, positions = 1, x.flatten(1, -2)
    else:  # channels first: NCHW, NCL, NCDHW ...
        dim, positions = 2, x.flatten(2)
    mean = positions.mean(dim=dim, keepdim=True, dtype=torch.float32)
    pooled = x[:, 0].float() if layout == "NLC" and config.token_pool == "cls" else mean.squeeze(dim)
    if config.summary == "mean":
        return pooled.float()
    # centred two-pass norm: exact like torch.std, but ~10x faster on CPU (torch.std 14 ms vs 1.1 ms measured
    # for a 64x16x32x32 map on one core)
    spread = torch.linalg.vector_norm(positions - mean, dim=dim) / positions.shape[dim] ** 0.5
    parts = [pooled.float(), spread.float()]
    if config.summary == "mean_std_max":
        parts.append(positions.amax(dim=dim).float())
    return torch.cat(parts, dim=1)
