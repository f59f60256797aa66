"""Class-balanced training subsets of size N and a disjoint, reserved held-out pool from the same (train) split.

Held-out images come from the *train* split, not the test split, so a train-vs-held-out gap cannot come from a
difference between the official splits: only from the model having seen the training images. Every scored set
(training images, null sets, calibration set) is class-balanced, so class composition cannot masquerade as
memorisation either.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from experiments.data import load_fashion_mnist, to_model_input
from experiments.diffusion.config import DiffusionData, EvalSpec


@functools.lru_cache(maxsize=2)
def _raw_split(dataset: str) -> tuple[np.ndarray, np.ndarray]:
    if dataset == "fashion_mnist":
        return load_fashion_mnist("train")
    if dataset == "cifar10":  # paper config, for users with internet; not available offline here
        from torchvision.datasets import CIFAR10

        from experiments.data.fashion_mnist import default_root

        ds = CIFAR10(str(default_root()), train=True, download=True)
        return np.asarray(ds.data, dtype=np.uint8), np.asarray(ds.targets, dtype=np.int64)
    raise ValueError(f"unknown dataset {dataset!r}; use 'fashion_mnist' or 'cifar10'")


def labels_of(data: DiffusionData) -> np.ndarray:
    """Labels of the whole train split of the configured dataset."""
    return np.asarray(_raw_split(data.dataset)[1])


def images_of(data: DiffusionData, indices: np.ndarray) -> torch.Tensor:
    """Images ``[n, C, S, S]`` scaled to [-1, 1] (the DDPM convention); zero-padded to 32, then area-downsampled."""
    raw = _raw_split(data.dataset)[0][np.asarray(indices, dtype=np.int64)]
    x = to_model_input(raw, size=32, channels=data.channels, mean=0.5, std=0.5)
    if data.img_size != 32:
        x = F.interpolate(x, size=(data.img_size, data.img_size), mode="area")
    return x.contiguous()


def balanced_pick(labels: np.ndarray, candidates: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` distinct candidates with classes as equal as possible (the remainder goes to random classes)."""
    classes = np.unique(labels[candidates])
    per_class = np.full(classes.size, n // classes.size)
    per_class[rng.permutation(classes.size)[: n % classes.size]] += 1
    chosen = []
    for cls, k in zip(classes, per_class, strict=True):
        pool = candidates[labels[candidates] == cls]
        if k > pool.size:
            raise ValueError(f"class {cls} has {pool.size} candidates, {k} needed; lower N or n_reserved")
        chosen.append(rng.choice(pool, size=k, replace=False))
    return np.sort(np.concatenate(chosen)).astype(np.int64)


@dataclass(frozen=True)
class StudySplit:
    """Indices into the train split for one (N, seed).

    Attributes:
        train: the N training images.
        scored_train: min(N, score_batch_max) of them, scored for drift and the loss gap.
        calib: held-out images that calibrate the monitor.
        null_sets: disjoint held-out sets, each the size of ``scored_train`` (the null; set 0 is the loss baseline).
    """

    train: np.ndarray
    scored_train: np.ndarray
    calib: np.ndarray
    null_sets: tuple[np.ndarray, ...]


def reserved_pool(data: DiffusionData) -> tuple[np.ndarray, np.ndarray]:
    """(reserved held-out indices in a fixed random order, indices available for training)."""
    labels = labels_of(data)
    rng = np.random.default_rng([data.split_seed, 0])
    reserved = balanced_pick(labels, np.arange(labels.size), data.n_reserved, rng)
    available = np.setdiff1d(np.arange(labels.size), reserved)
    return rng.permutation(reserved), available


def study_split(data: DiffusionData, eval_spec: EvalSpec, n_train: int, seed: int) -> StudySplit:
    """Deterministic split for one training-set size and seed (the held-out pool is shared by all N and seeds)."""
    labels = labels_of(data)
    reserved, available = reserved_pool(data)
    train = balanced_pick(labels, available, n_train, np.random.default_rng([data.split_seed, n_train, seed, 1]))
    size = min(n_train, eval_spec.score_batch_max)
    scored = train if size == n_train else balanced_pick(labels, train, size, np.random.default_rng([seed, 2]))
    needed = eval_spec.n_calib + eval_spec.n_null_sets * size
    if needed > reserved.size:
        raise ValueError(
            f"the held-out pool has {reserved.size} images but {needed} are needed "
            "(n_calib + n_null_sets * min(N, score_batch_max)); raise data.n_reserved"
        )
    calib = np.sort(reserved[: eval_spec.n_calib])
    rest = reserved[eval_spec.n_calib :]
    rng = np.random.default_rng([data.split_seed, 3])
    null_sets = []
    for _ in range(eval_spec.n_null_sets):
        chosen = balanced_pick(labels, rest, size, rng)
        null_sets.append(chosen)
        rest = np.setdiff1d(rest, chosen)
    return StudySplit(train=train, scored_train=scored, calib=calib, null_sets=tuple(null_sets))


@dataclass(frozen=True)
class SplitImages:
    """The images of one split: all training images, the scored ones, calibration and null sets, in [-1, 1]."""

    train: torch.Tensor
    scored: torch.Tensor
    calib: torch.Tensor
    null_sets: tuple[torch.Tensor, ...]


def split_images(data: DiffusionData, split: StudySplit) -> SplitImages:
    """Load the images a split indexes."""
    return SplitImages(
        train=images_of(data, split.train),
        scored=images_of(data, split.scored_train),
        calib=images_of(data, split.calib),
        null_sets=tuple(images_of(data, s) for s in split.null_sets),
    )
