"""Faults with a known location: input/sensor faults on the pixels, internal faults in one module of a copy.

Input faults act on pixel intensities in [0, 1] (the model input is de-normalised, faulted, clipped where a real
sensor would clip, and normalised again). Fashion-MNIST has one channel, so the channel faults of RGB sensors
(a dropped or swapped channel) are replaced by their single-channel analogues: a zeroed region (a dead patch of
the sensor) and an inverted region (a polarity fault). RGB models get ``channel_drop`` / ``channel_swap``.

Internal faults never touch the clean model: they edit the weights of a deep copy, or add a forward hook to the
copy's module that rewrites its output. Random choices (channels, weights, bits) come from a generator seeded by
the fault, so every run injects the same fault.
"""

from __future__ import annotations

import copy
import zlib
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

INPUT_FAULTS: tuple[str, ...] = (
    "pixel_noise", "dead_pixels", "stuck_pixels", "region_zero", "region_invert", "gain", "offset", "blur",
    "channel_drop", "channel_swap",
)  # fmt: skip
"""Input/sensor fault families; strengths: noise sd, pixel fraction, region area fraction, gain loss, offset, blur
sigma in pixels; ``channel_*`` need 3-channel inputs."""
INTERNAL_FAULTS: tuple[str, ...] = ("weight_noise", "dead_channels", "stuck_channels", "sign_flip", "scale", "bit_flip")
"""Internal fault families; strengths: noise sd relative to the weights' sd, fraction of output channels, scale
factor of the weights, number of weights with one flipped exponent bit."""
RGB_ONLY = frozenset({"channel_drop", "channel_swap"})
GREY_ONLY = frozenset({"region_zero", "region_invert"})


def fault_seed(*parts: object) -> int:
    """A stable 31-bit seed from the fault's description (independent of Python's hash randomisation)."""
    return zlib.crc32("|".join(map(str, parts)).encode()) & 0x7FFFFFFF


# ------------------------------------------------------------------------------------------- input faults
def input_fault(
    family: str,
    strength: float,
    mean: float,
    std: float,
    seed: int,
) -> Callable[[torch.Tensor], torch.Tensor]:
    """A function mapping normalised model inputs to faulted normalised inputs.

    Pixel masks (dead/stuck pixels, regions) are fixed per fault, as a broken sensor's defects are: every image
    gets the same mask.
    """
    if family not in INPUT_FAULTS:
        raise ValueError(f"unknown input fault {family!r}; choose from {INPUT_FAULTS}")

    def apply(x: torch.Tensor) -> torch.Tensor:
        pixels = x * std + mean
        faulted = _pixel_fault(pixels, family, strength, torch.Generator().manual_seed(seed))
        return (faulted - mean) / std

    return apply


def _pixel_fault(p: torch.Tensor, family: str, s: float, gen: torch.Generator) -> torch.Tensor:
    _, c, h, w = p.shape
    if family == "pixel_noise":
        noise = torch.randn(p.shape, generator=gen)  # fixed draws: a stream's chunks stay reproducible
        return (p + s * noise).clamp(0, 1)
    if family in ("dead_pixels", "stuck_pixels"):
        mask = torch.rand((1, 1, h, w), generator=gen) < s
        return p.masked_fill(mask, 0.0 if family == "dead_pixels" else 1.0)
    if family in ("region_zero", "region_invert"):
        side = max(1, round((s * h * w) ** 0.5))
        top = int(torch.randint(0, h - side + 1, (1,), generator=gen))
        left = int(torch.randint(0, w - side + 1, (1,), generator=gen))
        out = p.clone()
        region = out[:, :, top : top + side, left : left + side]
        out[:, :, top : top + side, left : left + side] = 0.0 if family == "region_zero" else 1.0 - region
        return out
    if family == "gain":
        return (p * (1.0 - s)).clamp(0, 1)
    if family == "offset":
        return (p + s).clamp(0, 1)
    if family == "blur":
        radius = max(1, int(3 * s + 0.5))
        return _gaussian_blur(p, s, radius)
    if c < 2:
        raise ValueError(f"{family} needs multi-channel inputs; grey models use region_zero / region_invert")
    k = int(torch.randint(0, c, (1,), generator=gen))
    if family == "channel_drop":
        out = p.clone()
        out[:, k] = 0.0
        return out
    return p[:, torch.roll(torch.arange(c), 1)]  # channel_swap: a cyclic permutation of the channels


def _gaussian_blur(p: torch.Tensor, sigma: float, radius: int) -> torch.Tensor:
    t = torch.arange(-radius, radius + 1, dtype=p.dtype)
    kernel = torch.exp(-0.5 * (t / sigma) ** 2)
    kernel = kernel / kernel.sum()
    c = p.shape[1]
    horizontal = kernel.view(1, 1, 1, -1).repeat(c, 1, 1, 1)
    vertical = kernel.view(1, 1, -1, 1).repeat(c, 1, 1, 1)
    out = F.conv2d(F.pad(p, (radius, radius, 0, 0), mode="reflect"), horizontal, groups=c)
    return F.conv2d(F.pad(out, (0, 0, radius, radius), mode="reflect"), vertical, groups=c)


