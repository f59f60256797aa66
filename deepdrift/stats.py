"""Streaming statistics that never hold the calibration set in memory.

``RunningMoments`` keeps float64 per-feature mean and sum of squared deviations and merges exactly (Chan, Golub &
LeVeque 1979), so calibration can be split across loaders, processes or ranks. ``JointReservoir`` keeps a bounded,
uniformly random sample of held-out vectors, the same samples for every layer, for the null distribution.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch


class RunningMoments:
    """Per-feature count, mean and M2 (sum of squared deviations) in float64; optionally the full co-moment matrix.

    Args:
        track_covariance: also keep the ``(features, features)`` sum of centred outer products (memory: features^2 x
            8 bytes), merged exactly like M2, for the principal-axes statistic.
    """

    def __init__(self, track_covariance: bool = False) -> None:
        self.count = 0
        self.mean: torch.Tensor | None = None
        self.m2: torch.Tensor | None = None
        self.track_covariance = track_covariance
        self.comoment: torch.Tensor | None = None

    def update(self, x: torch.Tensor) -> RunningMoments:
        """Add a ``(batch, features)`` block of samples."""
        if x.ndim != 2:
            raise ValueError(f"expected a (batch, features) matrix, got shape {tuple(x.shape)}")
        if x.shape[0] == 0:
            return self
        x = x.detach().to(torch.float64)
        batch_mean = x.mean(dim=0)
        centred = x - batch_mean
        comoment = centred.T @ centred if self.track_covariance else None
        return self._combine(x.shape[0], batch_mean, (centred**2).sum(dim=0), comoment)

    def merge(self, other: RunningMoments) -> RunningMoments:
        """Fold another accumulator into this one; the result equals one pass over both inputs."""
        if other.count == 0:
            return self
        assert other.mean is not None and other.m2 is not None
        if self.track_covariance and other.comoment is None:
            raise ValueError("cannot merge: this accumulator tracks the covariance and the other does not")
        return self._combine(other.count, other.mean, other.m2, other.comoment)

    def _combine(self, n_b: int, mean_b: torch.Tensor, m2_b: torch.Tensor,
                 comoment_b: torch.Tensor | None = None) -> RunningMoments:
        track = self.track_covariance and comoment_b is not None
        if self.count == 0 or self.mean is None or self.m2 is None:
            self.count, self.mean, self.m2 = n_b, mean_b.clone(), m2_b.clone()
            self.comoment = comoment_b.clone() if track else None
            return self
        if mean_b.shape != self.mean.shape:
            raise ValueError(f"feature sizes differ: {tuple(self.mean.shape)} vs {tuple(mean_b.shape)}")
        mean_b, m2_b = mean_b.to(self.mean.device), m2_b.to(self.mean.device)
        n_a, n = self.count, self.count + n_b
        delta = mean_b - self.mean
        self.mean = self.mean + delta * (n_b / n)
        self.m2 = self.m2 + m2_b + delta**2 * (n_a * n_b / n)
        if track and self.comoment is not None:
            cross = torch.outer(delta, delta) * (n_a * n_b / n)
            self.comoment = self.comoment + comoment_b.to(self.mean.device) + cross
        self.count = n
        return self

    @property
    def covariance(self) -> torch.Tensor:
        """Unbiased ``(features, features)`` covariance (needs ``track_covariance`` and two samples)."""
        if self.comoment is None or self.count < 2:
            raise ValueError("covariance needs track_covariance=True and at least two samples")
        return self.comoment / (self.count - 1)

    @property
    def variance(self) -> torch.Tensor:
        """Unbiased per-feature variance (needs at least two samples)."""
        if self.m2 is None or self.count < 2:
            raise ValueError("variance needs at least two samples; calibrate on more data")
        return self.m2 / (self.count - 1)


class JointReservoir:
    """Uniform random sample (Vitter's algorithm R) of at most ``capacity`` rows, shared across layers.

    Every layer keeps the rows of the same samples, so cross-layer statistics can be resampled jointly.
    """

    def __init__(self, capacity: int, seed: int = 0) -> None:
        if capacity < 1:
            raise ValueError("reservoir capacity must be at least 1")
        self.capacity = capacity
        self.seen = 0
        self.rows: dict[str, torch.Tensor] = {}
        self._rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return min(self.seen, self.capacity)

    def add(self, features: Mapping[str, torch.Tensor]) -> None:
        """Offer a batch of samples (same batch size in every layer); stored on the CPU as float32."""
        sizes = {int(x.shape[0]) for x in features.values()}
        if len(sizes) != 1:
            raise ValueError(f"all layers must carry the same samples, got batch sizes {sorted(sizes)}")
        batch = sizes.pop()
        positions = self.seen + np.arange(batch)
        fill = positions < self.capacity
        slots = np.where(fill, positions, self._rng.integers(0, positions + 1))
        keep = slots < self.capacity
        # a slot replaced twice in one batch keeps the later sample, as the sequential algorithm would
        rev_slots = slots[keep][::-1]
        _, first_in_rev = np.unique(rev_slots, return_index=True)
        src = np.flatnonzero(keep)[::-1][first_in_rev]
        dst = slots[src]
        for name, x in features.items():
            x = x.detach().to("cpu", torch.float32)
            store = self.rows.get(name)
            if store is None:
                store = torch.empty(self.capacity, x.shape[1], dtype=torch.float32)
                self.rows[name] = store
            store[torch.as_tensor(dst)] = x[torch.as_tensor(src)]
        self.seen += batch

    def samples(self) -> dict[str, torch.Tensor]:
        """The stored rows per layer (``len(self)`` rows each)."""
        return {name: rows[: len(self)] for name, rows in self.rows.items()}

    def merge(self, other: JointReservoir) -> JointReservoir:
        """Combine two reservoirs into a uniform sample of the union of their streams."""
        if other.seen == 0:
            return self
        if self.seen == 0:
            self.rows = {k: v.clone() for k, v in other.rows.items()}
            self.seen = other.seen
            return self
        if set(self.rows) != set(other.rows):
            raise ValueError("reservoirs hold different layers")
        n_a, n_b = len(self), len(other)
        keep = min(self.capacity, n_a + n_b)
        # how many survivors come from each stream is hypergeometric in the stream lengths; within a stream
        # the reservoir is already uniform, so a uniform subset of it is too
        from_a = int(self._rng.hypergeometric(self.seen, other.seen, keep))
        pick_a = np.sort(self._rng.choice(n_a, size=from_a, replace=False))
        pick_b = np.sort(self._rng.choice(n_b, size=keep - from_a, replace=False))
        chosen = np.concatenate([pick_a, n_a + pick_b])
        merged = {}
        for name in self.rows:
            stacked = torch.cat([self.samples()[name], other.samples()[name]])
            store = torch.empty(self.capacity, stacked.shape[1], dtype=torch.float32)
            store[:keep] = stacked[torch.as_tensor(chosen)]
            merged[name] = store
        self.rows = merged
        self.seen += other.seen
        return self
