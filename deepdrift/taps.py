"""Forward hooks that capture one pooled feature vector per sample at each watched layer.

Hooks are registered for the duration of one forward call and removed in ``finally`` (captum's discipline), so a
model is never left with stray hooks, whatever happens. A tapped layer that did not run is an error, not a zero.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from .errors import HookNotFiredError
from .layer_selection import LayerRequest, auto_select_layers, resolve_layer_names
from .pooling import PoolingConfig, pool_output

logger = logging.getLogger(__name__)

ZONES: tuple[str, ...] = ("UV", "Mid", "Deep", "IR")
"""Depth zones from input to output: ultraviolet (pixels/edges), mid-level, deep, infrared (near the output)."""


@dataclass(frozen=True)
class Tap:
    """One watched layer.

    Attributes:
        name: module path inside the model (``model.get_submodule(name)``).
        label: short display label used in alerts and plots.
        depth: relative depth in execution order, 0 (first tap) .. 1 (last tap).
        zone: one of ``ZONES``, by quartile of the tap's position.
        index: position in execution order.
    """

    name: str
    label: str
    depth: float
    zone: str
    index: int


def zone_of(index: int, n_taps: int) -> str:
    """Zone of the ``index``-th of ``n_taps`` taps: the positions are cut into four equal quarters."""
    return ZONES[min(len(ZONES) - 1, (len(ZONES) * index) // max(n_taps, 1))]


def short_name(name: str) -> str:
    """Last path component of a module name, keeping the parent for numbered children (``blocks.9``)."""
    parts = name.split(".")
    return ".".join(parts[-2:]) if len(parts) > 1 and parts[-1].isdigit() else parts[-1]


def build_taps(names: Sequence[str], labels: Sequence[str | None] | None = None) -> tuple[Tap, ...]:
    """Give ordered module names their depth, zone and display label."""
    n = len(names)
    labels = list(labels) if labels is not None else [None] * n
    zones = [zone_of(i, n) for i in range(n)]
    taps = []
    for i, (name, label) in enumerate(zip(names, labels, strict=True)):
        if label is None:
            label = zones[i] if zones.count(zones[i]) == 1 else f"{zones[i]}:{short_name(name)}"
        taps.append(Tap(name=name, label=label, depth=i / (n - 1) if n > 1 else 0.0, zone=zones[i], index=i))
    return tuple(taps)


class LayerTaps:
    """The set of watched layers of one model and the machinery to capture their pooled outputs.

    Args:
        model: any ``nn.Module``.
        arch_name: optional hint such as ``'ResNet-18'``; selection uses the model's own structure.
        layers: explicit module names, or ``{label: module name}``; wrong names raise with close matches.
        pooling: how outputs become vectors; models that declare ``output_fmt='NHWC'`` (timm Swin) are handled.
    """

    def __init__(
        self,
        model: nn.Module,
        arch_name: str | None = None,
        layers: LayerRequest = None,
        pooling: PoolingConfig = PoolingConfig(),
    ) -> None:
        self.model = model
        if layers is not None:
            pairs = resolve_layer_names(model, layers)
            self.rule = "explicit"
        else:
            names, self.rule = auto_select_layers(model, arch_name)
            pairs = [(n, None) for n in names]
        self._labels = {name: label for name, label in pairs}
        self._modules = {name: model.get_submodule(name) for name, _ in pairs}
        if pooling.layout == "auto" and getattr(model, "output_fmt", None) == "NHWC":
            pooling = replace(pooling, layout="NHWC")
        self.pooling = pooling
        self.taps = build_taps(list(self._modules), list(self._labels.values()))
        self.execution_order_known = False
        self._warned_refire: set[str] = set()

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.taps]

    def set_order(self, names: Sequence[str]) -> None:
        """Fix the tap order (e.g. from a loaded calibration) without waiting for a forward pass."""
        if sorted(names) != sorted(self._modules):
            raise ValueError(f"order {list(names)} does not name the same taps as {self.names}")
        self.taps = build_taps(list(names), [self._labels[n] for n in names])
        self.execution_order_known = True

    def run(self, forward: Callable[[], Any]) -> tuple[Any, dict[str, torch.Tensor]]:
        """Call ``forward()`` with hooks attached; return its output and ``{tap name: (batch, features)}``.

        Raises:
            HookNotFiredError: a tapped module did not execute during the call.
        """
        captured: dict[str, torch.Tensor] = {}
        handles = []
        try:
            for name, module in self._modules.items():
                handles.append(module.register_forward_hook(self._make_hook(name, captured)))
            output = forward()
        finally:
            for handle in handles:
                handle.remove()
        missing = [name for name in self._modules if name not in captured]
        if missing:
            raise HookNotFiredError(
                f"tapped layer(s) {missing} did not run during the forward pass (conditional branch or unused "
                "module?). Choose layers that execute, e.g. `layers=[...]`."
            )
        if not self.execution_order_known:
            self.set_order(list(captured))  # dict keeps first-fire order = execution order
        return output, {t.name: captured[t.name] for t in self.taps}

    def _make_hook(self, name: str, captured: dict[str, torch.Tensor]) -> Callable[..., None]:
        def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
            if name in captured and name not in self._warned_refire:
                self._warned_refire.add(name)
                logger.warning("layer %r ran more than once in one forward pass; its last call is used", name)
            captured[name] = pool_output(output, self.pooling)

        return hook
