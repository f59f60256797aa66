"""Fashion-MNIST (70k 28x28 grey images, 10 classes, MIT licence) from whatever source this machine has.

Sources are tried in order, so the same call works offline on the dev machines and on a user's laptop:

1. the Debian package ``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist``);
2. IDX files already in the cache folder (``root``, else ``$DEEPDRIFT_DATA``, else ``~/.cache/deepdrift``),
   either at its top level or in torchvision's ``FashionMNIST/raw`` layout;
3. ``torchvision.datasets.FashionMNIST(download=True)`` into the cache folder;
4. Hugging Face ``datasets`` (``zalando-datasets/fashion_mnist``, then ``fashion_mnist``), if installed.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np
from torch.utils.data import TensorDataset

from experiments.data.idx import IdxFormatError, read_idx
from experiments.data.tensors import make_tensor_dataset

logger = logging.getLogger(__name__)

Split = Literal["train", "test"]

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
"""Where ``apt-get install dataset-fashion-mnist`` puts the IDX files."""

DATA_ENV_VAR = "DEEPDRIFT_DATA"
HF_DATASET_IDS = ("zalando-datasets/fashion_mnist", "fashion_mnist")

CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
NUM_CLASSES = len(CLASSES)
SPLIT_SIZES: dict[str, int] = {"train": 60_000, "test": 10_000}

MEAN = 0.2860406
"""Mean pixel value of the 60k training images at 28x28, after scaling to [0, 1].

