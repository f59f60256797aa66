"""Decide which modules of a model to watch.

Models describe their own structure where they can (timm's ``feature_info``, diffusers' block lists, torchvision's
named stages); a hand-kept table of architecture names is avoided. ``arch_name`` is only a hint for logging.
"""

from __future__ import annotations

import difflib
import logging
import os
import sys
import warnings
from collections.abc import Mapping, Sequence

from torch import nn

from .block_taps import count_parameters, repeated_block_taps
from .errors import DeepDriftWarning, LayerNotFoundError
from .generic_taps import generic_taps

logger = logging.getLogger(__name__)

_FEW_TAPS = 3  # fewer taps than this cannot say where in the depth drift starts
_WRAPPED_SHARE = 0.99  # nn.Sequential(preprocess, model): the model holds (almost) all parameters
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))

LayerRequest = Sequence[str] | Mapping[str, str] | None
"""Explicit layers: a list of module names, or a ``{label: module name}`` map as in the original ``layers_map``."""


def resolve_layer_names(model: nn.Module, layers: LayerRequest) -> list[tuple[str, str | None]]:
    """Validate explicitly requested layers and return ``(module name, label or None)`` pairs.

    Raises:
        LayerNotFoundError: a name does not exist; the message lists the closest real names.
    """
    pairs = (
        [(name, label) for label, name in layers.items()]
        if isinstance(layers, Mapping)
        else [(name, None) for name in (layers or [])]
    )
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

    Wrappers are looked through (``nn.DataParallel``/DDP ``.module``, ``torch.compile``'s ``_orig_mod``, an
    ``nn.Sequential(preprocess, model)`` whose one child holds the parameters); names stay paths from ``model``,
    e.g. ``1.layer1`` or ``module.layer1``. Fewer than 3 taps issue a :class:`DeepDriftWarning`.

    Returns:
        The module names in (registration) order and the name of the rule that matched.

    Example:
        >>> auto_select_layers(torchvision.models.resnet18())  # doctest: +SKIP
        (['maxpool', 'layer1', 'layer2', 'layer3', 'layer4'], 'torchvision-resnet')
    """
    prefix, inner = "", model
    while True:
        child = _parallel_or_compiled(inner)
        if child is None:
            known = {name for name, _ in inner.named_modules()}
            for rule_name, rule in _RULES:
                names = rule(inner)
                if names and all(n in known for n in names):
                    return _finish(model, [prefix + n for n in names], rule_name, arch_name)
            child = _wrapped_child(inner)
        if child is None:
            break
        prefix, inner = f"{prefix}{child}.", inner.get_submodule(child)
    names = [prefix + n for n in generic_taps(inner)]
    if not names:
        raise ValueError(
            f"could not find layers to tap in {type(model).__name__}: it has no child modules with parameters. "
            "Pass `layers=[...]` with module names explicitly."
        )
    return _finish(model, names, "generic", arch_name)


def _finish(model: nn.Module, names: list[str], rule: str, arch_name: str | None) -> tuple[list[str], str]:
    logger.debug("arch_name=%r; %d taps chosen by the %s rule: %s", arch_name, len(names), rule, names)
    if len(names) < _FEW_TAPS:
        warnings.warn(
            f"automatic layer selection found only {len(names)} tap(s) in {type(model).__name__} ({names}, rule "
            f"{rule!r}): too few to tell where in the network drift starts. Name the layers to watch with "
            "`layers=[...]`; list candidates with `deepdrift layers MODEL` or `[n for n, _ in model.named_modules()]`.",
            DeepDriftWarning,
            stacklevel=_caller_stacklevel(),
        )
    return names, rule


def _caller_stacklevel() -> int:
    """``stacklevel`` that points a warning at the first frame outside this package (the user's call)."""
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR + os.sep):
        frame, level = frame.f_back, level + 1
    return level


def _parallel_or_compiled(module: nn.Module) -> str | None:
    """The wrapped model's name in ``nn.DataParallel``/DDP and ``torch.compile``'s ``OptimizedModule``."""
    if isinstance(module, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
        return "module"
    if isinstance(module._modules.get("_orig_mod"), nn.Module):  # it also forwards attributes: look inside first
        return "_orig_mod"
    return None


def _wrapped_child(module: nn.Module) -> str | None:
    """The child that ``module`` merely wraps (its only child, or the one holding the parameters), or None."""
    children = [(name, child) for name, child in module.named_children() if child is not None]
    if len(children) == 1:
        return children[0][0] if any(True for _ in children[0][1].children()) else None
    if not isinstance(module, nn.Sequential) or len(children) < 2:
        return None
    sizes = [count_parameters(child) for _, child in children]
    total = sum(sizes)
    biggest = max(range(len(children)), key=sizes.__getitem__)
    holds_all = total > 0 and sizes[biggest] >= _WRAPPED_SHARE * total
    return children[biggest][0] if holds_all and any(True for _ in children[biggest][1].children()) else None


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


_RULES = (
    ("diffusers-unet", _diffusers_unet),
    ("timm-feature-info", _timm_feature_info),
    ("torchvision-resnet", _torchvision_resnet),
    ("torchvision-vit", _torchvision_vit),
    ("repeated-blocks", repeated_block_taps),
)
