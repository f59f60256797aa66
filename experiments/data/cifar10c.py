"""CIFAR-10-C (Hendrycks & Dietterich, 2019): the released ``.npy`` archive when present, generated when absent.

The release (Zenodo record 2535967) is one tar of ``CIFAR-10-C/<corruption>.npy`` files, each ``5 * n`` uint8 images
``[32, 32, 3]`` (severities 1..5 stacked, ``n`` = 10,000 test images each), and ``labels.npy``. Row
``(s - 1) * n + i`` is CIFAR-10 test image ``i`` at severity ``s``, so indices into the test split (from
:func:`experiments.data.make_splits`) apply as they are. Files are plain arrays, read with
``np.load(allow_pickle=False)``, memory-mapped.

Checksums: the archive's MD5 (the one Zenodo publishes) is checked before it is unpacked, and unpacking writes
``SHA256SUMS`` beside the files; every later read checks a file against that list, or against a table the caller
passes (the tests' path). A folder unpacked by hand without ``SHA256SUMS`` is read with a warning that it is
unchecked.

When no archive is found (and none can be downloaded), the images are generated from the CIFAR-10 test split with
the project's corruptions (:mod:`experiments.data.corruptions`, ``imagecorruptions-imaug``) and a warning: the same
19 corruptions and 5 severities, but not byte-identical to the release, so comparisons with published CIFAR-10-C
numbers are approximate.
"""

from __future__ import annotations

import functools
import logging
import os
import tarfile
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from experiments.atomic import atomic_path
from experiments.data.checksums import Checksum, ChecksumError, file_digest, verify_file
from experiments.data.corruptions import SEVERITIES, _check_name, corrupt_images

logger = logging.getLogger(__name__)

FOLDER = "CIFAR-10-C"
ARCHIVE_URL = "https://zenodo.org/records/2535967/files/CIFAR-10-C.tar"
ARCHIVE_CHECKSUM = Checksum("md5", "56bf5dcef84df0e2308c6dcbcbbd8499")
"""MD5 of ``CIFAR-10-C.tar`` as published on the Zenodo record (2.9 GB)."""
SUMS_FILE = "SHA256SUMS"
"""Written beside the unpacked files: ``<sha256>  <file name>`` per line, as ``sha256sum`` writes it."""


def find_archive(roots: Iterable[str | os.PathLike[str]]) -> Path | None:
    """The first ``<root>/CIFAR-10-C`` folder that holds ``labels.npy``, or None."""
    for root in roots:
        folder = Path(root).expanduser() / FOLDER
        if (folder / "labels.npy").is_file():
            return folder
    return None


def read_sums(folder: Path) -> dict[str, Checksum]:
    """The table in ``folder/SHA256SUMS`` (empty if there is none)."""
    path = folder / SUMS_FILE
    if not path.is_file():
        return {}
    table = {}
    for line in path.read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            table[name.lstrip("*")] = Checksum("sha256", digest)
    return table


def write_sums(folder: Path) -> dict[str, Checksum]:
    """Hash every ``.npy`` in ``folder`` into ``SHA256SUMS`` (atomically) and return the table."""
    table = {p.name: Checksum("sha256", file_digest(p, "sha256")) for p in sorted(folder.glob("*.npy"))}
    with atomic_path(folder / SUMS_FILE) as tmp:
        tmp.write_text("".join(f"{c.digest}  {name}\n" for name, c in table.items()))
    return table


def download_archive(root: str | os.PathLike[str], url: str | None = None, checksum: Checksum | None = None) -> Path:
    """Download the archive into ``root``, check it, unpack it with ``SHA256SUMS``, delete the tar.

    Args:
        url, checksum: default :data:`ARCHIVE_URL` and :data:`ARCHIVE_CHECKSUM`, the official release.

    Returns:
        The unpacked ``root/CIFAR-10-C`` folder.
    """
    from torchvision.datasets.utils import download_url

    url = url or ARCHIVE_URL
    checksum = checksum or ARCHIVE_CHECKSUM
    root = Path(root).expanduser()
    name = url.rsplit("/", 1)[-1]
    logger.info("downloading CIFAR-10-C from %s into %s", url, root)
    md5 = checksum.digest if checksum.algorithm == "md5" else None
    download_url(url, str(root), filename=name, md5=md5)  # re-downloads a damaged file; raises unless it matches
    if md5 is None:
        verify_file(root / name, checksum)
    with tempfile.TemporaryDirectory(dir=root, prefix=".unpacking-") as tmp:  # a killed job leaves no half folder
        with tarfile.open(root / name) as archive:
            archive.extractall(tmp, filter="data")
        write_sums(Path(tmp) / FOLDER)
        os.replace(Path(tmp) / FOLDER, root / FOLDER)
    (root / name).unlink()
    return root / FOLDER


