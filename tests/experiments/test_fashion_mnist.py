"""The Fashion-MNIST loader reads the real Debian files and falls back to local caches."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from experiments.data import fashion_mnist as fm
from experiments.data.idx import IdxFormatError, read_idx, write_idx

FILES = [f"{p}-{k}-ubyte.gz" for p in ("train", "t10k") for k in ("images-idx3", "labels-idx1")]


@pytest.mark.parametrize(("split", "n"), [("train", 60_000), ("test", 10_000)])
def test_reads_debian_files(split: str, n: int) -> None:
    images, labels = fm.load_fashion_mnist(split)
    assert images.shape == (n, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (n,) and labels.dtype == np.int64
    assert set(np.unique(labels)) == set(range(10))
    assert np.bincount(labels).tolist() == [n // 10] * 10  # balanced classes
    assert not images.flags.writeable


def test_normalisation_constants_match_train_split() -> None:
    images, _ = fm.load_fashion_mnist("train")
    pixels = images.astype(np.float64) / 255.0
    assert pixels.mean() == pytest.approx(fm.MEAN, abs=1e-6)
    assert pixels.std() == pytest.approx(fm.STD, abs=1e-6)


def test_dataset_is_padded_normalised_and_repeated() -> None:
    ds = fm.fashion_mnist_dataset("train", indices=np.arange(2000), channels=3)
    x, y = ds.tensors
    assert x.shape == (2000, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert torch.equal(x[:, 0], x[:, 2])
    assert torch.allclose(x[:, :, :2, :], torch.tensor(-fm.MEAN / fm.STD))  # padding is background
    inner = x[:, 0, 2:30, 2:30]
    assert inner.mean().item() == pytest.approx(0.0, abs=0.05)
    assert inner.std().item() == pytest.approx(1.0, abs=0.05)


def test_falls_back_to_cache_folder_in_torchvision_layout(tmp_path: Path, monkeypatch, fmnist_test) -> None:
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for name in FILES:
        (raw / name).symlink_to(fm.DEBIAN_DIR / name)
    monkeypatch.setattr(fm, "DEBIAN_DIR", tmp_path / "missing")
    monkeypatch.setenv(fm.DATA_ENV_VAR, str(tmp_path))
    images, labels = fm.load_fashion_mnist("test", download=False)
    np.testing.assert_array_equal(images, fmnist_test[0])
    np.testing.assert_array_equal(labels, fmnist_test[1])


def test_torchvision_source_reads_extracted_files_offline(tmp_path: Path, fmnist_test) -> None:
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for name in FILES:
        target = raw / name.removesuffix(".gz")
        if name.startswith("t10k"):
            with gzip.open(fm.DEBIAN_DIR / name) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
        else:
            target.touch()  # torchvision only checks that the train files exist
    images, labels = fm._from_torchvision(tmp_path, "test")
    np.testing.assert_array_equal(images, fmnist_test[0])
    np.testing.assert_array_equal(labels, fmnist_test[1])


def test_error_lists_every_source_and_a_fix(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(fm, "DEBIAN_DIR", tmp_path / "missing")

    def offline(*_):
        raise ConnectionError("no network")

    monkeypatch.setattr(fm, "_from_torchvision", offline)
    monkeypatch.setattr(fm, "_from_huggingface", offline)
    with pytest.raises(fm.DatasetUnavailableError) as err:
        fm.load_fashion_mnist("test", root=tmp_path / "cache")
    message = str(err.value)
    for needle in ("Debian package", "cache folder", "torchvision", "Hugging Face", "apt-get install"):
        assert needle in message
    with pytest.raises(fm.DatasetUnavailableError, match="cache folder") as err:
        fm.load_fashion_mnist("test", root=tmp_path / "cache2", download=False)
    assert "torchvision" not in str(err.value).split("Fix:")[0]


def test_idx_round_trip_and_truncation(tmp_path: Path) -> None:
    arr = np.arange(2 * 3 * 4, dtype=np.int32).reshape(2, 3, 4)
    write_idx(tmp_path / "a.gz", arr)
    np.testing.assert_array_equal(read_idx(tmp_path / "a.gz"), arr)
    write_idx(tmp_path / "b", arr.astype(np.uint8))
    data = (tmp_path / "b").read_bytes()
    (tmp_path / "b").write_bytes(data[:-1])
    with pytest.raises(IdxFormatError, match="truncated"):
        read_idx(tmp_path / "b")
    (tmp_path / "c").write_bytes(b"<html>not found</html>")
    with pytest.raises(IdxFormatError, match="not an IDX file"):
        read_idx(tmp_path / "c")
