"""The structural rule that chooses taps in any ``nn.Module`` that has no model-specific rule.

A tap goes after each parameterised layer, at the last norm/activation/pool that directly follows it, so the
recorded representation is the one the next layer sees. Plain containers are looked into: ``nn.ModuleList`` and
``nn.ModuleDict`` always (they are never called themselves), plain ``nn.Sequential`` children one level at a time
while fewer than four taps are found (a CNN written as ``features`` + ``classifier`` gets taps inside both).
Where one container yields many layers (MobileNet's or VGG's ``features``), only its stage boundaries are kept, as
timm's ``feature_info`` does: the layer before each drop in resolution (a strided conv or pool, Swin's patch
merging) and the last layer, plus the first as the input-side tap.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

_MAX_TAPS = 16  # more taps cost time and dilute the multiple-testing correction
_ENOUGH_TAPS = 4  # fewer than this: look one level deeper into plain nn.Sequential children
_STAGES_ABOVE = 6  # a container yielding more layers than this is reduced to its stage boundaries
_ACTIVATION_TYPES = (
    nn.ReLU,
    nn.ReLU6,
    nn.GELU,
    nn.SiLU,
    nn.LeakyReLU,
    nn.ELU,
    nn.Tanh,
    nn.Sigmoid,
    nn.Mish,
    nn.Hardswish,
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.MaxPool3d,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AvgPool3d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool2d,
    nn.Identity,
)  # Dropout is not one: in training mode its output is a random mask of the representation, not the representation
_NORM_TYPES = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm, nn.modules.instancenorm._InstanceNorm)
_FOLLOWER_TYPES = _ACTIVATION_TYPES + _NORM_TYPES  # belong to the layer they follow
_ALWAYS_OPEN = (nn.ModuleList, nn.ModuleDict)  # exact types: subclasses with a forward (DenseNet blocks) are layers


@dataclass(frozen=True)
class _Layer:
    """A parameterised child and where its output is tapped."""

    tap: str  # the layer, or the last norm/activation/pool that follows it
    path: str  # the layer itself
    module: nn.Module
    group: str  # path prefix of the container it sits in
    starts_down: bool  # the layer lowers the resolution (strided conv/pool inside, patch merging)
    ends_down: bool  # a pool after it lowers the resolution


def generic_taps(root: nn.Module) -> list[str]:
    """Taps of ``root`` spanning its depth (at most 16, evenly spaced); ``[]`` when it has no parameterised child."""
    opened: set[str] = set()
    best: list[str] = []
    while True:
        layers = _collect(root, "", opened, [])
        names = _stage_boundaries(_without_head(layers))
        if len(names) > len(best):
            best = names
        closed = {layer.path for layer in layers if type(layer.module) is nn.Sequential} - opened
        if len(best) >= _ENOUGH_TAPS or not closed:
            break
        opened |= closed
    if len(best) > _MAX_TAPS:
        step = (len(best) - 1) / (_MAX_TAPS - 1)
        best = [best[round(i * step)] for i in range(_MAX_TAPS)]
    return best


def _collect(container: nn.Module, prefix: str, opened: set[str], out: list[_Layer]) -> list[_Layer]:
    """Append the parameterised layers of ``container`` in registration order, looking into opened containers."""
    children = [(n, c) for n, c in container.named_children() if not _is_auxiliary(n, c)]
    for i, (name, child) in enumerate(children):
        path = prefix + name
        if type(child) in _ALWAYS_OPEN or path in opened:
            _collect(child, path + ".", opened, out)
            continue
        if not _has_parameters(child) or (isinstance(child, _NORM_TYPES) and (i > 0 or out)):
            continue  # a norm that is not the very first layer belongs to the layer before it
        end = i
        while end + 1 < len(children) and isinstance(children[end + 1][1], _FOLLOWER_TYPES):
            end += 1
        followers = [c for _, c in children[i + 1 : end + 1]]
        out.append(
            _Layer(
                prefix + children[end][0],
                path,
                child,
                prefix,
                _downsamples(child),
                any(_downsamples(f) for f in followers),
            )
        )
    return out


def _is_auxiliary(name: str, module: nn.Module) -> bool:
    """Auxiliary heads (GoogLeNet ``aux1``, Inception ``AuxLogits``) run only in training: a hook would not fire."""
    is_head = "aux" in type(module).__name__.lower() or _ends_in_linear(module)
    return name.lower().startswith("aux") and is_head


def _has_parameters(module: nn.Module) -> bool:
    return any(True for _ in module.parameters())


def _downsamples(module: nn.Module) -> bool:
    """Whether ``module`` lowers the spatial resolution, judged from its layers' strides (no forward pass)."""
    for m in module.modules():
        if isinstance(m, nn.modules.conv._ConvTransposeNd):
            continue
        if isinstance(m, (nn.modules.conv._ConvNd, nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd)):
            stride = m.stride if m.stride is not None else m.kernel_size
            if any(s > 1 for s in (stride if isinstance(stride, tuple) else (stride,))):
                return True
        elif type(m).__name__.startswith("PatchMerging"):  # torchvision and timm Swin: 2x2 neighbours -> channels
            return True
    return False


def _ends_in_linear(module: nn.Module) -> bool:
    """A prediction head: a Linear, or an ``nn.Sequential`` whose output comes from a Linear (``Dropout, Linear``)."""
    if isinstance(module, nn.Linear):
        return True
    if isinstance(module, nn.Sequential) and len(module) > 0:
        return _ends_in_linear(module[-1])
    return False


def _without_head(layers: list[_Layer]) -> list[_Layer]:
    """Drop the final classifier when there are other candidates: it is the prediction, not a representation."""
    if len(layers) > 2 and _ends_in_linear(layers[-1].module):
        return layers[:-1]
    return layers


def _stage_boundaries(layers: list[_Layer]) -> list[str]:
    """Tap names, each long run of layers from one container reduced to its stage boundaries."""
    names: list[str] = []
    start = 0
    while start < len(layers):
        end = start
        while end + 1 < len(layers) and layers[end + 1].group == layers[start].group:
            end += 1
        run = layers[start : end + 1]
        if len(run) > _STAGES_ABOVE:
            kept = [
                layer
                for k, layer in enumerate(run)
                if k in (0, len(run) - 1) or layer.ends_down or run[k + 1].starts_down
            ]
            run = kept if len(kept) >= 3 else run
        names += [layer.tap for layer in run]
        start = end + 1
    return names
