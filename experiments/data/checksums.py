"""File checksums for downloaded datasets: one table per release, one verification path for every file.

A release's table maps a file's path (relative to the dataset folder) to its :class:`Checksum`. The loaders take
the table as an argument, so tests pass the digests of their own small files through exactly the code that checks
the official ones.

Example:
    >>> from pathlib import Path
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "hello.txt"
    >>> _ = path.write_bytes(b"hello")
    >>> verify_file(path, Checksum("md5", "5d41402abc4b2a76b9719d911017c592"))
    >>> verify_file(path, Checksum("md5", "0" * 32))
    Traceback (most recent call last):
    ...
    experiments.data.checksums.ChecksumError: ...hello.txt: md5 is 5d41402abc4b2a76b9719d911017c592, expected 000...
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Algorithm = Literal["md5", "sha256"]
_CHUNK = 1 << 22


class ChecksumError(ValueError):
    """A file whose digest differs from its release's table: damaged, truncated, or not the official file."""


@dataclass(frozen=True)
class Checksum:
    """The expected digest of one file.

    Attributes:
        algorithm: ``md5`` (what the CIFAR releases publish) or ``sha256``.
        digest: lower-case hex digest.
    """

    algorithm: Algorithm
    digest: str

    def __post_init__(self) -> None:
        if self.algorithm not in ("md5", "sha256"):
            raise ValueError(f"algorithm must be 'md5' or 'sha256', got {self.algorithm!r}")
        length = {"md5": 32, "sha256": 64}[self.algorithm]
        if len(self.digest) != length or any(c not in "0123456789abcdef" for c in self.digest):
            raise ValueError(f"a {self.algorithm} digest is {length} lower-case hex digits, got {self.digest!r}")


def file_digest(path: str | os.PathLike[str], algorithm: Algorithm = "sha256") -> str:
    """Hex digest of a file, read in chunks (the CIFAR-10-C files are 150 MB each)."""
    return _cached_digest(Path(path).resolve(), algorithm, *_signature(Path(path)))


def _signature(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


@functools.lru_cache(maxsize=256)
def _cached_digest(path: Path, algorithm: str, size: int, mtime_ns: int) -> str:
    """Memoised on (path, size, mtime): a study reads the same 150 MB file once per severity."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify_file(path: str | os.PathLike[str], expected: Checksum) -> None:
    """Raise unless ``path`` has the ``expected`` digest.

    Raises:
        FileNotFoundError: the file is missing.
        ChecksumError: the digest differs; the message says how to recover.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    actual = file_digest(path, expected.algorithm)
    if actual != expected.digest:
        raise ChecksumError(
            f"{path}: {expected.algorithm} is {actual}, expected {expected.digest}. The file is damaged, truncated "
            "or not the official release: delete it and download it again"
        )
