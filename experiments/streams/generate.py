"""Streams of batches: clean, then a corruption (sudden), or a gradual ramp of its share or of its severity.

A stream is an index array ``(n_batches, batch_size)`` into a pool of per-image features (clean held-out images
first, then every corrupted pool), plus the index of the first batch that is not clean (``change``). Images are
drawn at random for every batch, without replacement within a batch; clean streams longer than the held-out pool
reuse images across batches (as a deployed model sees similar images again), never within one batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Pools:
    """Where each pool of images sits in the concatenated feature bank: ``{key: (start, size)}``.

    Keys: ``"clean"`` and ``(corruption, severity)``.
    """

    spans: Mapping[object, tuple[int, int]]

    def draw(self, key: object, k: int, rng: np.random.Generator) -> np.ndarray:
        start, size = self.spans[key]
        return start + rng.choice(size, size=k, replace=False)


@dataclass(frozen=True)
class Stream:
    """One stream: global image indices per batch, the change point (-1: clean stream) and what it shows."""

    kind: str  # "clean", "sudden", "share_ramp" or "severity_ramp"
    corruption: str
    severity: int  # the final severity
    change: int
    index: np.ndarray
    seed: int


def _batch(
    pools: Pools, corrupt_key: object | None, n_corrupt: int, batch_size: int, rng: np.random.Generator
) -> np.ndarray:
    parts = [pools.draw("clean", batch_size - n_corrupt, rng)]
    if n_corrupt:
        parts.append(pools.draw(corrupt_key, n_corrupt, rng))
    batch = np.concatenate(parts)
    return batch[rng.permutation(batch_size)]


def clean_stream(pools: Pools, n_batches: int, batch_size: int, seed: int) -> Stream:
    """``n_batches`` clean batches (for false alarms)."""
    rng = np.random.default_rng(seed)
    index = np.stack([_batch(pools, None, 0, batch_size, rng) for _ in range(n_batches)])
    return Stream("clean", "-", 0, -1, index, seed)


def change_stream(
    pools: Pools,
    kind: str,
    corruption: str,
    severities: Sequence[int],
    pre: tuple[int, int],
    post: int,
    ramp: int,
    batch_size: int,
    seed: int,
) -> Stream:
    """A clean start of random length in ``pre`` (inclusive), then ``post`` batches after the change.

    Args:
        kind: ``"sudden"`` (every image corrupted from the change on, at ``severities[-1]``), ``"share_ramp"``
            (the corrupted share of each batch grows linearly to 100% over ``ramp`` batches, at ``severities[-1]``),
            or ``"severity_ramp"`` (all images corrupted; severity steps through ``severities`` over ``ramp``
            batches, then stays at the last).
    """
    rng = np.random.default_rng(seed)
    change = int(rng.integers(pre[0], pre[1] + 1))
    batches = [_batch(pools, None, 0, batch_size, rng) for _ in range(change)]
    final = severities[-1]
    for t in range(post):
        if kind == "sudden":
            batches.append(_batch(pools, (corruption, final), batch_size, batch_size, rng))
        elif kind == "share_ramp":
            k = batch_size if t >= ramp else round(batch_size * (t + 1) / ramp)
            batches.append(_batch(pools, (corruption, final), k, batch_size, rng))
        elif kind == "severity_ramp":
            level = severities[min(len(severities) - 1, t * len(severities) // max(ramp, 1))]
            batches.append(_batch(pools, (corruption, level), batch_size, batch_size, rng))
        else:
            raise ValueError(f"unknown stream kind {kind!r}; use sudden, share_ramp or severity_ramp")
    return Stream(kind, corruption, int(final), change, np.stack(batches), seed)
