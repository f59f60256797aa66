"""Decide which modules of a model to watch.

Models describe their own structure where they can (timm's ``feature_info``, diffusers' block lists, torchvision's
named stages); a hand-kept table of architecture names is avoided. ``arch_name`` is only a hint for logging.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Mapping, Sequence

from torch import nn

from .errors import LayerNotFoundError

logger = logging.getLogger(__name__)

LayerRequest = Sequence[str] | Mapping[str, str] | None
"""Explicit layers: a list of module names, or a ``{label: module name}`` map as in the original ``layers_map``."""

_MAX_GENERIC_TAPS = 16
_ACTIVATION_TYPES = (
    nn.ReLU, nn.ReLU6, nn.GELU, nn.SiLU, nn.LeakyReLU, nn.ELU, nn.Tanh, nn.Sigmoid, nn.Mish, nn.Hardswish,
    nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.Dropout, nn.Identity,
)
_NORM_TYPES = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm, nn.modules.instancenorm._InstanceNorm)
_FOLLOWER_TYPES = _ACTIVATION_TYPES + _NORM_TYPES  # belong to the layer they follow


def resolve_layer_names(model: nn.Module, layers: LayerRequest) -> list[tuple[str, str | None]]:
    """Validate explicitly requested layers and return ``(module name, label or None)`` pairs.

    Raises:
        LayerNotFoundError: a name does not exist; the message lists the closest real names.
    """
    pairs = [(name, label) for label, name in layers.items()] if isinstance(layers, Mapping) else [
        (name, None) for name in (layers or [])
    ]
    if not pairs:
        raise ValueError("`layers` is empty; pass module names or leave it None for automatic selection.")
    known = dict(model.named_modules())
    for name, _ in pairs:
        if name not in known or name == "":
            raise LayerNotFoundError(_not_found_message(name, list(known)))
    return pairs


def _not_found_message(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, [k for k in known if k], n=5, cutoff=0.5)
    hint = f" Closest names: {', '.join(repr(c) for c in close)}." if close else ""
    return (
        f"layer {name!r} is not present in the model.{hint} "
        "Hint: list valid names with `[n for n, _ in model.named_modules()]` or `deepdrift layers MODEL`."
    )


def auto_select_layers(model: nn.Module, arch_name: str | None = None) -> tuple[list[str], str]:
    """Pick sensible taps for a model and say which rule chose them.

    Returns:
        The module names in (registration) order and the name of the rule that matched.
    """
    for rule_name, rule in _RULES:
        names = rule(model)
        if names:
            if arch_name:
                logger.debug("arch_name=%r; taps chosen by the %s rule", arch_name, rule_name)
            return names, rule_name
    raise ValueError(
        f"could not find layers to tap in {type(model).__name__}: it has no child modules with parameters. "
        "Pass `layers=[...]` with module names explicitly."
    )


def _diffusers_unet(model: nn.Module) -> list[str]:
    if not all(hasattr(model, attr) for attr in ("down_blocks", "up_blocks", "mid_block")):
        return []
    names = [f"down_blocks.{i}" for i in range(len(model.down_blocks))]
    if model.mid_block is not None:
        names.append("mid_block")
    names += [f"up_blocks.{i}" for i in range(len(model.up_blocks))]
    return names


def _timm_feature_info(model: nn.Module) -> list[str]:
    info = getattr(model, "feature_info", None)
    if not isinstance(info, (list, tuple)) or not info or not isinstance(info[0], Mapping):
        return []
    names = [entry["module"] for entry in info if "module" in entry]
    modules = dict(model.named_modules())
    names = [n for n in names if n in modules]
    for stem in ("patch_embed", "stem"):  # timm ViTs/ConvNeXts list blocks only; the stem shows input-side faults
        if stem in modules and not any(n == stem or n.startswith(stem + ".") for n in names):
            names.insert(0, stem)
            break
    return names


def _torchvision_resnet(model: nn.Module) -> list[str]:
    stages = [f"layer{i}" for i in range(1, 5)]
    if not all(isinstance(getattr(model, s, None), nn.Module) for s in stages):
        return []
    stem = "maxpool" if isinstance(getattr(model, "maxpool", None), nn.Module) else "relu"
    return ([stem] if hasattr(model, stem) else []) + stages


def _torchvision_vit(model: nn.Module) -> list[str]:
    encoder = getattr(model, "encoder", None)
    if not hasattr(model, "conv_proj") or not isinstance(getattr(encoder, "layers", None), nn.Module):
        return []
    return ["conv_proj"] + [f"encoder.layers.{child}" for child, _ in encoder.layers.named_children()]


def _generic(model: nn.Module) -> list[str]:
    """Tap the output of each parameterised child, after the norms/activations/pools that directly follow it.

    Descends through single-child wrappers; taps at the last parameter-free module after a layer so that what is
    recorded is the post-activation representation the next layer sees. The final classifier head is skipped
    when there are other candidates, because it is the prediction rather than a representation.
    """
    prefix, container = "", model
    while len(children := list(container.named_children())) == 1:
        name, container = children[0]
        prefix = f"{prefix}{name}."
    children = list(container.named_children())
    if not children:
        return []
    chosen: list[tuple[str, nn.Module]] = []  # (tapped name, the parameterised child it follows)
    for i, (_, child) in enumerate(children):
        if not any(True for _ in child.parameters()) or (i > 0 and isinstance(child, _NORM_TYPES)):
            continue
        end = i
        while end + 1 < len(children) and isinstance(children[end + 1][1], _FOLLOWER_TYPES):
            end += 1
        chosen.append((prefix + children[end][0], child))
    if len(chosen) > 2 and isinstance(chosen[-1][1], nn.Linear):
        chosen = chosen[:-1]
    names = [name for name, _ in chosen]
    if len(names) > _MAX_GENERIC_TAPS:
        step = (len(names) - 1) / (_MAX_GENERIC_TAPS - 1)
        names = [names[round(i * step)] for i in range(_MAX_GENERIC_TAPS)]
    return names


_RULES = (
    ("diffusers-unet", _diffusers_unet),
    ("timm-feature-info", _timm_feature_info),
    ("torchvision-resnet", _torchvision_resnet),
    ("torchvision-vit", _torchvision_vit),
    ("generic", _generic),
)
