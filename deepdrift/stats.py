"""Streaming statistics that never hold the calibration set in memory.

``RunningMoments`` keeps float64 per-feature mean and sum of squared deviations and merges exactly (Chan, Golub &
LeVeque 1979), so calibration can be split across loaders, processes or ranks. ``JointReservoir`` keeps a bounded,
uniformly random sample of held-out vectors, the same samples for every layer, for the null distribution.
``merge_moments`` and ``merge_reservoirs`` combine many of them at once with the arithmetic that the distributed
all-reduce (``deepdrift.distributed``) performs, so both paths give the same numbers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

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

    @classmethod
    def from_state(
        cls, count: int, mean: torch.Tensor, m2: torch.Tensor, comoment: torch.Tensor | None = None
    ) -> RunningMoments:
        """An accumulator holding already merged sums (``comoment`` given: it tracks the covariance)."""
        moments = cls(track_covariance=comoment is not None)
        moments.count, moments.mean, moments.m2, moments.comoment = count, mean, m2, comoment
        return moments

    def _combine(
        self, n_b: int, mean_b: torch.Tensor, m2_b: torch.Tensor, comoment_b: torch.Tensor | None = None
    ) -> RunningMoments:
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


def count_weighted_mean(moments: RunningMoments) -> torch.Tensor:
    """``count x mean``: summed over parts and divided by the total count, it gives the pooled mean."""
    assert moments.mean is not None
    return moments.mean * moments.count


def deviation_sums(moments: RunningMoments, pooled_mean: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """This part's M2 and co-moment about ``pooled_mean`` (summed over parts: the pooled M2 and co-moment)."""
    assert moments.mean is not None and moments.m2 is not None
    d = moments.mean.to(pooled_mean.device) - pooled_mean
    m2 = moments.m2.to(d.device) + d * d * moments.count
    if not moments.track_covariance or moments.comoment is None:
        return m2, None
    return m2, moments.comoment.to(d.device) + torch.outer(d, d) * moments.count


def merge_moments(parts: Sequence[RunningMoments], track_covariance: bool | None = None) -> RunningMoments:
    """Exact merge of many accumulators in one step, leaving them unchanged.

    With ``d_i = mean_i - mean`` and ``mean = sum(n_i mean_i) / n``: ``M2 = sum(M2_i + n_i d_i^2)`` and
    ``C = sum(C_i + n_i d_i d_i^T)``. The distributed all-reduce sums the same terms, so two parts merged here and
    two ranks merged by ``torch.distributed`` agree bit for bit (a sum of two floats does not depend on its order).
    """
    track = all(p.track_covariance for p in parts) if track_covariance is None else track_covariance
    if track and not all(p.track_covariance for p in parts if p.count):
        raise ValueError("cannot merge: some accumulators track the covariance and others do not")
    filled = [p for p in parts if p.count > 0]
    if not filled:
        return RunningMoments(track_covariance=track)
    count = sum(p.count for p in filled)
    device = filled[0].mean.device  # type: ignore[union-attr]
    mean = _total(count_weighted_mean(p).to(device) for p in filled) / count
    sums = [deviation_sums(p, mean) for p in filled]
    m2 = _total(s[0] for s in sums)
    comoment = _total(s[1] for s in sums) if track else None  # type: ignore[misc]
    return RunningMoments.from_state(count, mean, m2, comoment)


def _total(terms: Iterable[torch.Tensor]) -> torch.Tensor:
    """Left-to-right sum (the order a two-rank all-reduce matches exactly)."""
    iterator = iter(terms)
    total = next(iterator)
    for term in iterator:
        total = total + term
    return total


def reservoir_merge_plan(
    seen: Sequence[int], held: Sequence[int], capacity: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """Which stored rows of each reservoir survive a merge into one uniform sample of the union of their streams.

    Args:
        seen: samples each reservoir was offered (its stream length).
        held: rows each reservoir stores (``min(seen, capacity)``).
        capacity: bound of the merged reservoir.
        rng: the draws; the same generator state gives the same plan on every rank.

    How many survivors come from each stream is multivariate hypergeometric in the stream lengths (drawn one stream
    at a time); within a stream the reservoir is already uniform, so a uniform subset of it is too.
    """
    left = min(capacity, sum(seen))
    rest = sum(seen)
    counts = []
    for n in seen:
        rest -= n
        take = left if rest == 0 else (int(rng.hypergeometric(n, rest, left)) if left and n else 0)
        counts.append(take)
        left -= take
    return [np.sort(rng.choice(h, size=c, replace=False)) for h, c in zip(held, counts, strict=True)]


def merge_reservoirs(
    reservoirs: Sequence[JointReservoir], rng: np.random.Generator, seed: int | Sequence[int] = 0
) -> JointReservoir:
    """A new reservoir holding a uniform sample of the union of the inputs' streams (rows in input order).

    ``seed`` seeds the result's own draws for samples added later.
    """
    plan = reservoir_merge_plan([r.seen for r in reservoirs], [len(r) for r in reservoirs], reservoirs[0].capacity, rng)
    names = next((list(r.rows) for r in reservoirs if r.rows), [])
    rows = {
        name: torch.cat(
            [r.samples()[name][torch.as_tensor(idx)] for r, idx in zip(reservoirs, plan, strict=True) if len(idx)]
        )
        for name in names
    }
    return JointReservoir.from_rows(reservoirs[0].capacity, rows, sum(r.seen for r in reservoirs), seed)


class JointReservoir:
    """Uniform random sample (Vitter's algorithm R) of at most ``capacity`` rows, shared across layers.

    Every layer keeps the rows of the same samples, so cross-layer statistics can be resampled jointly.

    Args:
        capacity: at most this many rows are kept.
        seed: seeds the replacement draws (a sequence of ints gives an independent stream per entry, e.g. per rank).
    """

    def __init__(self, capacity: int, seed: int | Sequence[int] = 0) -> None:
        if capacity < 1:
            raise ValueError("reservoir capacity must be at least 1")
        self.capacity = capacity
        self.seen = 0
        self.rows: dict[str, torch.Tensor] = {}
        self._rng = np.random.default_rng(seed)

    @classmethod
    def from_rows(
        cls, capacity: int, rows: Mapping[str, torch.Tensor], seen: int, seed: int | Sequence[int] = 0
    ) -> JointReservoir:
        """A reservoir that already holds ``rows`` (a uniform sample of ``seen`` samples, at most ``capacity``)."""
        reservoir = cls(capacity, seed)
        for name, x in rows.items():
            if x.shape[0] != min(seen, capacity):
                raise ValueError(f"{name!r}: {x.shape[0]} rows for {seen} samples seen (capacity {capacity})")
            store = torch.empty(capacity, x.shape[1], dtype=torch.float32)
            store[: x.shape[0]] = x
            reservoir.rows[name] = store
        reservoir.seen = seen
        return reservoir

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
        merged = merge_reservoirs([self, other], self._rng)
        self.rows = merged.rows
        self.seen += other.seen
        return self
