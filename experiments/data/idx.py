"""Read and write the IDX format of MNIST-style datasets (optionally gzipped), with numpy only.

Hand-written because the format is tiny and the loader must work without torchvision or network access.
Format: 2 zero bytes, a dtype code, the number of dimensions, one big-endian uint32 per dimension, then the
data in C order (big-endian for multi-byte dtypes).
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {dt.newbyteorder(">") if dt.itemsize > 1 else dt: code for code, dt in _DTYPES.items()}


class IdxFormatError(ValueError):
    """Raised when a file is not a valid IDX file (truncated download, wrong file, HTML error page...)."""


def _open(path: Path, mode: str):
    return gzip.open(path, mode) if path.suffix == ".gz" else open(path, mode)


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (``.gz`` is decompressed) into a native-endian numpy array.

    Raises:
        IdxFormatError: If the header is malformed or the payload size does not match it. Delete the
            file and fetch it again.
    """
    path = Path(path)
    try:
        with _open(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError) as err:  # gzip raises BadGzipFile (an OSError) or EOFError on truncation
        raise IdxFormatError(f"cannot read {path}: {err}. Delete it and fetch it again.") from err
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise IdxFormatError(f"{path} is not an IDX file (bad magic {raw[:4].hex()}). Delete it and fetch it again.")
    dtype, ndim = _DTYPES[raw[2]], raw[3]
    header_end = 4 + 4 * ndim
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header_end != expected:
        raise IdxFormatError(
            f"{path}: header says shape {shape} ({expected} bytes) but the payload has "
            f"{len(raw) - header_end} bytes. The file is truncated or corrupt; delete it and fetch it again."
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header_end).reshape(shape)
    return data.astype(dtype.newbyteorder("="), copy=True)


def write_idx(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Write ``array`` as an IDX file (gzipped when the name ends in ``.gz``); used for caches and tests."""
    path = Path(path)
    arr = np.asarray(array)
    big = arr.dtype.newbyteorder(">") if arr.dtype.itemsize > 1 else arr.dtype
    if big not in _CODES:
        raise ValueError(f"IDX cannot store dtype {arr.dtype}; use one of uint8, int8, int16, int32, float32, float64")
    header = bytes([0, 0, _CODES[big], arr.ndim]) + np.asarray(arr.shape, dtype=">u4").tobytes()
    with _open(path, "wb") as fh:
        fh.write(header + arr.astype(big, copy=False).tobytes(order="C"))
