"""Every layer's reference statistics concatenated on one device, so a batch's three drift statistics for all layers
come from a handful of array operations instead of a dozen per layer.

The pooled features of all taps are laid side by side (``(batch, sum of features)``); per-layer sums and maxima are
segment reductions over that row (a NaN stays inside its own layer), and each layer's principal-axes map is one small
product. On the CPU the float64 part runs in numpy, whose calls on vectors of a few thousand entries cost about a
microsecond against several for torch's dispatcher; on other devices it stays in torch, on the device, with no host
synchronisation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .calibration import LayerReference


@dataclass(frozen=True, eq=False)
class StackedReference:
    """Concatenated reference of ``L`` layers on one device.

    Attributes:
        device: where the features arrive.
        mean, inv_std: ``(D,)`` float64 reference mean and inverse standard deviation of the concatenated features
            (numpy arrays on the CPU, tensors on the device otherwise).
        principal: per layer, its ``(features, axes)`` float64 whitening map, or None.
        starts: ``(L,)`` first feature of each layer in the concatenated row.
        widths: ``(L,)`` features per layer.
        pad_index: (torch path) position of each feature in an ``(L, max width)`` zero-padded layout.
        device_widths: (torch path) ``widths`` as a float64 tensor on the device.
    """

    device: torch.device
    mean: np.ndarray | torch.Tensor
    inv_std: np.ndarray | torch.Tensor
    principal: tuple[np.ndarray | torch.Tensor | None, ...]
    starts: np.ndarray
    widths: np.ndarray
    pad_index: torch.Tensor | None
    device_widths: torch.Tensor | None = None

    @classmethod
    def build(cls, layers: Sequence[LayerReference], device: torch.device) -> StackedReference:
        widths = np.array([int(ref.mean.numel()) for ref in layers])
        starts = np.concatenate([[0], np.cumsum(widths)[:-1]]).astype(np.intp)
        mean = torch.cat([ref.mean.to(torch.float64).cpu() for ref in layers])
        inv_std = torch.cat([ref.var.to(torch.float64).cpu().rsqrt() for ref in layers])
        principal = [None if ref.principal is None else ref.principal.to(torch.float64).cpu() for ref in layers]
        if device.type == "cpu":
            return cls(
                device=device,
                mean=mean.numpy(),
                inv_std=inv_std.numpy(),
                principal=tuple(None if p is None else p.numpy() for p in principal),
                starts=starts,
                widths=widths,
                pad_index=None,
            )
        max_width = int(widths.max())
        pad_index = torch.cat([i * max_width + torch.arange(int(w)) for i, w in enumerate(widths)])
        return cls(
            device=device,
            mean=mean.to(device),
            inv_std=inv_std.to(device),
            principal=tuple(None if p is None else p.to(device) for p in principal),
            starts=starts,
            widths=widths,
            pad_index=pad_index.to(device),
            device_widths=torch.as_tensor(widths, dtype=torch.float64).to(device),
        )

    @property
    def n_layers(self) -> int:
        return len(self.widths)

    def batch_statistics(self, features: Mapping[str, torch.Tensor] | Sequence[torch.Tensor]) -> torch.Tensor:
        """``(L, 3)`` float64 statistics of one batch (on the features' device) from its per-layer features."""
        x = _side_by_side(features)
        batch_mean = x.mean(dim=0, dtype=torch.float64)
        return self.statistics(self.shift(batch_mean), x.shape[0])

    def sample_statistics(self, features: Mapping[str, torch.Tensor] | Sequence[torch.Tensor]) -> torch.Tensor:
        """``(samples, L, 3)`` statistics of every sample scored alone (a batch of one)."""
        x = _side_by_side(features)
        return self.statistics(self.shift(x.to(torch.float64)), 1)

    def shift(self, means: torch.Tensor) -> np.ndarray | torch.Tensor:
        """Standardised shift ``(means - mu) / sigma`` of ``(..., D)`` float64 means (numpy on the CPU)."""
        if isinstance(self.mean, np.ndarray):
            return (means.numpy() - self.mean) * self.inv_std
        return (means - self.mean) * self.inv_std

    def statistics(self, shift: np.ndarray | torch.Tensor, batch_size: int) -> torch.Tensor:
        """Mean-, peak- and principal-axes statistics ``(..., L, 3)`` of standardised shifts ``(..., D)``.

        Equal (up to float64 rounding of the sums) to ``null_model.shift_statistics_from_means`` layer by layer;
        layers without a principal map repeat their mean shift in the third column, as there.
        """
        if isinstance(shift, np.ndarray):
            return torch.from_numpy(self._numpy_statistics(shift, batch_size))
        return self._torch_statistics(shift, batch_size)

    def _numpy_statistics(self, shift: np.ndarray, batch_size: int) -> np.ndarray:
        squared = shift * shift
        mean_shift = np.add.reduceat(squared, self.starts, axis=-1) * (batch_size / self.widths)
        peak = np.maximum.reduceat(squared, self.starts, axis=-1) * batch_size
        axes = mean_shift.copy()
        for layer, (start, width, p) in enumerate(zip(self.starts, self.widths, self.principal, strict=True)):
            if p is not None:
                with np.errstate(invalid="ignore", over="ignore"):  # a non-finite layer stays non-finite
                    projected = shift[..., start : start + width] @ p
                axes[..., layer] = np.square(projected).sum(axis=-1) * (batch_size / p.shape[1])
        return np.stack([mean_shift, peak, axes], axis=-1)

    def _torch_statistics(self, shift: torch.Tensor, batch_size: int) -> torch.Tensor:
        assert self.pad_index is not None and self.device_widths is not None
        squared = shift.square()
        max_width = int(self.widths.max())
        padded = squared.new_zeros(*shift.shape[:-1], self.n_layers * max_width)
        padded[..., self.pad_index] = squared  # zeros never exceed a square, and a NaN stays in its layer
        padded = padded.unflatten(-1, (self.n_layers, max_width))
        mean_shift = padded.sum(dim=-1) * (batch_size / self.device_widths)
        peak = padded.amax(dim=-1) * batch_size
        columns = []
        for layer, (start, width, p) in enumerate(zip(self.starts, self.widths, self.principal, strict=True)):
            if p is None:
                columns.append(mean_shift[..., layer])
            else:
                projected = shift[..., start : start + width] @ p
                columns.append(projected.square().sum(dim=-1) * (batch_size / p.shape[1]))
        return torch.stack([mean_shift, peak, torch.stack(columns, dim=-1)], dim=-1)


def _side_by_side(features: Mapping[str, torch.Tensor] | Sequence[torch.Tensor]) -> torch.Tensor:
    """The layers' ``(batch, features)`` matrices concatenated along the feature axis (one layer: itself)."""
    parts = list(features.values()) if isinstance(features, Mapping) else list(features)
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
