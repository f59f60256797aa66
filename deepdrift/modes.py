"""Run a model in eval mode for monitoring without losing the user's own train/eval flags."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn


@contextmanager
def evaluation_mode(model: nn.Module) -> Iterator[None]:
    """Put a model in eval mode and restore every submodule's own train/eval flag afterwards.

    Monitoring must not update batch-norm running statistics or sample dropout masks.
    """
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        yield
    finally:
        for module, mode in modes.items():
            module.training = mode
