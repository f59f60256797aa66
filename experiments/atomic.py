"""Atomic, reproducible file writes: a killed job never leaves a half-written file behind, and the same data always
gives the same bytes (no time stamps, no temporary names inside compressed files)."""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import torch

ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
"""Date stamped on every member of an archive written here (zip's earliest; ``np.savez`` stamps the current time)."""


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
    """Write ``frame`` as CSV without its index, atomically; a ``.gz`` suffix compresses it.

    The bytes depend on the frame alone: ``\\n`` line ends everywhere, and a gzip header without the time or the
    (temporary, random) file name that gzip stores by default.
    """
    with atomic_path(path) as tmp:
        if not str(path).endswith(".gz"):
            frame.to_csv(tmp, index=False, lineterminator="\n")
            return
        with (
            open(tmp, "wb") as raw,
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as packed,
            io.TextIOWrapper(packed, encoding="utf-8", newline="") as text,
        ):
            frame.to_csv(text, index=False, lineterminator="\n")


def write_npz(path: str | os.PathLike[str], **arrays: np.ndarray) -> None:
    """``np.savez_compressed`` with reproducible bytes, atomically: members in argument order, fixed dates.

    ``np.load`` reads it like any ``.npz``. Object arrays are refused (they would need pickle).
    """
    import numpy as np

    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
        for name, array in arrays.items():
            member = zipfile.ZipInfo(f"{name}.npy", date_time=ZIP_EPOCH)
            member.compress_type = zipfile.ZIP_DEFLATED
            with archive.open(member, "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, np.asanyarray(array), allow_pickle=False)


def write_safetensors(
    tensors: Mapping[str, torch.Tensor], path: str | os.PathLike[str], metadata: Mapping[str, str] | None = None
) -> None:
    """``safetensors.torch.save_file`` with reproducible bytes, atomically.

    safetensors writes ``__metadata__`` from a hash map whose order changes from call to call, so two saves of the
    same weights with two or more metadata keys differ in their header; here the keys are sorted. ``load_file``
    reads the result like any safetensors file.
    """
    from safetensors.torch import save

    blob = save({name: t.contiguous() for name, t in tensors.items()}, metadata=dict(metadata) if metadata else None)
    length = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8 : 8 + length])
    if "__metadata__" in header:
        header = {"__metadata__": dict(sorted(header.pop("__metadata__").items())), **header}
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-len(text) % 8)  # the data section stays 8-byte aligned, as safetensors writes it
    with atomic_path(path) as tmp:
        tmp.write_bytes(len(text).to_bytes(8, "little") + text + blob[8 + length :])
