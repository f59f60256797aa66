"""Small real models and seeded data used across the library tests (importable: pytest's conftest is not)."""

from __future__ import annotations

import torch
from torch import nn


def make_small_cnn() -> nn.Sequential:
    """A plain sequential CNN with an in-place ReLU, like users write by hand."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 16, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 10),
    ).eval()


def clean_batches(n_batches: int, batch_size: int = 16, size: int = 16, seed: int = 0) -> list[torch.Tensor]:
    """Smooth random images (structured enough that features correlate, as in real data)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n_batches):
        low = torch.randn(batch_size, 3, size // 4, size // 4, generator=g)
        x = nn.functional.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)
        out.append(x + 0.1 * torch.randn(batch_size, 3, size, size, generator=g))
    return out


def mean_std_max(x: torch.Tensor, dims: int | tuple[int, ...]) -> torch.Tensor:
    """The default pooled features: per-channel mean, (population) std, then maximum over ``dims``."""
    return torch.cat([x.mean(dim=dims), x.std(dim=dims, correction=0), x.amax(dim=dims)], dim=1)
