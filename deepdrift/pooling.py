"""Reduce any layer output to one feature vector per sample.

Layers return conv maps, token sequences, tuples, dicts or ``ModelOutput`` objects; drift statistics need a ``(batch,
features)`` matrix. Pooling happens inside the forward hook, so a later in-place op cannot corrupt what was captured.

Which axis holds the batch and which the channels is never guessed silently: an explicit layout wins; otherwise the
output's shape is checked against the batch size of the call (when known) and, where the shape alone cannot tell,
against evidence from the module that produced it (:class:`LayoutHint`). What stays ambiguous raises
:class:`~deepdrift.errors.UnsupportedOutputError` with the fix: declare the layout of that tap.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

import torch
from torch import nn

from .errors import UnsupportedOutputError

Layout = Literal["auto", "NCHW", "NHWC", "NLC", "NCL", "NC", "LNC"]
"""Memory layout of a layer output. ``N`` batch, ``C`` channels, ``L`` tokens/positions, ``H W`` space.

``NCHW``/``NCL`` are channels-first (any number of spatial axes), ``NHWC``/``NLC`` channels-last, ``LNC`` is
sequence-first (``nn.TransformerEncoder`` and ``nn.MultiheadAttention`` with ``batch_first=False``, RNNs), ``NC``
flattens everything after the batch axis. ``auto`` decides per output (see :func:`resolve_layout`).
"""
TokenPool = Literal["mean", "cls"]
Summary = Literal["mean", "mean_std", "mean_std_max"]

_HIDDEN_KEYS = ("last_hidden_state", "hidden_states", "sample", "logits", "x", "out", "output")
_CHANNELS_LAST = frozenset({"NHWC", "NLC", "LNC"})


@dataclass(frozen=True)
class PoolingConfig:
    """How outputs are reduced to vectors.

    Attributes:
        layout: memory layout of every output; ``auto`` treats 4-D as NCHW and 3-D as tokens (N, L, C) unless the
            module that produced an output says otherwise, and checks the batch axis against the batch size.
        token_pool: ``mean`` averages over all tokens; ``cls`` keeps the first token (ViT class token).
        summary: what each channel keeps of its values over positions (conv maps) or tokens.
            ``mean_std_max`` (default): mean, standard deviation and maximum (three features per channel).
            The std moves under changes that leave channel means alone (zero-mean noise, occlusions, attention
            faults); the maximum moves under changes confined to a few positions (a small occluded or inverted
            region, stuck pixels) and under offsets of the background, which is constant on clean images and
            therefore sets a channel's extreme without any natural spread. ``mean_std`` drops the maximum,
            ``mean`` keeps the mean only (one feature per channel).
    """

    layout: Layout = "auto"
    token_pool: TokenPool = "mean"
    summary: Summary = "mean_std_max"

    def __post_init__(self) -> None:
        for name, kind in (("layout", Layout), ("token_pool", TokenPool), ("summary", Summary)):
            value, allowed = getattr(self, name), get_args(kind)
            if value not in allowed:
                raise ValueError(f"PoolingConfig.{name} must be one of {allowed}, got {value!r}")


@dataclass(frozen=True)
class LayoutHint:
    """What the module that produced an output says about its layout (None: it says nothing).

    Attributes:
        batch_first: for 3-D outputs, whether the batch is axis 0 (``NLC``/``NCL``) or axis 1 (``LNC``).
        channels_last: whether channels are the last axis (``NHWC``/``NLC``) or axis 1 (``NCHW``/``NCL``).
    """

    batch_first: bool | None = None
    channels_last: bool | None = None

    def merged(self, fallback: LayoutHint) -> LayoutHint:
        """This hint, with the fields it leaves open taken from ``fallback`` (e.g. the model family's)."""
        return LayoutHint(
            self.batch_first if self.batch_first is not None else fallback.batch_first,
            self.channels_last if self.channels_last is not None else fallback.channels_last,
        )


NO_HINT = LayoutHint()


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


def batch_axis(layout: Layout) -> int:
    """Axis that holds the samples in an output of this (concrete) layout."""
    return 1 if layout == "LNC" else 0


def resolve_layout(
    shape: Sequence[int],
    layout: Layout = "auto",
    batch_size: int | None = None,
    hint: LayoutHint = NO_HINT,
    name: str | None = None,
) -> Layout:
    """The concrete layout of an output of ``shape``, checked against the batch size of the call.

    An explicit ``layout`` is taken as declared. ``auto``: outputs of up to 2 axes are ``NC``; 4-D and more are
    channels-first unless ``hint`` says channels-last; 3-D are tokens, batch-first unless ``hint`` says otherwise,
    and (with a batch size) batch-first only when axis 0 is the only axis of that size.

    Raises:
        UnsupportedOutputError: the batch axis does not have ``batch_size`` entries, or cannot be told apart
            (shape ``(B, B, C)`` without module evidence); the message names the tap and how to declare it.
    """
    shape, ndim = tuple(shape), len(shape)
    if ndim <= 2 or layout == "NC":
        concrete: Layout = "NC"
    elif layout != "auto":
        if layout == "LNC" and ndim != 3:
            raise UnsupportedOutputError(f"{_where(name)} has shape {shape}, but layout 'LNC' needs 3 axes (L, N, C).")
        concrete = layout
    elif ndim == 3:
        concrete = _token_layout(shape, batch_size, hint, name)
    else:
        concrete = "NHWC" if hint.channels_last else "NCHW"
    if batch_size is not None and ndim >= 1 and shape[batch_axis(concrete)] != batch_size:
        raise UnsupportedOutputError(_batch_mismatch(shape, concrete, batch_size, name, declared=layout != "auto"))
    return concrete


def _token_layout(shape: tuple[int, ...], batch_size: int | None, hint: LayoutHint, name: str | None) -> Layout:
    batch_first = "NLC" if hint.channels_last is not False else "NCL"
    if hint.batch_first is not None:
        candidate: Layout = batch_first if hint.batch_first else "LNC"
        if batch_size is None or shape[batch_axis(candidate)] == batch_size or not hint.batch_first:
            return candidate  # module evidence; a sequence-first module that disagrees is reported by the caller
    if batch_size is None or shape[0] != shape[1] or batch_size == 1:
        return batch_first  # (1, 1, C) pools the same either way; other mismatches are reported by the caller
    raise UnsupportedOutputError(
        f"{_where(name)} has shape {shape}: with a batch of {batch_size}, the batch could be axis 0 (N, L, C) or "
        f"axis 1 (L, N, C), and nothing in the module says which. Declare it, e.g. "
        f"`LayerTaps(model, layouts={{{name or 'LAYER'!r}: 'NLC'}})` (or 'LNC' for sequence-first outputs)."
    )


def _batch_mismatch(shape: tuple[int, ...], layout: Layout, batch_size: int, name: str | None, declared: bool) -> str:
    axis = batch_axis(layout)
    why = f"with the declared layout {layout!r}" if declared else "as inferred"
    fix = (
        f"If the batch is axis 1 (a sequence-first output), declare `layouts={{{name or 'LAYER'!r}: 'LNC'}}`; "
        if len(shape) == 3 and shape[1] == batch_size and axis != 1
        else ""
    )
    return (
        f"{_where(name)} has shape {shape}, whose batch axis {axis} ({why}) has {shape[axis]} entries, not the "
        f"batch size {batch_size}: DeepDrift needs one row per sample. {fix}"
        "Otherwise tap a module whose output keeps the batch on its own axis (e.g. not inside window attention "
        "that folds windows into the batch)."
    )


def _where(name: str | None) -> str:
    return f"the output of tap {name!r}" if name else "a layer output"


def pool_output(
    output: Any,
    config: PoolingConfig = PoolingConfig(),
    *,
    batch_size: int | None = None,
    layout: Layout | None = None,
    hint: LayoutHint = NO_HINT,
    name: str | None = None,
) -> torch.Tensor:
    """Pool a layer output to a float32 ``(batch, features)`` matrix, detached from autograd.

    Args:
        output: a tensor, or a tuple/dict/ModelOutput holding the hidden state.
        config: how to summarise; ``config.layout`` applies where ``layout`` is not given.
        batch_size: samples in the call; when given, the batch axis is found and checked against it.
        layout: this output's declared layout (overrides ``config.layout``).
        hint: evidence from the producing module, used where the shape is ambiguous.
        name: the tap, for error messages.

    Example:
        >>> pool_output(torch.zeros(7, 2, 5), batch_size=2, layout="LNC").shape  # seq-first: mean/std/max of 5 ch
        torch.Size([2, 15])
    """
    x = extract_tensor(output).detach()
    concrete = resolve_layout(x.shape, layout or config.layout, batch_size, hint, name)
    return pool_tensor(x, concrete, config)


def pool_tensor(x: torch.Tensor, layout: Layout, config: PoolingConfig = PoolingConfig()) -> torch.Tensor:
    """Pool a tensor of a concrete (already resolved) layout; see :func:`pool_output`."""
    if x.ndim == 1:
        return x.unsqueeze(1).float()
    if layout == "NC" or x.ndim == 2:
        return x.flatten(1).float()
    if layout == "LNC":
        x = x.transpose(0, 1)  # a view: the pooled statistics are the same, computed batch-first
    if layout in _CHANNELS_LAST:
        dim, positions = 1, x.flatten(1, -2)
    else:  # channels first: NCHW, NCL, NCDHW ...
        dim, positions = 2, x.flatten(2)
    # float32 inputs take the plain kernels: at batch 1 each extra op or dtype argument costs microseconds per tap
    if positions.dtype == torch.float32:
        mean = positions.mean(dim=dim, keepdim=True)
    else:  # average in float32 so bf16/fp16 activations are not rounded before pooling
        mean = positions.mean(dim=dim, keepdim=True, dtype=torch.float32)
    pooled = positions[:, 0].float() if layout in ("NLC", "LNC") and config.token_pool == "cls" else mean.squeeze(dim)
    if config.summary == "mean":
        return pooled
    spread = _centred_norm(positions, mean, dim).div_(positions.shape[dim] ** 0.5).float()
    if config.summary == "mean_std":
        return torch.cat([pooled, spread], dim=1)
    return torch.cat([pooled, spread, positions.amax(dim=dim).float()], dim=1)


CHUNK_ELEMENTS = 1 << 18
"""On the CPU, the centred copy is made this many elements (1 MiB of float32) at a time, so it stays in cache."""


def _centred_norm(positions: torch.Tensor, mean: torch.Tensor, dim: int) -> torch.Tensor:
    """``|positions - mean|`` along ``dim``: the two-pass (centred) spread, exact like ``torch.std``.

    ``torch.std`` and ``torch.var_mean`` are several times slower on the CPU than a norm of the centred values, and
    for large maps most of that norm's time is allocating the centred copy (a 64 x 64 x 56 x 56 map: 25 of 31 ms on
    one core). On the CPU the copy is therefore made a few samples at a time into one small buffer; each sample's
    reduction runs over the same values in the same order, so chunking does not change a bit. Channels-last outputs
    (tokens, NHWC) reduce over a middle axis, where ``vector_norm`` is slow (16 x 197 x 384 tokens: 1.6 ms against
    0.3 ms on one core); there the centred copy, which is ours, is squared in place and summed.
    """
    per_sample = positions[0].numel() if positions.shape[0] else 0
    if positions.device.type != "cpu" or positions.numel() <= CHUNK_ELEMENTS or per_sample == 0:
        return _norm_of_own(positions - mean, dim)
    rows = max(1, CHUNK_ELEMENTS // per_sample)
    out = torch.empty(positions.shape[:dim] + positions.shape[dim + 1 :], dtype=mean.dtype)
    buffer = torch.empty((min(rows, positions.shape[0]), *positions.shape[1:]), dtype=mean.dtype)
    for start in range(0, positions.shape[0], rows):
        stop = min(start + rows, positions.shape[0])
        centred = torch.sub(positions[start:stop], mean[start:stop], out=buffer[: stop - start])
        out[start:stop] = _norm_of_own(centred, dim)
    return out


def _norm_of_own(centred: torch.Tensor, dim: int) -> torch.Tensor:
    """Euclidean norm along ``dim`` of a tensor the caller owns (it may be overwritten)."""
    if dim == centred.ndim - 1:
        return torch.linalg.vector_norm(centred, dim=dim)
    return centred.square_().sum(dim=dim).sqrt_()


# ----------------------------------------------------------------------------- evidence from modules
_CHANNELS_FIRST_TYPES = (
    nn.modules.conv._ConvNd,
    nn.modules.batchnorm._BatchNorm,
    nn.GroupNorm,
    nn.modules.instancenorm._InstanceNorm,
    nn.modules.pooling._MaxPoolNd,
    nn.modules.pooling._AvgPoolNd,
    nn.modules.pooling._AdaptiveAvgPoolNd,
    nn.modules.pooling._AdaptiveMaxPoolNd,
)
_LAST_AXIS_TYPES = (nn.LayerNorm, nn.Linear, nn.RMSNorm)  # exact types: they act on the last axis
_ELEMENTWISE_TYPES = (
    nn.ReLU,
    nn.ReLU6,
    nn.GELU,
    nn.SiLU,
    nn.LeakyReLU,
    nn.ELU,
    nn.Tanh,
    nn.Sigmoid,
    nn.Mish,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Softplus,
    nn.PReLU,
    nn.Dropout,
    nn.Identity,
)
_SEQUENCE_MODELS = (
    nn.TransformerEncoder,
    nn.TransformerEncoderLayer,
    nn.TransformerDecoder,
    nn.TransformerDecoderLayer,
)
_BATCH_FIRST_LIBRARIES = ("timm.", "torchvision.", "diffusers.", "transformers.")


def module_layout_hint(module: nn.Module) -> LayoutHint:
    """What ``module`` says about the layout of its own output (``NO_HINT`` when it says nothing).

    Evidence, in order: a timm-style ``output_fmt``; a ``batch_first`` flag (``nn.MultiheadAttention``, RNNs,
    ``nn.Transformer``), also read from the attention inside ``nn.TransformerEncoder``/``...Layer``; layers that
    act on the last axis (exact ``nn.LayerNorm``/``nn.Linear``: channels-last) or on axis 1 (convs, batch/group/
    instance norms, pools: channels-first); torchvision Swin blocks and patch merging (NHWC); a ``Permute``; and
    for an ``nn.Sequential``, its last layer (looking through activations and dropout).
    """
    fmt = getattr(module, "output_fmt", None)
    fmt = getattr(fmt, "value", fmt)  # timm's Format is a str Enum
    if fmt in ("NHWC", "NLC", "NCHW", "NCL"):
        return LayoutHint(batch_first=True, channels_last=fmt in ("NHWC", "NLC"))
    if isinstance(module, _SEQUENCE_MODELS):
        attention = next((m for m in module.modules() if isinstance(m, nn.MultiheadAttention)), None)
        return module_layout_hint(attention) if attention is not None else NO_HINT
    batch_first = getattr(module, "batch_first", None)
    if isinstance(batch_first, bool):
        return LayoutHint(batch_first=batch_first, channels_last=True)
    if type(module) in _LAST_AXIS_TYPES:
        return LayoutHint(channels_last=True)
    if isinstance(module, _CHANNELS_FIRST_TYPES):
        return LayoutHint(batch_first=True, channels_last=False)  # convs, norms and pools never run sequence-first
    kind = type(module)
    if kind.__module__ == "torchvision.models.swin_transformer" and kind.__name__ != "SwinTransformer":
        return LayoutHint(batch_first=True, channels_last=True)  # torchvision Swin: (B, H, W, C) between stages
    dims = getattr(module, "dims", None)
    if kind.__name__ == "Permute" and isinstance(dims, (list, tuple)) and len(dims) >= 3:
        return LayoutHint(channels_last=list(dims)[-1] == 1)
    if kind.forward is nn.Sequential.forward:
        return _last_layer_hint(list(module.children()))
    return NO_HINT


def _last_layer_hint(layers: Sequence[nn.Module]) -> LayoutHint:
    """Hint of the last layer of a sequential chain that says something, looking back through elementwise ones."""
    for layer in reversed(layers):
        hint = module_layout_hint(layer)
        if hint != NO_HINT or not isinstance(layer, _ELEMENTWISE_TYPES):
            return hint
    return NO_HINT


def output_layout_hint(model: nn.Module, name: str) -> LayoutHint:
    """Evidence for the layout of the output of ``model.get_submodule(name)``.

    An activation or dropout inside an ``nn.Sequential`` has the layout of the layer before it. Where the module
    leaves the batch axis open, a module on the path from the model to the tap that comes from timm, torchvision,
    diffusers or transformers settles it: those libraries keep the batch first.
    """
    module = model.get_submodule(name)
    hint = module_layout_hint(module)
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name)
    if hint == NO_HINT and isinstance(module, _ELEMENTWISE_TYPES) and type(parent).forward is nn.Sequential.forward:
        names = [n for n, _ in parent.named_children()]
        hint = _last_layer_hint([parent.get_submodule(n) for n in names[: names.index(child) + 1]])
    path = [model] + [model.get_submodule(".".join(name.split(".")[: i + 1])) for i in range(name.count(".") + 1)]
    if any(type(m).__module__.startswith(_BATCH_FIRST_LIBRARIES) for m in path):
        hint = hint.merged(LayoutHint(batch_first=True))
    return hint
