"""One entry point for every classifier the experiments train: ``build_model(name, ...)``.

Everything is built with random weights (``pretrained=False`` / ``weights=None``): nothing is ever
downloaded, so the same call works offline. Names not listed in :data:`CUSTOM_MODELS` go to
``timm.create_model``, so any timm architecture can be dropped into a study by name.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Callable

from torch import nn

from experiments.models.small_nets import CifarResNet, small_cnn

logger = logging.getLogger(__name__)

SMALL_INPUT_MAX = 64
"""Up to this image size, ImageNet ResNets get a 3x3 stride-1 stem and no max-pool (the CIFAR recipe);
otherwise a 32x32 image would shrink to 1x1 by ``layer4``."""


def _small_stem(model: nn.Module, in_chans: int) -> None:
    """Replace a (timm or torchvision) ResNet's 7x7/2 stem conv + max-pool with a 3x3/1 conv, in place."""
    width = model.conv1.out_channels
    model.conv1 = nn.Conv2d(in_chans, width, kernel_size=3, stride=1, padding=1, bias=False)
    nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    model.maxpool = nn.Identity()


def _timm_resnet18(num_classes: int, in_chans: int, img_size: int) -> nn.Module:
    import timm

    model = timm.create_model("resnet18", pretrained=False, num_classes=num_classes, in_chans=in_chans)
    if img_size <= SMALL_INPUT_MAX:
        _small_stem(model, in_chans)
        for info in model.feature_info:  # the stem no longer downsamples by 4: keep the metadata honest
            info["reduction"] = max(1, info["reduction"] // 4)
    return model


def _tv_resnet18(num_classes: int, in_chans: int, img_size: int) -> nn.Module:
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


def _small_vit(num_classes: int, in_chans: int, img_size: int, **arch: int) -> nn.Module:
    """timm's ViT-Ti recipe with 4x4 patches on small images; ``arch`` overrides width/depth/heads."""
    import timm

    return timm.create_model(
        "vit_tiny_patch16_224",
        pretrained=False,
        num_classes=num_classes,
        in_chans=in_chans,
        img_size=img_size,
        patch_size=4 if img_size <= SMALL_INPUT_MAX else 16,
        **arch,
    )


CUSTOM_MODELS: dict[str, Callable[[int, int, int], nn.Module]] = {
    "small_cnn": lambda nc, ic, size: small_cnn(nc, ic, size),
    "resnet20": lambda nc, ic, size: CifarResNet(20, nc, ic),
    "resnet18": _timm_resnet18,
    "tv_resnet18": _tv_resnet18,
    "vit_tiny": _small_vit,
    # 6 blocks x 128 wide: trains in minutes on a CPU, still a real timm ViT
    "vit_mini": lambda nc, ic, size: _small_vit(nc, ic, size, embed_dim=128, depth=6, num_heads=4),
}
"""Names with a recipe of their own; ``resnet18`` and ``vit_tiny`` are timm models adapted to small images."""


def _timm_model(name: str, num_classes: int, in_chans: int, img_size: int) -> nn.Module:
    import timm

    if not timm.is_model(name):
        choices = list(dict.fromkeys(sorted(CUSTOM_MODELS) + timm.list_models()))
        close = difflib.get_close_matches(name, choices, n=5, cutoff=0.6)
        hint = f" Close matches: {', '.join(close)}." if close else ""
        raise ValueError(
            f"unknown model {name!r}.{hint} Use one of {sorted(CUSTOM_MODELS)} or any name in timm.list_models()."
        )
    kwargs = {"pretrained": False, "num_classes": num_classes, "in_chans": in_chans}
    try:
        return timm.create_model(name, img_size=img_size, **kwargs)
    except TypeError as err:  # this architecture has no img_size argument: it adapts to any input size
        if "img_size" not in str(err):
            raise
        logger.debug("timm model %s takes no img_size (%s); building it without", name, err)
        return timm.create_model(name, **kwargs)


def available_models() -> tuple[str, ...]:
    """Names with a dedicated recipe; any other timm name works too."""
    return tuple(sorted(CUSTOM_MODELS))


def build_model(name: str, num_classes: int = 10, in_chans: int = 1, img_size: int = 32) -> nn.Module:
    """Build a randomly initialised classifier for ``in_chans x img_size x img_size`` inputs.

    Args:
        name: ``small_cnn``, ``resnet20``, ``resnet18`` (timm, small-image stem), ``tv_resnet18``
            (torchvision, same stem), ``vit_tiny`` (timm ViT-Ti with 4x4 patches), or any timm model name
            (passed ``img_size`` when its class accepts one).
        num_classes: Size of the classifier head.
        in_chans: Input channels (1 for Fashion-MNIST, 3 for RGB).
        img_size: Input side length; below or at 64 the ResNets use the CIFAR stem.

    Returns:
        The model in training mode, on the CPU.

    Raises:
        ValueError: For an unknown name (the message lists close matches).
    """
    if in_chans < 1 or num_classes < 1 or img_size < 8:
        raise ValueError(
            f"need in_chans >= 1, num_classes >= 1, img_size >= 8; got {in_chans}, {num_classes}, {img_size}"
        )
    builder = CUSTOM_MODELS.get(name)
    model = builder(num_classes, in_chans, img_size) if builder else _timm_model(name, num_classes, in_chans, img_size)
    n_params = sum(p.numel() for p in model.parameters())
    logger.info(
        "built %s: %.2fM parameters, %d classes, %dx%dx%d input",
        name,
        n_params / 1e6,
        num_classes,
        in_chans,
        img_size,
        img_size,
    )
    return model