A property of the data, not of the padding: padding with 0 (the background colour) before normalising just
extends the background. Over the 32x32 zero-padded images the mean would be 0.2190.
"""
STD = 0.3530242
"""Population standard deviation of the same pixels (0.3318 over the 32x32 zero-padded images)."""

_PREFIX: dict[str, str] = {"train": "train", "test": "t10k"}


class DatasetUnavailableError(RuntimeError):
    """Raised when no source could provide Fashion-MNIST; the message lists every attempt."""


def default_root() -> Path:
    """Cache folder used when no ``root`` is passed: ``$DEEPDRIFT_DATA`` or ``~/.cache/deepdrift``."""
    env = os.environ.get(DATA_ENV_VAR)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "deepdrift"


def _find_idx(folder: Path, split: str, kind: str) -> Path | None:
    stem = f"{_PREFIX[split]}-{kind}-ubyte"
    for name in (f"{stem}.gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


def _from_folder(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    images_path = _find_idx(folder, split, "images-idx3")
    labels_path = _find_idx(folder, split, "labels-idx1")
    if images_path is None or labels_path is None:
        raise FileNotFoundError(f"no {_PREFIX[split]}-*-ubyte[.gz] files in {folder}")
    return read_idx(images_path), read_idx(labels_path)


def _from_cache(root: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    errors = []
    for folder in (root, root / "FashionMNIST" / "raw"):
        try:
            return _from_folder(folder, split)
        except (FileNotFoundError, IdxFormatError) as err:
            errors.append(str(err))
    raise FileNotFoundError("; ".join(errors))


def _from_torchvision(root: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    from torchvision.datasets import FashionMNIST

    ds = FashionMNIST(str(root), train=split == "train", download=True)
    return ds.data.numpy(), ds.targets.numpy()


def _from_huggingface(root: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    import datasets  # optional dependency

    errors = []
    for dataset_id in HF_DATASET_IDS:
        try:
            ds = datasets.load_dataset(dataset_id, split=split, cache_dir=str(root / "huggingface"))
        except Exception as err:  # the hub raises many types; keep trying the next id
            errors.append(f"{dataset_id}: {err}")
            continue
        images = np.stack([np.asarray(img, dtype=np.uint8) for img in ds["image"]])
        return images, np.asarray(ds["label"])
    raise RuntimeError("; ".join(errors))


def _validate(images: np.ndarray, labels: np.ndarray, split: str, source: str) -> tuple[np.ndarray, np.ndarray]:
    n = SPLIT_SIZES[split]
    if images.shape != (n, 28, 28) or labels.shape != (n,):
        raise IdxFormatError(
            f"{source} gave images {images.shape} and labels {labels.shape}; expected ({n}, 28, 28) and ({n},)"
        )
    images = np.ascontiguousarray(images, dtype=np.uint8)
    labels = np.ascontiguousarray(labels, dtype=np.int64)
    if labels.min() < 0 or labels.max() >= NUM_CLASSES:
        raise IdxFormatError(f"{source} gave labels outside 0..{NUM_CLASSES - 1}")
    images.flags.writeable = False  # shared through the in-process cache: copy before editing
    labels.flags.writeable = False
    return images, labels


@functools.lru_cache(maxsize=4)
def _load(split: str, root: Path, download: bool) -> tuple[np.ndarray, np.ndarray]:
    attempts: list[tuple[str, Callable[[], tuple[np.ndarray, np.ndarray]]]] = [
        (f"Debian package files in {DEBIAN_DIR}", lambda: _from_folder(DEBIAN_DIR, split)),
        (f"IDX files in the cache folder {root}", lambda: _from_cache(root, split)),
    ]
    if download:
        attempts += [
            (f"torchvision download into {root}", lambda: _from_torchvision(root, split)),
            (f"Hugging Face datasets {' / '.join(HF_DATASET_IDS)}", lambda: _from_huggingface(root, split)),
        ]
    failures = []
    for source, fetch in attempts:
        try:
            images, labels = fetch()
            result = _validate(images, labels, split, source)
        except Exception as err:  # any failing source is reported below; try the next one
            logger.debug("Fashion-MNIST %s: %s failed: %s", split, source, err)
            failures.append(f"  - {source}: {type(err).__name__}: {err}")
            continue
        logger.info("Fashion-MNIST %s split loaded from %s", split, source)
        return result
    raise DatasetUnavailableError(
        f"Could not load the Fashion-MNIST {split!r} split. Tried:\n"
        + "\n".join(failures)
        + f"\nFix: `apt-get install dataset-fashion-mnist` (Debian/Ubuntu), or put the four *-ubyte.gz files "
        f"in {root} (or set ${DATA_ENV_VAR}), or allow downloads (download=True) with internet access, "
        "or `pip install datasets`."
    )


def load_fashion_mnist(
    split: Split, root: str | os.PathLike[str] | None = None, *, download: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Load one official split as numpy arrays, trying each source in turn (see the module docstring).

    Results are memoised per process, so repeated calls are free; the returned arrays are read-only.

    Args:
        split: ``"train"`` (60,000 images) or ``"test"`` (10,000 images).
        root: Cache folder for local IDX files and downloads; default ``$DEEPDRIFT_DATA`` or
            ``~/.cache/deepdrift``.
        download: Allow the torchvision and Hugging Face sources (network access).

    Returns:
        ``(images, labels)``: uint8 ``[N, 28, 28]`` and int64 ``[N]`` with values in 0..9.

    Raises:
        DatasetUnavailableError: If no source worked; the message lists each attempt and how to fix it.
    """
    if split not in SPLIT_SIZES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    folder = Path(root).expanduser() if root is not None else default_root()
    return _load(split, folder.resolve(), download)


def fashion_mnist_dataset(
    split: Split,
    *,
    indices: np.ndarray | None = None,
    size: int = 32,
    channels: int = 1,
    root: str | os.PathLike[str] | None = None,
    download: bool = True,
) -> TensorDataset:
    """Fashion-MNIST as an in-memory ``TensorDataset`` of normalised float images and int64 labels.

    Args:
        split: ``"train"`` or ``"test"``.
        indices: Optional subset (e.g. from :func:`experiments.data.splits.make_splits`).
        size: Output side length, reached by zero padding (:func:`~experiments.data.tensors.pad_images`).
        channels: 1, or 3 to repeat the grey channel for RGB models.
        root, download: As in :func:`load_fashion_mnist`.

    Returns:
        ``TensorDataset(x [N, channels, size, size] float32, y [N] int64)``.
    """
    images, labels = load_fashion_mnist(split, root, download=download)
    if indices is not None:
        images, labels = images[indices], labels[indices]
    return make_tensor_dataset(images, labels, size=size, channels=channels, mean=MEAN, std=STD)
