"""One entry point for every classifier the experiments train: ``build_model(name, ...)``.

By default every model starts from random weights and nothing is downloaded, so the same call works offline.
``pretrained=True`` starts a timm-based model from timm's pretrained weights (downloaded from the Hugging Face hub
by timm), and ``weights_file=`` reads those weights from a local file instead: ``.safetensors`` (read with
safetensors), or ``.pth`` / ``.pt`` / ``.bin`` read with ``torch.load(weights_only=True)``, never a full unpickle.
timm adapts pretrained weights to the model it builds (input channels, a new head for another number of classes,
resampled position embeddings and patch sizes). Names not listed in :data:`CUSTOM_MODELS` go to
``timm.create_model``, so any timm architecture can be dropped into a study by name.
"""

from __future__ import annotations

import difflib
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from experiments.models.small_nets import CifarResNet, small_cnn

logger = logging.getLogger(__name__)

SMALL_INPUT_MAX = 64
"""Up to this image size, ImageNet ResNets get a 3x3 stride-1 stem and no max-pool (the CIFAR recipe);
otherwise a 32x32 image would shrink to 1x1 by ``layer4``."""


WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")
"""Weights files :func:`load_weights_file` reads (safetensors, or torch's zip format with ``weights_only=True``)."""


class WeightsFileError(ValueError):
    """A weights file that is missing, of an unknown format, or does not fit the model it is loaded into."""


def _small_stem(model: nn.Module, in_chans: int, keep_weights: bool = False) -> None:
    """Make a (timm or torchvision) ResNet's stem keep 32x32 resolution: stride 1 and no max-pool, in place.

    From scratch the 7x7/2 conv becomes a fresh 3x3/1 conv (the CIFAR recipe); with ``keep_weights`` (pretrained
    models) the pretrained 7x7 filters stay and only their stride drops to 1.
    """
    if keep_weights:
        model.conv1.stride = (1, 1)
    else:
        width = model.conv1.out_channels
        model.conv1 = nn.Conv2d(in_chans, width, kernel_size=3, stride=1, padding=1, bias=False)
        nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    model.maxpool = nn.Identity()


