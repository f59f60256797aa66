"""Every key of the ``paper`` set reaches the code that loads data and weights, and what is left unimplemented fails
at load time with the fix."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import timm
from synthetic_cifar import SyntheticCifar, write_cifar10, write_cifar10c

from experiments.config import UnsupportedConfigError
from experiments.corruption import CorruptionConfig, build_corrupted_set
from experiments.data import DataSpec, load_split
from experiments.data import cifar10 as cifar10_module
from experiments.data.cifar10c import write_sums
from experiments.data.fashion_mnist import DATA_ENV_VAR
from experiments.data.study_images import study_images
from experiments.models.zoo import build
from experiments.workflow_config import load_config_set

CIFAR = DataSpec(dataset="cifar10", n_calib=8, n_heldout=12)


@pytest.fixture
def cifar(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SyntheticCifar:
    synthetic = write_cifar10(tmp_path / "data")
    monkeypatch.setenv(DATA_ENV_VAR, str(synthetic.root))
    monkeypatch.setattr(cifar10_module, "CIFAR10_RELEASE", synthetic.release)
    return synthetic


def test_the_paper_set_names_cifar10_and_pretrained_hub_weights() -> None:
    paper = load_config_set("paper")
    assert paper.data.dataset == "cifar10" and paper.data.split_sizes() == {"train": 50_000, "test": 10_000}
    assert len(paper.data.splits().train) == 50_000  # CIFAR-10's train split, not Fashion-MNIST's 60,000
    assert {spec.arch for spec in paper.models.values()} == {"resnet18", "vit_small"}
    assert all(spec.pretrained and spec.weights_file is None and spec.in_chans == 3 for spec in paper.models.values())
    assert paper.corruption.source == "cifar10c"


def test_the_paper_sets_models_build_from_timms_hub_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    hub_ids = []
    monkeypatch.setattr(
        timm.models._builder, "load_pretrained", lambda m, pretrained_cfg=None, **k: hub_ids.append(pretrained_cfg)
    )
    paper = load_config_set("paper")
    resnet = build(paper.models["resnet"], paper.data)
    assert resnet.conv1.kernel_size == (7, 7) and resnet.conv1.stride == (1, 1)  # pretrained stem, CIFAR stride
    vit = build(paper.models["vit"], paper.data)
    assert vit.patch_embed.proj.kernel_size == (4, 4) and vit.embed_dim == 384
    assert [c["hf_hub_id"].split("/")[1].split(".")[0] for c in hub_ids] == ["resnet18", "vit_small_patch16_224"]


def test_every_study_sees_cifar10_images(cifar: SyntheticCifar, tmp_path: Path) -> None:
    np.testing.assert_array_equal(load_split(CIFAR, "test")[0], cifar.test[0])
    images = study_images(CIFAR, channels=3, n_heldout=6, seed=0)  # fault localisation and streams
    assert images.heldout.shape == (6, 3, 32, 32) and images.calib.shape == (8, 3, 32, 32)
    assert (images.mean, images.std) == (cifar10_module.MEAN, cifar10_module.STD)
    study = {"models": ["cnn"], "corruptions": ["contrast"], "severities": [2], "n_images": 6, "batch_sizes": [2]}
    study |= {"profile_batch_size": 2, "mri_severity": 2}
    manifest = build_corrupted_set(
        CIFAR, CorruptionConfig.from_config(study), tmp_path / "cache", tmp_path / "manifest.json"
    )
    corrupted = np.load(manifest["entries"][0]["file"])
    assert corrupted.shape == (6, 32, 32, 3) and manifest["dataset"] == "cifar10"


def test_source_cifar10c_reads_the_released_archive(cifar: SyntheticCifar, tmp_path: Path) -> None:
    write_cifar10c(cifar.root, ("contrast",), n_test=20)
    write_sums(cifar.root / "CIFAR-10-C")
    study = {"models": ["cnn"], "corruptions": ["contrast"], "severities": [2], "n_images": 6, "batch_sizes": [2]}
    study |= {"profile_batch_size": 2, "mri_severity": 2, "source": "cifar10c"}
    manifest = build_corrupted_set(
        CIFAR, CorruptionConfig.from_config(study), tmp_path / "cache", tmp_path / "manifest.json"
    )
    released = np.load(cifar.root / "CIFAR-10-C" / "contrast.npy")
    np.testing.assert_array_equal(np.load(manifest["entries"][0]["file"]), released[20 + np.array(manifest["indices"])])


def test_cifar10_at_another_size_is_refused_where_the_config_loads() -> None:
    with pytest.raises(UnsupportedConfigError, match=r"data\.img_size=64 with dataset cifar10 is not implemented"):
        DataSpec.from_config({"dataset": "cifar10", "img_size": 64})
