"""CIFAR-10 (60k 32x32 colour images, 10 classes) from the official python release, checked before it is read.

Sources are tried in order:

1. the python batches already in the cache folder (``root``, else ``$DEEPDRIFT_DATA``, else ``~/.cache/deepdrift``),
   in torchvision's layout ``cifar-10-batches-py/{data_batch_1..5, test_batch}``;
2. with ``download=True``, the official archive ``cifar-10-python.tar.gz`` fetched into the cache folder by
   torchvision's downloader, which checks the archive's MD5 before unpacking it; then 1.

The batches are Python pickles, and pickles from untrusted files are never loaded here. A batch is read only after
its MD5 matches the official value in :data:`CIFAR10_RELEASE` (the digests the Toronto release publishes, the ones
torchvision's ``CIFAR10`` checks), and then by an unpickler that can build nothing but numpy arrays, lists, dicts
and strings, so even a forged file with a colliding MD5 cannot run code. Tests pass a :class:`Cifar10Release`
holding the digests of their own small files through the same checks.
"""

from __future__ import annotations

import codecs
import functools
import logging
import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from experiments.data.checksums import Checksum, verify_file
from experiments.data.fashion_mnist import DATA_ENV_VAR, DatasetUnavailableError, Split, default_root

logger = logging.getLogger(__name__)

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
NUM_CLASSES = len(CLASSES)
BATCH_FOLDER = "cifar-10-batches-py"
"""Where the official archive unpacks its batches (and where torchvision keeps them)."""

MEAN = 0.4734
"""Mean of CIFAR-10's training pixels over all three channels, in [0, 1] units: the mean of the per-channel means
(0.4914, 0.4822, 0.4465). One scalar, like Fashion-MNIST's, because every study (fault injection included)
normalises and de-normalises with one number; the first layer absorbs the channels' offsets."""
STD = 0.2516
"""Population standard deviation of the same pixels: sqrt(mean of the per-channel variances, with per-channel
stds 0.2470, 0.2435, 0.2616, plus the variance of the channel means)."""


@dataclass(frozen=True)
class Cifar10Release:
    """What a copy of CIFAR-10 must match: each split's batch files with their checksums, and the split sizes.

    Attributes:
        train_batches: ``(file name, checksum)`` of the training batches, in order.
        test_batches: the same for the test split.
        train_size: images in the train split.
        test_size: images in the test split.
        archive_url: where the archive that unpacks to ``cifar-10-batches-py/`` is downloaded from (None: never).
        archive_checksum: the archive's checksum, checked before it is unpacked.
    """

    train_batches: tuple[tuple[str, Checksum], ...]
    test_batches: tuple[tuple[str, Checksum], ...]
    train_size: int = 50_000
    test_size: int = 10_000
    archive_url: str | None = None
    archive_checksum: Checksum | None = None

    def batches(self, split: Split) -> tuple[tuple[str, Checksum], ...]:
        return self.train_batches if split == "train" else self.test_batches

    @property
    def split_sizes(self) -> dict[str, int]:
        return {"train": self.train_size, "test": self.test_size}


CIFAR10_RELEASE = Cifar10Release(
    train_batches=(
        ("data_batch_1", Checksum("md5", "c99cafc152244af753f735de768cd75f")),
        ("data_batch_2", Checksum("md5", "d4bba439e000b95fd0a9bffe97cbabec")),
        ("data_batch_3", Checksum("md5", "54ebc095f3ab1f0389bbae665268c751")),
        ("data_batch_4", Checksum("md5", "634d18415352ddfa80567beed471001a")),
        ("data_batch_5", Checksum("md5", "482c414d41f54cd18b22e5b47cb7c3cb")),
    ),
    test_batches=(("test_batch", Checksum("md5", "40351d587109b95175f43aff81a1287e")),),
    archive_url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    archive_checksum=Checksum("md5", "c58f30108f718f92721af3b95e74349a"),
)
"""The official release (Krizhevsky, 2009), with the MD5 digests it publishes."""


class CifarFormatError(ValueError):
    """A batch file that passed its checksum but does not hold what a CIFAR-10 batch holds."""


_RECONSTRUCT = np.ndarray.__reduce__(np.zeros(1))[0]
_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,  # as the release (Python 2, numpy 1) wrote it
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,  # as numpy 2 writes it
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,  # how Python 3 writes bytes at protocol 2
}


