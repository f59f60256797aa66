"""Turn uint8 image arrays into normalised float tensors, entirely in memory.

Kept separate from the loaders so corrupted images (uint8 arrays from :mod:`experiments.data.corruptions`)
go through exactly the same conversion as clean ones.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset


def pad_images(images: np.ndarray, size: int = 32) -> np.ndarray:
    """Zero-pad uint8 images ``[N, H, W]`` or ``[N, H, W, C]`` centrally to ``size x size``.

    Padding (rather than resizing) keeps every original pixel, and 32x32 is the smallest size the
    corruption library accepts. Odd margins put the extra pixel at the bottom/right.
    """
    h, w = images.shape[1], images.shape[2]
    if h > size or w > size:
        raise ValueError(f"cannot pad {h}x{w} images to {size}x{size}; pass size >= {max(h, w)}")
    top, left = (size - h) // 2, (size - w) // 2
    pad = [(0, 0), (top, size - h - top), (left, size - w - left)] + [(0, 0)] * (images.ndim - 3)
    return np.pad(images, pad)


def to_model_input(
    images: np.ndarray, *, size: int = 32, channels: int = 1, mean: float = 0.0, std: float = 1.0
) -> torch.Tensor:
    """Convert uint8 images to a float32 ``[N, channels, size, size]`` tensor ``(x / 255 - mean) / std``.

    Args:
        images: uint8 ``[N, H, W]`` (grey) or ``[N, H, W, C]``. Smaller images are zero-padded to ``size``
            before normalising (padding with 0 extends Fashion-MNIST's black background); larger ones
            are resized bilinearly.
        size: Output side length.
        channels: Output channels: grey images are repeated to 3 for RGB models; RGB images are averaged to
            1 for grey models.
        mean, std: Scalar normalisation constants in [0, 1] pixel units.
    """
    if images.dtype != np.uint8 or images.ndim not in (3, 4):
        raise ValueError(f"expected uint8 images [N, H, W] or [N, H, W, C], got {images.dtype} {images.shape}")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    if max(images.shape[1:3]) <= size:
        images = pad_images(images, size)
    x = torch.tensor(images).float().div_(255.0)  # copies: inputs may be read-only
    x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    if x.shape[1] != channels:
        x = x.mean(dim=1, keepdim=True) if channels == 1 else x.expand(-1, channels, -1, -1)
    return ((x - mean) / std).contiguous()


def make_tensor_dataset(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    size: int = 32,
    channels: int = 1,
    mean: float = 0.0,
    std: float = 1.0,
) -> TensorDataset:
    """Bundle images (see :func:`to_model_input`) and int64 labels into a ``TensorDataset``."""
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    x = to_model_input(images, size=size, channels=channels, mean=mean, std=std)
    return TensorDataset(x, torch.as_tensor(np.asarray(labels), dtype=torch.int64))
