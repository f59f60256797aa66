"""Tiny CIFAR-10 and CIFAR-10-C copies in the official on-disk formats, with their checksums as a release table.

Importable helpers (pytest's conftest is not): the CIFAR tests and the data-spec tests write the same files.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import pickle
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from experiments.data.checksums import Checksum, file_digest
from experiments.data.cifar10 import BATCH_FOLDER, Cifar10Release

TRAIN_BATCHES = (("data_batch_1", 12), ("data_batch_2", 12))
TEST_BATCHES = (("test_batch", 20),)


@dataclass(frozen=True)
class SyntheticCifar:
    """What was written: the cache folder, the release table of its files, and the images as written."""

    root: Path
    release: Cifar10Release
    train: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray]


def md5(path: Path) -> Checksum:
    return Checksum("md5", file_digest(path, "md5"))


def write_batch(path: Path, images: np.ndarray, labels: np.ndarray) -> None:
    """One python batch as the release stores it: a pickled dict, images as uint8 rows of R, G, B planes."""
    entry = {
        "batch_label": f"synthetic {path.name}",
        "labels": [int(v) for v in labels],
        "data": np.ascontiguousarray(images.transpose(0, 3, 1, 2).reshape(len(images), 3072)),
        "filenames": [f"img_{i}.png" for i in range(len(images))],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(entry, protocol=2))


def write_cifar10(root: Path, seed: int = 0) -> SyntheticCifar:
    """``root/cifar-10-batches-py/`` with 24 training and 20 test images, and a release listing their MD5s."""
    rng = np.random.default_rng(seed)
    tables: dict[str, list[tuple[str, Checksum]]] = {"train": [], "test": []}
    arrays: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {"train": [], "test": []}
    for split, batches in (("train", TRAIN_BATCHES), ("test", TEST_BATCHES)):
        for name, n in batches:
            images = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
            labels = rng.integers(0, 10, size=n)
            write_batch(root / BATCH_FOLDER / name, images, labels)
            tables[split].append((name, md5(root / BATCH_FOLDER / name)))
            arrays[split].append((images, labels))
    release = Cifar10Release(
        train_batches=tuple(tables["train"]),
        test_batches=tuple(tables["test"]),
        train_size=sum(n for _, n in TRAIN_BATCHES),
        test_size=sum(n for _, n in TEST_BATCHES),
    )
    joined = {s: (np.concatenate([a[0] for a in v]), np.concatenate([a[1] for a in v])) for s, v in arrays.items()}
    return SyntheticCifar(root=root, release=release, train=joined["train"], test=joined["test"])


def write_cifar10c(root: Path, names: tuple[str, ...], n_test: int, seed: int = 1) -> dict[str, Checksum]:
    """``root/CIFAR-10-C/<name>.npy`` (5 severities x ``n_test`` images) and ``labels.npy``; returns their SHA-256."""
    rng = np.random.default_rng(seed)
    folder = root / "CIFAR-10-C"
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        np.save(folder / f"{name}.npy", rng.integers(0, 256, size=(5 * n_test, 32, 32, 3), dtype=np.uint8))
    np.save(folder / "labels.npy", np.tile(rng.integers(0, 10, size=n_test), 5))
    return {p.name: Checksum("sha256", file_digest(p, "sha256")) for p in folder.glob("*.npy")}


def tar_folder(folder: Path, archive: Path, mode: str = "w:gz") -> Path:
    """Pack ``folder`` (as its own name at the top level) into ``archive``, like the released archives."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, mode) as tar:
        tar.add(folder, arcname=folder.name)
    return archive


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def serve(folder: Path) -> Iterator[str]:
    """Serve ``folder`` over HTTP on localhost (the downloaders' real code path, offline); yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