class _ArrayUnpickler(pickle.Unpickler):
    """Builds numpy arrays and builtin containers only; any other global in the stream is refused."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: a CIFAR-10 batch holds numpy arrays and lists only"
            ) from None


def read_batch(path: str | os.PathLike[str], expected: Checksum) -> tuple[np.ndarray, np.ndarray]:
    """One python batch as uint8 images ``[n, 32, 32, 3]`` and int64 labels, after checking its checksum.

    Raises:
        ChecksumError: the file is not the one the release lists.
        CifarFormatError: it is, but it does not hold CIFAR-10 images and labels.
    """
    verify_file(path, expected)
    with open(path, "rb") as fh:
        try:
            entry = _ArrayUnpickler(fh, encoding="latin1").load()
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as err:
            raise CifarFormatError(f"{path}: not a CIFAR-10 python batch ({err})") from err
    if not isinstance(entry, dict) or "data" not in entry or "labels" not in entry:
        raise CifarFormatError(f"{path}: expected a dict with 'data' and 'labels', got {type(entry).__name__}")
    data, labels = entry["data"], np.asarray(entry["labels"])
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise CifarFormatError(f"{path}: 'data' must be uint8 [n, 3072], got {getattr(data, 'shape', type(data))}")
    if labels.shape != (len(data),) or labels.dtype.kind not in "iu":
        raise CifarFormatError(f"{path}: {len(data)} images but labels of shape {labels.shape} ({labels.dtype})")
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels.astype(np.int64)


def _from_folder(root: Path, split: Split, release: Cifar10Release) -> tuple[np.ndarray, np.ndarray]:
    folder = root / BATCH_FOLDER
    parts = [read_batch(folder / name, checksum) for name, checksum in release.batches(split)]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _download(root: Path, release: Cifar10Release) -> None:
    if release.archive_url is None or release.archive_checksum is None:
        raise FileNotFoundError("this release names no archive to download")
    if release.archive_checksum.algorithm != "md5":
        raise ValueError("torchvision's downloader checks MD5 digests only")
    from torchvision.datasets.utils import download_and_extract_archive

    download_and_extract_archive(release.archive_url, str(root), md5=release.archive_checksum.digest)


def _validate(images: np.ndarray, labels: np.ndarray, split: Split, release: Cifar10Release) -> None:
    n = release.split_sizes[split]
    if images.shape != (n, 32, 32, 3) or labels.shape != (n,):
        raise CifarFormatError(f"the {split} split holds images {images.shape}, expected ({n}, 32, 32, 3)")
    if labels.min() < 0 or labels.max() >= NUM_CLASSES:
        raise CifarFormatError(f"the {split} split has labels outside 0..{NUM_CLASSES - 1}")
    images.flags.writeable = False  # shared through the in-process cache: copy before editing
    labels.flags.writeable = False


def _download_then_read(root: Path, split: Split, release: Cifar10Release) -> tuple[np.ndarray, np.ndarray]:
    _download(root, release)
    return _from_folder(root, split, release)


@functools.lru_cache(maxsize=4)
def _load(split: Split, root: Path, download: bool, release: Cifar10Release) -> tuple[np.ndarray, np.ndarray]:
    attempts: list[tuple[str, Callable[[], tuple[np.ndarray, np.ndarray]]]] = [
        (f"python batches in {root / BATCH_FOLDER}", lambda: _from_folder(root, split, release)),
    ]
    if download:
        attempts.append(
            (
                f"download of {release.archive_url} into {root} (checksum checked), then its batches",
                lambda: _download_then_read(root, split, release),
            )
        )
    failures = []
    for source, fetch in attempts:
        try:
            images, labels = fetch()
            _validate(images, labels, split, release)
        except Exception as err:  # any failing source is reported below; try the next one
            logger.debug("CIFAR-10 %s: %s failed: %s", split, source, err)
            failures.append(f"  - {source}: {type(err).__name__}: {err}")
            continue
        logger.info("CIFAR-10 %s split loaded from %s", split, source)
        return images, labels
    raise DatasetUnavailableError(
        f"Could not load the CIFAR-10 {split!r} split. Tried:\n"
        + "\n".join(failures)
        + f"\nFix: allow downloads (download=True) with internet access, or unpack the official "
        f"cifar-10-python.tar.gz into {root} (or set ${DATA_ENV_VAR}); delete a damaged file and download again."
    )


def load_cifar10(
    split: Split,
    root: str | os.PathLike[str] | None = None,
    *,
    download: bool = True,
    release: Cifar10Release | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Load one official split as numpy arrays, checking every file against the release's checksums.

    Results are memoised per process; the returned arrays are read-only.

    Args:
        split: ``"train"`` (50,000 images) or ``"test"`` (10,000 images).
        root: Cache folder; default ``$DEEPDRIFT_DATA`` or ``~/.cache/deepdrift``.
        download: Allow downloading the official archive (network access).
        release: The files and checksums to expect; default :data:`CIFAR10_RELEASE` (tests pass their own).

    Returns:
        ``(images, labels)``: uint8 ``[N, 32, 32, 3]`` (RGB, channels last) and int64 ``[N]`` in 0..9.

    Raises:
        DatasetUnavailableError: no source worked; the message lists each attempt (a checksum mismatch names the
            file, its digest and the expected one) and how to fix it.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    folder = Path(root).expanduser() if root is not None else default_root()
    return _load(split, folder.resolve(), download, release if release is not None else CIFAR10_RELEASE)


def split_sizes(release: Cifar10Release | None = None) -> dict[str, int]:
    """Sizes of the train and test splits of ``release`` (default: the official one), without loading them."""
    return (release if release is not None else CIFAR10_RELEASE).split_sizes