@functools.lru_cache(maxsize=8)
def _warn_unchecked(folder: Path) -> None:
    logger.warning(
        "%s has no %s: reading its files unchecked (unpack the archive with download_archive)", folder, SUMS_FILE
    )


def read_archive(
    folder: str | os.PathLike[str],
    name: str,
    severity: int,
    indices: np.ndarray,
    checksums: Mapping[str, Checksum] | None = None,
) -> np.ndarray:
    """Rows of ``<name>.npy`` at ``severity`` for CIFAR-10 test ``indices`` (uint8 ``[n, 32, 32, 3]``).

    Args:
        checksums: file name -> checksum; default: the folder's ``SHA256SUMS`` (unchecked, with a warning, if the
            folder has none).

    Raises:
        ChecksumError: a file differs from its checksum, or the table lists no checksum for it.
        ValueError: the arrays are not CIFAR-10-C shaped, or an index is outside the test split.
    """
    folder = Path(folder)
    table = read_sums(folder) if checksums is None else dict(checksums)
    for file in (f"{name}.npy", "labels.npy"):
        if table:
            if file not in table:
                raise ChecksumError(f"{folder}: no checksum listed for {file}; unpack the archive again")
            verify_file(folder / file, table[file])
        else:
            _warn_unchecked(folder)
    data = np.load(folder / f"{name}.npy", mmap_mode="r", allow_pickle=False)
    labels = np.load(folder / "labels.npy", mmap_mode="r", allow_pickle=False)
    n, rest = divmod(data.shape[0], len(SEVERITIES))
    if data.dtype != np.uint8 or data.shape[1:] != (32, 32, 3) or rest or labels.shape != (data.shape[0],):
        raise ValueError(
            f"{folder / name}.npy holds {data.dtype} {data.shape} with {labels.shape[0]} labels; expected uint8 "
            f"[5 * n, 32, 32, 3] and 5 * n labels"
        )
    indices = np.asarray(indices, dtype=np.int64)
    if indices.size and (indices.min() < 0 or indices.max() >= n):
        raise ValueError(f"indices must be within 0..{n - 1} (the test split), got {indices.min()}..{indices.max()}")
    return np.ascontiguousarray(data[(severity - 1) * n + indices])


def generate(test_images: np.ndarray, name: str, severity: int, indices: np.ndarray, seed: int = 0) -> np.ndarray:
    """CIFAR-10-C-style images made by the project's corruptions from the test images at ``indices``."""
    return corrupt_images(np.ascontiguousarray(test_images[np.asarray(indices)]), name, severity, seed)


def cifar10c_images(
    name: str,
    severity: int,
    indices: np.ndarray,
    *,
    roots: Iterable[str | os.PathLike[str]] = (),
    download_root: str | os.PathLike[str] | None = None,
    seed: int = 0,
    checksums: Mapping[str, Checksum] | None = None,
) -> np.ndarray:
    """CIFAR-10-C ``name`` at ``severity`` for test ``indices``: read from the archive, else generated.

    Looks for ``CIFAR-10-C/`` under each of ``roots``; if none has it and ``download_root`` is given, downloads the
    release there (checked); if that fails too, generates the images (see the module docstring) with ``seed``.

    Returns:
        uint8 ``[len(indices), 32, 32, 3]``.
    """
    _check_name(name)
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be an integer in 1..5, got {severity!r}")
    roots = [Path(r) for r in roots]
    folder = find_archive(roots)
    if folder is None and download_root is not None:
        try:
            folder = download_archive(download_root)
        except Exception as err:  # no network, a moved record, a damaged download: fall back to generating
            logger.warning("could not download CIFAR-10-C into %s (%s: %s)", download_root, type(err).__name__, err)
    if folder is not None:
        return read_archive(folder, name, severity, indices, checksums)
    from experiments.data.cifar10 import load_cifar10

    logger.warning(
        "CIFAR-10-C not found under %s: generating %s s%d with imagecorruptions (not the released files; put the "
        "unpacked CIFAR-10-C/ folder under one of them to use the release)",
        ", ".join(map(str, roots)) or "(no folder given)",
        name,
        severity,
    )
    return generate(load_cifar10("test")[0], name, severity, indices, seed)
