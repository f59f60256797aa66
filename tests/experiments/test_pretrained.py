"""``models.<key>.pretrained`` and ``weights_file``: timm's weights from a local file load exactly, offline."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import load_file, save_file
from synthetic_cifar import SyntheticCifar, write_cifar10

from experiments.config import ConfigError
from experiments.data import DataSpec
from experiments.data import cifar10 as cifar10_module
from experiments.data.fashion_mnist import DATA_ENV_VAR
from experiments.models import build_model
from experiments.models.factory import WeightsFileError
from experiments.models.training import TrainConfig
from experiments.models.zoo import ModelSpec, build, load_model, train_model

BACKBONE = "layer1.0.conv1.weight"


def _save_timm(path: Path, name: str = "test_resnet", **kwargs) -> dict[str, torch.Tensor]:
    """A timm model's state dict as a hub file would hold it (ImageNet head unless ``num_classes`` is given)."""
    torch.manual_seed(123)
    state = {k: v.contiguous() for k, v in timm.create_model(name, pretrained=False, **kwargs).state_dict().items()}
    save_file(state, str(path))
    return state


@pytest.fixture
def weights(tmp_path: Path) -> tuple[Path, dict[str, torch.Tensor]]:
    path = tmp_path / "test_resnet.safetensors"
    return path, _save_timm(path)


