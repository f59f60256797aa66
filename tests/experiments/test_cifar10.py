"""CIFAR-10 and CIFAR-10-C through the same checks as the official files, on tiny copies in the official formats."""

from __future__ import annotations

import dataclasses
import logging
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from synthetic_cifar import SyntheticCifar, md5, serve, tar_folder, write_cifar10, write_cifar10c

from experiments.corruption.cifar import cifar10c_images as study_cifar10c_images
from experiments.data import DataSpec, corrupt_images, load_split, normalisation, split_dataset
from experiments.data import cifar10 as cifar10_module
from experiments.data import cifar10c as cifar10c_module
from experiments.data.checksums import Checksum, ChecksumError
from experiments.data.cifar10 import (
    BATCH_FOLDER,
    CIFAR10_RELEASE,
    Cifar10Release,
    CifarFormatError,
    load_cifar10,
    read_batch,
)
from experiments.data.cifar10c import SUMS_FILE, cifar10c_images, read_archive, write_sums
from experiments.data.fashion_mnist import DATA_ENV_VAR, DatasetUnavailableError


@pytest.fixture
def cifar(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SyntheticCifar:
    """A tiny CIFAR-10 in the data cache folder, made the default release (as the official one is)."""
    synthetic = write_cifar10(tmp_path / "data")
    monkeypatch.setenv(DATA_ENV_VAR, str(synthetic.root))
    monkeypatch.setattr(cifar10_module, "CIFAR10_RELEASE", synthetic.release)
    return synthetic


def test_the_official_table_lists_every_batch_with_its_published_md5() -> None:
    names = [name for name, _ in CIFAR10_RELEASE.train_batches + CIFAR10_RELEASE.test_batches]
    assert names == [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    assert CIFAR10_RELEASE.split_sizes == {"train": 50_000, "test": 10_000}
    assert CIFAR10_RELEASE.archive_checksum == Checksum("md5", "c58f30108f718f92721af3b95e74349a")


def test_the_batches_load_as_channels_last_rgb(cifar: SyntheticCifar) -> None:
    images, labels = load_cifar10("test", download=False)
    assert images.shape == (20, 32, 32, 3) and images.dtype == np.uint8 and not images.flags.writeable
    np.testing.assert_array_equal(images, cifar.test[0])
    np.testing.assert_array_equal(labels, cifar.test[1])
    train, _ = load_cifar10("train", cifar.root, download=False, release=cifar.release)
    np.testing.assert_array_equal(train, cifar.train[0])


def test_dataset_cifar10_gives_colour_32x32_inputs_normalised_with_cifars_statistics(cifar: SyntheticCifar) -> None:
    data = DataSpec(dataset="cifar10", n_calib=8, n_heldout=12)
    splits = data.splits()
    assert len(splits.train) == 24 and len(np.union1d(splits.calib, splits.heldout)) == 20
    x, y = split_dataset(data, "train", splits.train, channels=3).tensors
    assert x.shape == (24, 3, 32, 32) and x.dtype == torch.float32
    mean, std = normalisation(data)
    assert (mean, std) == (cifar10_module.MEAN, cifar10_module.STD)
    expected = (torch.tensor(cifar.train[0][3]).permute(2, 0, 1).float() / 255 - mean) / std
    torch.testing.assert_close(x[3], expected)
    np.testing.assert_array_equal(y.numpy(), cifar.train[1])
    np.testing.assert_array_equal(load_split(data, "test")[0], cifar.test[0])
    grey = split_dataset(DataSpec(), "test", [0, 1], channels=1).tensors[0]  # fashion_mnist: another dataset
    assert grey.shape == (2, 1, 32, 32)


def test_a_damaged_batch_fails_with_its_digest_and_the_expected_one(cifar: SyntheticCifar) -> None:
    path = cifar.root / BATCH_FOLDER / "test_batch"
    raw = bytearray(path.read_bytes())
    raw[-100] ^= 0xFF
    path.write_bytes(bytes(raw))
    expected = dict(cifar.release.test_batches)["test_batch"]
    with pytest.raises(ChecksumError, match=rf"md5 is [0-9a-f]{{32}}, expected {expected.digest}.*delete it"):
        read_batch(path, expected)
    with pytest.raises(DatasetUnavailableError, match=r"test_batch: md5 is .* expected") as err:
        load_cifar10("test", download=False)
    assert "allow downloads" in str(err.value)


def test_a_batch_that_would_run_code_is_refused_even_with_a_matching_checksum(tmp_path: Path) -> None:
    target = tmp_path / "should_not_exist"

    class Payload:
        def __reduce__(self):
            return os.mkdir, (str(target),)

    path = tmp_path / "test_batch"
    path.write_bytes(pickle.dumps({"data": Payload(), "labels": []}, protocol=2))
    with pytest.raises(CifarFormatError, match=r"refusing to load .*mkdir"):
        read_batch(path, md5(path))
    assert not target.exists()


def test_the_download_path_checks_the_archive_before_unpacking(tmp_path: Path) -> None:
    source = write_cifar10(tmp_path / "source")
    archive = tar_folder(source.root / BATCH_FOLDER, tmp_path / "served" / "cifar-10-python.tar.gz")
    with serve(archive.parent) as url:
        good = Cifar10Release(
            source.release.train_batches,
            source.release.test_batches,
            train_size=24,
            test_size=20,
            archive_url=f"{url}/{archive.name}",
            archive_checksum=md5(archive),
        )
        images, _ = load_cifar10("test", tmp_path / "fresh", download=True, release=good)
        np.testing.assert_array_equal(images, source.test[0])
        bad = dataclasses.replace(good, archive_checksum=Checksum("md5", "0" * 32))
        with pytest.raises(DatasetUnavailableError, match="corrupted"):
            load_cifar10("test", tmp_path / "other", download=True, release=bad)
    assert not (tmp_path / "other" / BATCH_FOLDER).exists()


# ---------------------------------------------------------------------------------------------------- CIFAR-10-C
def test_cifar10c_reads_the_rows_of_a_severity_from_the_archive(tmp_path: Path) -> None:
    sums = write_cifar10c(tmp_path, ("contrast",), n_test=20)
    folder = tmp_path / "CIFAR-10-C"
    indices = np.array([0, 7, 19])
    rows = read_archive(folder, "contrast", 3, indices, checksums=sums)
    np.testing.assert_array_equal(rows, np.load(folder / "contrast.npy")[40 + indices])
    bad = {**sums, "contrast.npy": Checksum("sha256", "0" * 64)}
    with pytest.raises(ChecksumError, match=r"contrast\.npy: sha256 is"):
        read_archive(folder, "contrast", 3, indices, checksums=bad)
    with pytest.raises(ValueError, match=r"within 0\.\.19"):
        read_archive(folder, "contrast", 3, np.array([20]), checksums=sums)


def test_cifar10c_checks_the_files_against_the_sums_written_when_it_was_unpacked(tmp_path: Path) -> None:
    write_cifar10c(tmp_path, ("fog",), n_test=20)
    folder = tmp_path / "CIFAR-10-C"
    write_sums(folder)
    assert (folder / SUMS_FILE).is_file()
    cifar10c_images("fog", 1, np.arange(3), roots=[tmp_path / "elsewhere", tmp_path])
    data = np.load(folder / "fog.npy")
    data[0, 0, 0, 0] ^= 0xFF
    np.save(folder / "fog.npy", data)
    with pytest.raises(ChecksumError, match=r"fog\.npy"):
        cifar10c_images("fog", 1, np.arange(3), roots=[tmp_path])


def test_cifar10c_is_generated_from_the_test_split_when_the_archive_is_absent(
    cifar: SyntheticCifar, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    indices = np.array([2, 5, 11])
    with caplog.at_level(logging.WARNING, logger="experiments.data.cifar10c"):
        out = cifar10c_images("contrast", 4, indices, roots=[tmp_path / "empty"])
    assert "generating contrast s4" in caplog.text
    np.testing.assert_array_equal(out, corrupt_images(cifar.test[0][indices], "contrast", 4, 0))
    assert out.shape == (3, 32, 32, 3) and not np.array_equal(out, cifar.test[0][indices])


def test_cifar10c_download_checks_the_tar_and_falls_back_to_generating(
    cifar: SyntheticCifar, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    write_cifar10c(tmp_path / "release", ("contrast",), n_test=20)
    tar = tar_folder(tmp_path / "release" / "CIFAR-10-C", tmp_path / "served" / "CIFAR-10-C.tar", mode="w")
    with serve(tar.parent) as url:
        monkeypatch.setattr(cifar10c_module, "ARCHIVE_URL", f"{url}/{tar.name}")
        monkeypatch.setattr(cifar10c_module, "ARCHIVE_CHECKSUM", md5(tar))
        rows = cifar10c_images("contrast", 2, np.arange(4), roots=[tmp_path / "dl"], download_root=tmp_path / "dl")
        np.testing.assert_array_equal(rows, np.load(tmp_path / "release" / "CIFAR-10-C" / "contrast.npy")[20:24])
        assert (tmp_path / "dl" / "CIFAR-10-C" / SUMS_FILE).is_file() and not (tmp_path / "dl" / tar.name).exists()

        monkeypatch.setattr(cifar10c_module, "ARCHIVE_CHECKSUM", Checksum("md5", "0" * 32))
        with caplog.at_level(logging.WARNING, logger="experiments.data.cifar10c"):
            out = cifar10c_images("contrast", 2, np.arange(4), roots=[tmp_path / "x"], download_root=tmp_path / "x")
    assert "could not download CIFAR-10-C" in caplog.text and not (tmp_path / "x" / "CIFAR-10-C").exists()
    np.testing.assert_array_equal(out, corrupt_images(cifar.test[0][:4], "contrast", 2, 0))


def test_the_corruption_study_reads_cifar10c_from_the_data_cache(cifar: SyntheticCifar, tmp_path: Path) -> None:
    sums = write_cifar10c(cifar.root, ("snow",), n_test=20)
    write_sums(cifar.root / "CIFAR-10-C")
    assert sums
    rows = study_cifar10c_images(tmp_path / "results" / "cifar10c", "snow", 5, np.array([1, 3]))
    np.testing.assert_array_equal(rows, np.load(cifar.root / "CIFAR-10-C" / "snow.npy")[[81, 83]])