# ---------------------------------------------------------------------------------------- internal faults
def internal_fault(
    model: nn.Module, module_name: str, family: str, strength: float, seed: int, probe: torch.Tensor | None = None
) -> nn.Module:
    """A deep copy of ``model`` with one fault in ``module_name``; the original is left untouched.

    Args:
        model: the clean network.
        module_name: a weighted module (convolution or linear layer) inside it.
        family: one of :data:`INTERNAL_FAULTS`.
        strength: see :data:`INTERNAL_FAULTS`.
        seed: seeds the random choices.
        probe: clean inputs used to find each channel's "stuck" value (``stuck_channels`` only).
    """
    if family not in INTERNAL_FAULTS:
        raise ValueError(f"unknown internal fault {family!r}; choose from {INTERNAL_FAULTS}")
    faulted = copy.deepcopy(model).eval()
    module = faulted.get_submodule(module_name)
    gen = torch.Generator().manual_seed(seed)
    weight: torch.Tensor = module.weight
    with torch.no_grad():
        if family == "weight_noise":
            weight.add_(strength * weight.std() * torch.randn(weight.shape, generator=gen))
        elif family == "scale":
            weight.mul_(strength)
        elif family == "sign_flip":
            channels = _pick_channels(weight.shape[0], strength, gen)
            weight[channels] = -weight[channels]
            if getattr(module, "bias", None) is not None:
                module.bias[channels] = -module.bias[channels]
        elif family == "bit_flip":
            flip_exponent_bits(weight, int(strength), gen)
        elif family == "dead_channels":
            channels = _pick_channels(weight.shape[0], strength, gen)
            module.register_forward_hook(_output_rewrite(channels, torch.zeros(len(channels))))
        else:  # stuck_channels: stuck at the largest value the channel reaches on clean probe images
            if probe is None:
                raise ValueError("stuck_channels needs clean `probe` inputs to find the stuck values")
            channels = _pick_channels(weight.shape[0], strength, gen)
            peak = _channel_peak(model, module_name, probe)[channels]
            module.register_forward_hook(_output_rewrite(channels, peak))
    return faulted


def _pick_channels(n: int, fraction: float, gen: torch.Generator) -> torch.Tensor:
    k = min(n, max(1, round(fraction * n)))
    return torch.randperm(n, generator=gen)[:k].sort().values


def flip_exponent_bits(weight: torch.Tensor, count: int, gen: torch.Generator) -> None:
    """Flip one random exponent bit (IEEE-754 float32 bits 23..30) in ``count`` distinct random weights, in place.

    Exponent bits are the ones whose upsets matter (mantissa flips barely change a weight): a flip scales a weight
    by 2^(+-2^k), and a flip of bit 30 turns a small weight into ~1e38.
    """
    if weight.dtype != torch.float32:
        raise TypeError(f"bit flips are defined for float32 weights, got {weight.dtype}")
    flat = weight.data.view(-1)
    picks = torch.randperm(flat.numel(), generator=gen)[:count]
    bits = torch.randint(23, 31, (len(picks),), generator=gen, dtype=torch.int32)
    as_int = flat.view(torch.int32)
    as_int[picks] = as_int[picks] ^ torch.bitwise_left_shift(torch.ones_like(bits), bits)


def _channel_dim(output: torch.Tensor) -> int:
    return -1 if output.ndim == 3 else 1  # tokens (B, N, C) vs. NCHW / (B, C)


def _output_rewrite(channels: torch.Tensor, values: torch.Tensor) -> Callable[..., torch.Tensor]:
    def hook(_module: nn.Module, _inputs: object, output: torch.Tensor) -> torch.Tensor:
        out = output.clone()
        dim = _channel_dim(out)
        index = [slice(None)] * out.ndim
        index[dim] = channels
        shape = [1] * out.ndim
        shape[dim] = len(channels)
        out[tuple(index)] = values.to(out.dtype).view(shape).expand_as(out[tuple(index)])
        return out

    return hook


def _channel_peak(model: nn.Module, module_name: str, probe: torch.Tensor) -> torch.Tensor:
    """Per output channel, the largest value the clean module produces on ``probe``."""
    captured: list[torch.Tensor] = []
    handle = model.get_submodule(module_name).register_forward_hook(lambda _m, _i, out: captured.append(out))
    try:
        with torch.no_grad():
            model.eval()(probe)
    finally:
        handle.remove()
    out = captured[0]
    dim = _channel_dim(out) % out.ndim
    return out.transpose(0, dim).reshape(out.shape[dim], -1).max(dim=1).values
