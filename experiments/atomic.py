"""Atomic file writes, so a killed job never leaves a half-written cache file, checkpoint or result behind."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it onto ``path`` only if the block succeeds.

    The temporary file lives in the destination folder so that ``os.replace`` is a same-filesystem rename
    (atomic on POSIX and Windows). Readers therefore see either the old file or the complete new one.

    Args:
        path: Final destination. Parent folders are created.

    Yields:
        The temporary path to write to (it exists, empty, when the block starts).
    """
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def write_csv(frame: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Write ``frame`` as CSV without its index, atomically; a ``.gz`` suffix compresses it."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, compression="gzip" if str(path).endswith(".gz") else None)