@pytest.fixture
def cifar(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SyntheticCifar:
    synthetic = write_cifar10(tmp_path / "data")
    monkeypatch.setenv(DATA_ENV_VAR, str(synthetic.root))
    monkeypatch.setattr(cifar10_module, "CIFAR10_RELEASE", synthetic.release)
    return synthetic


def _spec(**cfg) -> ModelSpec:
    return ModelSpec.from_config("net", {"arch": "test_resnet", "in_chans": 3, **cfg})


def test_a_local_weights_file_loads_those_exact_weights_and_a_new_head(weights) -> None:
    path, state = weights
    model = build(_spec(pretrained=True, weights_file=str(path)), DataSpec())
    own = model.state_dict()
    assert torch.equal(own[BACKBONE], state[BACKBONE])
    assert all(torch.equal(own[k], v) for k, v in state.items() if not k.startswith("fc."))
    assert state["fc.weight"].shape[0] == 1000 and own["fc.weight"].shape[0] == 10  # ImageNet head replaced
    scratch = build(_spec(), DataSpec())
    assert not torch.equal(scratch.state_dict()[BACKBONE], state[BACKBONE])


def test_pth_files_are_read_without_unpickling_code(tmp_path: Path, weights) -> None:
    _, state = weights
    torch.save({"state_dict": state}, tmp_path / "w.pth")
    model = build_model("test_resnet", in_chans=3, pretrained=True, weights_file=tmp_path / "w.pth")
    assert torch.equal(model.state_dict()[BACKBONE], state[BACKBONE])
    torch.save({"state_dict": state, "extra": Path("x")}, tmp_path / "unsafe.pth")  # needs a full unpickle
    with pytest.raises(WeightsFileError, match="cannot read weights"):
        build_model("test_resnet", in_chans=3, pretrained=True, weights_file=tmp_path / "unsafe.pth")


def test_missing_or_mismatched_weights_fail_with_the_fix(tmp_path: Path) -> None:
    missing = _spec(pretrained=True, weights_file=str(tmp_path / "nowhere.safetensors"))
    with pytest.raises(WeightsFileError, match=r"nowhere\.safetensors' does not exist.*huggingface-cli download"):
        build(missing, DataSpec())
    _save_timm(tmp_path / "vit.safetensors", "test_vit")
    with pytest.raises(WeightsFileError, match="does not fit"):
        build(_spec(pretrained=True, weights_file=str(tmp_path / "vit.safetensors")), DataSpec())
    with pytest.raises(WeightsFileError, match="no pretrained weights on the hub"):
        build_model("resnet20", pretrained=True)


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        ({"weights_file": "w.safetensors"}, r"models\.net: weights_file .* set pretrained: true"),
        ({"pretrained": True, "weights_file": "w.pkl"}, r"models\.net: weights_file 'w\.pkl' must end with"),
        ({"pretrained": "yes"}, r"models\.net\.pretrained: expected true or false"),
    ],
)
def test_the_config_refuses_inconsistent_weight_keys_at_load_time(cfg: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _spec(**cfg)


def test_pretrained_true_asks_timm_for_its_hub_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = {}

    def offline_load(model, pretrained_cfg=None, **kwargs) -> None:  # stands in for the hub download
        seen["cfg"] = pretrained_cfg

    monkeypatch.setattr(timm.models._builder, "load_pretrained", offline_load)
    build(_spec(pretrained=True), DataSpec())
    assert seen["cfg"]["hf_hub_id"].startswith("timm/") and seen["cfg"].get("state_dict") is None


def test_small_image_recipes_keep_pretrained_stems_and_resample_patches(tmp_path: Path) -> None:
    state = _save_timm(tmp_path / "vit.safetensors", "vit_tiny_patch16_224")
    vit = build_model("vit_tiny", in_chans=3, pretrained=True, weights_file=tmp_path / "vit.safetensors")
    assert vit.patch_embed.proj.weight.shape[-2:] == (4, 4) and state["patch_embed.proj.weight"].shape[-1] == 16
    assert torch.equal(vit.state_dict()["blocks.0.attn.qkv.weight"], state["blocks.0.attn.qkv.weight"])
    assert vit.eval()(torch.randn(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.slow
def test_fine_tuning_a_pretrained_model_on_cifar10_and_reloading_it_offline(
    tmp_path: Path, weights, cifar: SyntheticCifar
) -> None:
    path, state = weights
    spec = _spec(pretrained=True, weights_file=str(path), train={"steps": 2, "batch_size": 8})
    data = DataSpec(dataset="cifar10", n_calib=8, n_heldout=12)
    metrics = train_model(spec, data, tmp_path / "m.safetensors", tmp_path / "m.json")
    assert metrics["steps"] == 2 and metrics["initial_weights"] == str(path)
    trained = load_file(str(tmp_path / "m.safetensors"))
    assert not torch.equal(trained[BACKBONE], state[BACKBONE])  # fine-tuned from the file's weights
    reloaded = load_model(spec, data, tmp_path / "m.safetensors").state_dict()
    assert all(torch.equal(reloaded[k], v) for k, v in trained.items())
    assert json.loads((tmp_path / "m.json").read_text())["data"]["dataset"] == "cifar10"


def test_zero_training_steps_keep_a_files_weights_as_they_are(
    tmp_path: Path, cifar: SyntheticCifar, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = _save_timm(tmp_path / "cifar_head.safetensors", num_classes=10)
    with pytest.raises(ValueError, match="needs weights_file"):
        ModelSpec(key="net", arch="test_resnet", pretrained=True, train=_zero_steps(monkeypatch))
    spec = ModelSpec(
        key="net",
        arch="test_resnet",
        in_chans=3,
        pretrained=True,
        weights_file=str(tmp_path / "cifar_head.safetensors"),
        train=_zero_steps(monkeypatch),
    )
    data = DataSpec(dataset="cifar10", n_calib=8, n_heldout=12)
    metrics = train_model(spec, data, tmp_path / "m.safetensors", tmp_path / "m.json")
    assert metrics["steps"] == 0
    written = load_file(str(tmp_path / "m.safetensors"))
    assert all(torch.equal(written[k], v) for k, v in state.items())  # head included
    imagenet_head = dataclasses.replace(spec, weights_file=str(_imagenet_file(tmp_path)))
    with pytest.raises(ValueError, match=r"train\.steps is 0, but 2 tensors \(fc\.weight, fc\.bias\)"):
        train_model(imagenet_head, data, tmp_path / "h.safetensors", tmp_path / "h.json")


def _imagenet_file(tmp_path: Path) -> Path:
    _save_timm(tmp_path / "imagenet_head.safetensors")
    return tmp_path / "imagenet_head.safetensors"


def _zero_steps(monkeypatch: pytest.MonkeyPatch) -> TrainConfig:
    """``train.steps: 0`` as the training config will accept it (TrainConfig refuses it in this version)."""
    monkeypatch.setattr(TrainConfig, "__post_init__", lambda self: None)
    return TrainConfig(steps=0)
