"""Keys the paper set names but this version cannot honour fail loudly where data or weights are loaded."""

from __future__ import annotations

from pathlib import Path

import pytest

from experiments.config import UnsupportedConfigError
from experiments.corruption import build_corrupted_heldout
from experiments.data import DataSpec, load_split, split_dataset
from experiments.localisation.data import study_images
from experiments.models.training import TrainConfig
from experiments.models.zoo import ModelSpec, build, train_model
from experiments.workflow_config import load_config_set

CIFAR = DataSpec(dataset="cifar10", n_calib=64, n_heldout=64)
TINY = ModelSpec(key="cnn", arch="small_cnn", train=TrainConfig(steps=2, batch_size=8))
MESSAGE = "data.dataset='cifar10' is not implemented in this version"


def test_the_data_spec_loads_cifar10_but_loading_its_images_refuses_it() -> None:
    assert DataSpec.from_config({"dataset": "cifar10"}).dataset == "cifar10"
    with pytest.raises(UnsupportedConfigError, match=MESSAGE):
        load_split(CIFAR, "test")
    with pytest.raises(UnsupportedConfigError, match="use the default or test config set"):
        split_dataset(CIFAR, "train", [0, 1], channels=3)


def test_training_on_cifar10_fails_instead_of_training_on_fashion_mnist(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedConfigError, match=MESSAGE):
        train_model(TINY, CIFAR, tmp_path / "w.safetensors", tmp_path / "m.json")
    assert not list(tmp_path.iterdir())


def test_every_study_refuses_cifar10_images(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedConfigError, match=MESSAGE):
        study_images(CIFAR, channels=3, n_heldout=16, seed=0)  # fault localisation and streams
    study = {
        "models": ["cnn"],
        "corruptions": ["contrast"],
        "severities": [2],
        "n_images": 6,
        "batch_sizes": [1, 2],
        "profile_batch_size": 2,
        "mri_severity": 2,
    }
    with pytest.raises(UnsupportedConfigError, match=MESSAGE):
        build_corrupted_heldout(
            {"dataset": "cifar10", "n_calib": 64, "n_heldout": 64},
            study,
            tmp_path / "cache",
            tmp_path / "manifest.json",
        )


def test_pretrained_weights_are_refused_where_the_model_is_built() -> None:
    spec = ModelSpec.from_config("resnet", {"arch": "resnet18", "pretrained": True})
    with pytest.raises(UnsupportedConfigError, match=r"models.resnet.pretrained=true is not implemented"):
        build(spec, DataSpec())


def test_the_paper_set_loads_and_then_refuses_to_run() -> None:
    paper = load_config_set("paper")
    with pytest.raises(UnsupportedConfigError, match=MESSAGE):
        load_split(paper.data, "train")
    with pytest.raises(UnsupportedConfigError, match="pretrained=true"):
        build(next(iter(paper.models.values())), DataSpec())
