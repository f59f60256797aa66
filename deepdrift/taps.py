"""Forward hooks that capture one pooled feature vector per sample at each watched layer.

Hooks are registered for the duration of one forward call and removed in ``finally`` (captum's discipline), so a
model is never left with stray hooks, whatever happens. A tapped layer that did not run is an error, not a zero.
Forwards through one ``LayerTaps`` (and so through one monitor) are serialised by a lock: hooks live on the shared
model, so two overlapping calls would otherwise capture each other's activations.
"""

from __future__ import annotations

import difflib
import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, get_args

import torch
from torch import nn

from .errors import HookNotFiredError, LayerNotFoundError
from .layer_selection import LayerRequest, auto_select_layers, resolve_layer_names
from .pooling import (
    Layout,
    LayoutHint,
    PoolingConfig,
    batch_axis,
    extract_tensor,
    output_layout_hint,
    pool_tensor,
    resolve_layout,
)

logger = logging.getLogger(__name__)

_LAYOUT_CACHE_SIZE = 1024
"""Resolved layouts kept per (tap, output shape, batch size); a stream of ever-new shapes clears it, never grows it."""

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
        n_features: pooled features per sample (e.g. 3 x channels for mean/std/max); None before the first forward.
        raw_shape: shape of the layer's output without the batch axis, as first seen; None before the first forward.
    """

    name: str
    label: str
    depth: float
    zone: str
    index: int
    n_features: int | None = None
    raw_shape: tuple[int, ...] | None = None


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


@dataclass
class Capture:
    """What one ``LayerTaps.capture`` block recorded: ``{tap name: (batch, features)}``, filled when it ends."""

    features: dict[str, torch.Tensor] = field(default_factory=dict)


class LayerTaps:
    """The set of watched layers of one model and the machinery to capture their pooled outputs.

    Args:
        model: any ``nn.Module``.
        arch_name: optional hint such as ``'ResNet-18'``; selection uses the model's own structure.
        layers: explicit module names, or ``{label: module name}``; wrong names raise with close matches.
        pooling: how outputs become vectors; models that declare ``output_fmt='NHWC'`` (timm Swin) are handled.
        layouts: declared layout of some taps' outputs, e.g. ``{"encoder": "LNC"}`` for a sequence-first
            transformer whose batch axis cannot be told from its shape; the others are found from the batch size,
            the module and the model family (see :func:`~deepdrift.pooling.resolve_layout`).

    Example:
        >>> taps = LayerTaps(model)  # doctest: +SKIP
        >>> output, features = taps.run(lambda: model(x), batch_size=len(x))  # doctest: +SKIP
    """

    def __init__(
        self,
        model: nn.Module,
        arch_name: str | None = None,
        layers: LayerRequest = None,
        pooling: PoolingConfig = PoolingConfig(),
        layouts: Mapping[str, Layout] | None = None,
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
        self.layouts = _checked_layouts(layouts, list(self._modules))
        self._hints = {name: output_layout_hint(model, name) for name in self._modules}
        self._learned: dict[str, tuple[int, Layout]] = {}  # (ndim, layout) found unambiguously in an earlier call
        self._layout_cache: dict[tuple[str, torch.Size, int | None], Layout] = {}  # resolved per output shape
        self._seen: dict[str, tuple[int, tuple[int, ...]]] = {}  # n_features, raw shape of the first forward
        self.taps = build_taps(list(self._modules), list(self._labels.values()))
        self.execution_order_known = False
        self._warned_refire: set[str] = set()
        self._lock = threading.Lock()
        self._owner: int | None = None

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.taps]

    def set_order(self, names: Sequence[str]) -> None:
        """Fix the tap order (e.g. from a loaded calibration) without waiting for a forward pass."""
        if sorted(names) != sorted(self._modules):
            raise ValueError(f"order {list(names)} does not name the same taps as {self.names}")
        taps = build_taps(list(names), [self._labels[n] for n in names])
        self.taps = tuple(self._with_shapes(t) for t in taps)
        self.execution_order_known = True

    def run(self, forward: Callable[[], Any], *, batch_size: int | None = None) -> tuple[Any, dict[str, torch.Tensor]]:
        """Call ``forward()`` with hooks attached; return its output and ``{tap name: (batch, features)}``.

        Args:
            forward: runs the model once.
            batch_size: samples in this call; the batch axis of every output is found and checked against it.
                Without it, 3-D outputs are taken as batch-first tokens and 4-D as channels-first (or as hinted).

        Concurrent calls on one instance are serialised (the hooks live on the shared model).

        Raises:
            HookNotFiredError: a tapped module did not execute during the call.
            UnsupportedOutputError: an output's batch axis does not match ``batch_size`` or is ambiguous.
        """
        with self.capture(batch_size=batch_size) as captured:
            output = forward()
        return output, captured.features

    @contextmanager
    def capture(self, *, batch_size: int | None = None) -> Iterator[Capture]:
        """Attach the hooks for the duration of a ``with`` block in which the caller runs one forward pass itself;
        ``capture.features`` holds ``{tap name: (batch, features)}`` after the block.

        The hooks only record forwards of the thread that opened the block, and come off when it ends, whatever
        happens inside. Other ``capture``/``run`` calls on this instance wait until the block ends.

        Raises:
            HookNotFiredError: (at the end of the block) a tapped module did not execute.
        """
        if self._owner == threading.get_ident():
            raise RuntimeError(
                "LayerTaps.run/capture was called again from inside its own forward or capture block; run the "
                "model directly inside the block."
            )
        with self._lock:
            self._owner = threading.get_ident()
            try:
                result = Capture()
                captured: dict[str, torch.Tensor] = {}
                raw_shapes: dict[str, tuple[int, ...]] = {}
                handles = []
                try:
                    for name, module in self._modules.items():
                        hook = self._make_hook(name, captured, raw_shapes, batch_size)
                        handles.append(module.register_forward_hook(hook))
                    yield result
                finally:
                    for handle in handles:
                        handle.remove()
                result.features = self._collect(captured, raw_shapes)
            finally:
                self._owner = None

    def _collect(
        self, captured: dict[str, torch.Tensor], raw_shapes: dict[str, tuple[int, ...]]
    ) -> dict[str, torch.Tensor]:
        """Check every tap fired, learn shapes and execution order once, and return features in tap order."""
        missing = [name for name in self._modules if name not in captured]
        if missing:
            raise HookNotFiredError(
                f"tapped layer(s) {missing} did not run during the forward pass (conditional branch or unused "
                "module?). Choose layers that execute, e.g. `layers=[...]`."
            )
        if len(self._seen) < len(self._modules):
            for name, features in captured.items():
                if name not in self._seen:
                    self._seen[name] = (int(features.shape[1]), raw_shapes[name])
            self.taps = tuple(self._with_shapes(t) for t in self.taps)
        if not self.execution_order_known:
            self.set_order(list(captured))  # dict keeps first-fire order = execution order
        return {t.name: captured[t.name] for t in self.taps}

    def _make_hook(
        self,
        name: str,
        captured: dict[str, torch.Tensor],
        raw_shapes: dict[str, tuple[int, ...]],
        batch_size: int | None,
    ) -> Callable[..., None]:
        def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
            if threading.get_ident() != self._owner:
                return  # a forward of the same model in another thread (a server calling it directly) is not ours
            if name in captured and name not in self._warned_refire:
                self._warned_refire.add(name)
                logger.warning("layer %r ran more than once in one forward pass; its last call is used", name)
            x = (output if isinstance(output, torch.Tensor) else extract_tensor(output)).detach()
            key = (name, x.shape, batch_size)
            layout = self._layout_cache.get(key)
            if layout is None:
                layout = self._layout_of(name, tuple(x.shape), batch_size)
                if len(self._layout_cache) >= _LAYOUT_CACHE_SIZE:
                    self._layout_cache.clear()
                self._layout_cache[key] = layout
            captured[name] = pool_tensor(x, layout, self.pooling)
            if name not in self._seen:
                axis = batch_axis(layout) if x.ndim else None
                raw_shapes[name] = tuple(n for i, n in enumerate(x.shape) if i != axis)

        return hook

    def _layout_of(self, name: str, shape: tuple[int, ...], batch_size: int | None) -> Layout:
        """Declared layout, else the one this tap showed unambiguously before, else resolved from shape and hints."""
        declared = self.layouts.get(name, "auto")
        if declared == "auto":
            declared = self.pooling.layout
        learned = self._learned.get(name)
        if declared == "auto" and learned is not None and learned[0] == len(shape):
            declared = learned[1]
        layout = resolve_layout(shape, declared, batch_size, self._hints.get(name, LayoutHint()), name)
        if batch_size is not None and len(shape) == 3 and shape[0] != shape[1] and name not in self._learned:
            # later batches of size L (shape (L, L, C)) are no longer ambiguous; layouts cached before may differ
            self._learned[name] = (3, layout)
            self._layout_cache.clear()
        return layout

    def _with_shapes(self, tap: Tap) -> Tap:
        seen = self._seen.get(tap.name)
        return tap if seen is None else replace(tap, n_features=seen[0], raw_shape=seen[1])


def _checked_layouts(layouts: Mapping[str, Layout] | None, names: list[str]) -> dict[str, Layout]:
    """Validate declared per-tap layouts: every key a tap (close matches listed), every value a ``Layout``."""
    allowed = get_args(Layout)
    checked: dict[str, Layout] = {}
    for name, layout in (layouts or {}).items():
        if name not in names:
            close = difflib.get_close_matches(name, names, n=5, cutoff=0.5)
            hint = f" Closest taps: {', '.join(repr(c) for c in close)}." if close else ""
            raise LayerNotFoundError(
                f"`layouts` names {name!r}, which is not a tapped layer.{hint} The taps are {names}; tap it with "
                "`layers=[...]` first if it is a module you want to watch."
            )
        if layout not in allowed:
            raise ValueError(f"layout of tap {name!r} must be one of {allowed}, got {layout!r}")
        checked[name] = layout
    return checked