def _timm_resnet18(num_classes: int, in_chans: int, img_size: int, **weights: Any) -> nn.Module:
    import timm

    model = timm.create_model("resnet18", num_classes=num_classes, in_chans=in_chans, **weights)
    if img_size <= SMALL_INPUT_MAX:
        _small_stem(model, in_chans, keep_weights=weights.get("pretrained", False))
        for info in model.feature_info:  # the stem no longer downsamples by 4: keep the metadata honest
            info["reduction"] = max(1, info["reduction"] // 4)
    return model


def _tv_resnet18(num_classes: int, in_chans: int, img_size: int, **_: Any) -> nn.Module:
    from torchvision.models import resnet18

    model = resnet18(weights=None, num_classes=num_classes)
    if img_size <= SMALL_INPUT_MAX:
        _small_stem(model, in_chans)
    elif in_chans != 3:
        model.conv1 = nn.Conv2d(in_chans, 64, kernel_size=7, stride=2, padding=3, bias=False)
    reduction = 1 if img_size <= SMALL_INPUT_MAX else 4
    model.feature_info = [{"num_chs": 64, "reduction": max(1, reduction // 2), "module": "relu"}] + [
        {"num_chs": 64 * 2**i, "reduction": reduction * 2**i, "module": f"layer{i + 1}"} for i in range(4)
    ]
    return model


def _small_vit(
    num_classes: int,
    in_chans: int,
    img_size: int,
    base: str = "vit_tiny_patch16_224",
    arch: Mapping[str, int] | None = None,
    **weights: Any,
) -> nn.Module:
    """A timm ViT (``base``) with 4x4 patches on small images; ``arch`` overrides width/depth/heads.

    Pretrained weights of ``base`` are resampled by timm to the smaller patches and the shorter position embedding.
    """
    import timm

    return timm.create_model(
        base,
        num_classes=num_classes,
        in_chans=in_chans,
        img_size=img_size,
        patch_size=4 if img_size <= SMALL_INPUT_MAX else 16,
        **(arch or {}),
        **weights,
    )


CUSTOM_MODELS: dict[str, Callable[..., nn.Module]] = {
    "small_cnn": lambda nc, ic, size, **_: small_cnn(nc, ic, size),
    "resnet20": lambda nc, ic, size, **_: CifarResNet(20, nc, ic),
    "resnet18": _timm_resnet18,
    "tv_resnet18": _tv_resnet18,
    "vit_tiny": _small_vit,
    "vit_small": lambda nc, ic, size, **w: _small_vit(nc, ic, size, "vit_small_patch16_224", **w),
    # 6 blocks x 128 wide: trains in minutes on a CPU, still a real timm ViT
    "vit_mini": lambda nc, ic, size, **w: _small_vit(nc, ic, size, arch=dict(embed_dim=128, depth=6, num_heads=4)),
}
"""Names with a recipe of their own; ``resnet18``, ``vit_tiny`` and ``vit_small`` are timm models adapted to small
images. Called as ``recipe(num_classes, in_chans, img_size, **timm_weight_kwargs)``."""

TIMM_PRETRAINED: dict[str, str] = {
    "resnet18": "resnet18",
    "vit_tiny": "vit_tiny_patch16_224",
    "vit_small": "vit_small_patch16_224",
}
"""Custom names whose pretrained weights are those of a timm architecture; the others (``small_cnn``,
``resnet20``, ``tv_resnet18``, ``vit_mini``) have none on the hub and take a ``weights_file`` of their own."""


def _timm_model(name: str, num_classes: int, in_chans: int, img_size: int, **weights: Any) -> nn.Module:
    import timm

    if not timm.is_model(name):
        choices = list(dict.fromkeys(sorted(CUSTOM_MODELS) + timm.list_models()))
        close = difflib.get_close_matches(name, choices, n=5, cutoff=0.6)
        hint = f" Close matches: {', '.join(close)}." if close else ""
        raise ValueError(
            f"unknown model {name!r}.{hint} Use one of {sorted(CUSTOM_MODELS)} or any name in timm.list_models()."
        )
    kwargs = {"pretrained": False, "num_classes": num_classes, "in_chans": in_chans, **weights}
    try:
        return timm.create_model(name, img_size=img_size, **kwargs)
    except TypeError as err:  # this architecture has no img_size argument: it adapts to any input size
        if "img_size" not in str(err):
            raise
        logger.debug("timm model %s takes no img_size (%s); building it without", name, err)
        return timm.create_model(name, **kwargs)


def load_weights_file(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """A state dict from a local file, without running pickled code.

    ``.safetensors`` is read with safetensors; ``.pth`` / ``.pt`` / ``.bin`` with ``torch.load(weights_only=True)``,
    which refuses anything but tensors and builtin containers. A checkpoint that wraps its weights
    (``{"state_dict": ...}`` or ``{"model": ...}``) is unwrapped, and a DataParallel ``module.`` prefix dropped.

    Raises:
        WeightsFileError: the file is missing, has another suffix, or holds something other than named tensors.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsFileError(
            f"weights file {str(path)!r} does not exist (resolved to {path.resolve()}); download it (timm weights: "
            "`huggingface-cli download timm/<model>.<tag> model.safetensors`) or fix the path"
        )
    if path.suffix not in WEIGHT_SUFFIXES:
        raise WeightsFileError(f"{path}: unknown weights format {path.suffix!r}; use one of {WEIGHT_SUFFIXES}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # safetensors and torch raise several types for a damaged or unsafe file
        raise WeightsFileError(f"{path}: cannot read weights ({type(err).__name__}: {err})") from err
    for key in ("state_dict", "model"):
        if isinstance(state, Mapping) and isinstance(state.get(key), Mapping):
            state = state[key]
            break
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsFileError(f"{path}: expected a mapping of parameter names to tensors")
    return {str(k).removeprefix("module."): v for k, v in state.items()}


def _timm_weights(timm_name: str, pretrained: bool, weights_file: str | os.PathLike[str] | None) -> dict[str, Any]:
    """``timm.create_model`` arguments: hub weights, or a local file passed through timm's own adaptation."""
    if not pretrained:
        return {"pretrained": False}
    if weights_file is None:
        return {"pretrained": True}
    import timm

    state = load_weights_file(weights_file)
    overlay: dict[str, Any] = {"state_dict": state}
    cfg = timm.models.get_pretrained_cfg(timm_name)
    head = f"{cfg.classifier}.weight" if cfg is not None and isinstance(cfg.classifier, str) else None
    if head in state:  # timm keeps the file's head when its size matches the model's, and drops it otherwise
        overlay["num_classes"] = int(state[head].shape[0])
    return {"pretrained": True, "pretrained_cfg_overlay": overlay}


def _check_fit(model: nn.Module, names: set[str], path: str | os.PathLike[str], head: str | None) -> None:
    """Raise unless the file named every tensor of the model (except a head that was re-initialised)."""
    own = set(model.state_dict())
    skip = (f"{head}.",) if head else ()
    missing = sorted(k for k in own - names if not k.startswith(skip))
    unexpected = sorted(k for k in names - own if not k.startswith(skip))
    if missing or unexpected:
        raise WeightsFileError(
            f"{path} does not fit this model: {len(missing)} of its tensors are not in the file "
            f"({', '.join(missing[:4])}) and {len(unexpected)} in the file are not in the model "
            f"({', '.join(unexpected[:4])}); was it saved from another architecture?"
        )


def _construct(name: str, num_classes: int, in_chans: int, img_size: int, **weights: Any) -> nn.Module:
    builder = CUSTOM_MODELS.get(name)
    if builder is not None:
        return builder(num_classes, in_chans, img_size, **weights)
    return _timm_model(name, num_classes, in_chans, img_size, **weights)


def _pretrained_model(
    name: str, num_classes: int, in_chans: int, img_size: int, weights_file: str | os.PathLike[str] | None
) -> nn.Module:
    builder = CUSTOM_MODELS.get(name)
    timm_name = TIMM_PRETRAINED.get(name, None if builder else name)
    if timm_name is None:  # a recipe of our own: only a file saved from the same recipe fits
        if weights_file is None:
            raise WeightsFileError(
                f"{name} has no pretrained weights on the hub; set weights_file to weights saved from this "
                f"architecture, or use one of {sorted(TIMM_PRETRAINED)} or a timm name"
            )
        model = builder(num_classes, in_chans, img_size)
        state = load_weights_file(weights_file)
        _check_fit(model, set(state), weights_file, None)
        try:
            model.load_state_dict(state)
        except RuntimeError as err:
            raise WeightsFileError(f"{weights_file} does not fit {name}: {err}") from err
        return model
    weights = _timm_weights(timm_name, True, weights_file)
    names = set(weights.get("pretrained_cfg_overlay", {}).get("state_dict", {}))
    try:
        model = _construct(name, num_classes, in_chans, img_size, **weights)
    except RuntimeError as err:
        if weights_file is None:
            raise
        raise WeightsFileError(f"{weights_file} does not fit {name}: {err}") from err
    if weights_file is not None:
        _check_fit(model, names, weights_file, model.pretrained_cfg.get("classifier"))
    return model


def available_models() -> tuple[str, ...]:
    """Names with a dedicated recipe; any other timm name works too."""
    return tuple(sorted(CUSTOM_MODELS))


def build_model(
    name: str,
    num_classes: int = 10,
    in_chans: int = 1,
    img_size: int = 32,
    *,
    pretrained: bool = False,
    weights_file: str | os.PathLike[str] | None = None,
) -> nn.Module:
    """Build a classifier for ``in_chans x img_size x img_size`` inputs, randomly initialised or pretrained.

    Args:
        name: ``small_cnn``, ``resnet20``, ``resnet18`` (timm, small-image stem), ``tv_resnet18``
            (torchvision, same stem), ``vit_tiny`` / ``vit_small`` (timm ViT-Ti / ViT-S with 4x4 patches),
            ``vit_mini``, or any timm model name (passed ``img_size`` when its class accepts one).
        num_classes: Size of the classifier head (a pretrained head of another size is re-initialised).
        in_chans: Input channels (1 for Fashion-MNIST, 3 for RGB).
        img_size: Input side length; below or at 64 the ResNets use the CIFAR stem.
        pretrained: Start from pretrained weights: timm's (downloaded from the hub) unless ``weights_file`` is set.
        weights_file: Read the pretrained weights from this local file instead (see :func:`load_weights_file`):
            timm's weights for the architecture, or a state dict saved from the same model.

    Returns:
        The model in training mode, on the CPU.

    Raises:
        ValueError: For an unknown name (the message lists close matches).
        WeightsFileError: The weights file is missing, unreadable, or does not fit the model.

    Example:
        >>> model = build_model("resnet18", num_classes=10, in_chans=3)              # random weights
        >>> # build_model("resnet18", in_chans=3, pretrained=True)                   # timm's, from the hub
        >>> # build_model("resnet18", in_chans=3, pretrained=True, weights_file="resnet18.safetensors")
    """
    if in_chans < 1 or num_classes < 1 or img_size < 8:
        raise ValueError(
            f"need in_chans >= 1, num_classes >= 1, img_size >= 8; got {in_chans}, {num_classes}, {img_size}"
        )
    if weights_file is not None and not pretrained:
        raise ValueError("weights_file says where pretrained weights come from: pass pretrained=True with it")
    if pretrained:
        model = _pretrained_model(name, num_classes, in_chans, img_size, weights_file)
    else:
        model = _construct(name, num_classes, in_chans, img_size)
    n_params = sum(p.numel() for p in model.parameters())
    source = "random" if not pretrained else str(weights_file or "timm hub")
    logger.info(
        "built %s: %.2fM parameters, %d classes, %dx%dx%d input, weights: %s",
        name,
        n_params / 1e6,
        num_classes,
        in_chans,
        img_size,
        img_size,
        source,
    )
    return model
