"""Run a model in eval mode for monitoring without losing the user's own train/eval flags."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from torch import nn


@contextmanager
def evaluation_mode(model: nn.Module, modules: Sequence[nn.Module] | None = None) -> Iterator[None]:
    """Put a model in eval mode and restore every submodule's own train/eval flag afterwards.

    Monitoring must not update batch-norm running statistics or sample dropout masks.

    Args:
        model: the model to run.
        modules: ``list(model.modules())`` kept by the caller. When none of them is in training mode (the usual
            case while monitoring), nothing is switched and the block costs one attribute read per module instead of
            a recursive ``eval()`` and restore (0.5 ms per call for a ResNet-18). Otherwise the model's current
            modules are switched and restored.
    """
    if modules is not None and not any(m.training for m in modules):
        yield
        return
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        yield
    finally:
        for module, mode in modes.items():
            module.training = mode
