"""Taps for models built around one stack of repeated blocks (Hugging Face transformers, most hand-written
transformers): the input-side embedding and every block of the stack.

Such models hide their depth inside a non-container module (``ViTModel``, ``BertModel``), so the generic rule, which
only looks into plain containers, would tap the whole backbone once. The stack is recognised by structure, not by
name: the ``nn.ModuleList`` of at least four same-class blocks that holds the most parameters, and at least half of
the model's.
"""

from __future__ import annotations

from torch import nn

_MIN_BLOCKS = 4
_MIN_SHARE = 0.5
_MAX_TAPS = 16


def count_parameters(module: nn.Module) -> int:
    """Parameter elements of ``module``, not counting lazy parameters that have no shape yet."""
    return sum(p.numel() for p in module.parameters() if not isinstance(p, nn.parameter.UninitializedTensorMixin))


def _block_stack(model: nn.Module) -> tuple[str, nn.ModuleList] | None:
    total = count_parameters(model)
    best: tuple[int, str, nn.ModuleList] | None = None
    for name, module in model.named_modules():
        if not isinstance(module, nn.ModuleList) or len(module) < _MIN_BLOCKS:
            continue
        if len({type(block) for block in module}) != 1:
            continue
        size = count_parameters(module)
        if total and size >= _MIN_SHARE * total and (best is None or size > best[0]):
            best = (size, name, module)
    return None if best is None else (best[1], best[2])


def _embedding_before(model: nn.Module, path: str) -> str | None:
    """The one parameterised sibling that runs before the stack, at the deepest level of its path that has one
    (``vit.embeddings`` before ``vit.encoder.layer``); None when there are several (token and position tables)."""
    parts = path.split(".")
    for depth in range(len(parts) - 1, -1, -1):
        parent = model.get_submodule(".".join(parts[:depth])) if depth else model
        before = []
        for child_name, child in parent.named_children():
            if child_name == parts[depth]:
                break
            if count_parameters(child) > 0:
                before.append(child_name)
        if before:
            if len(before) != 1:
                return None
            return ".".join([*parts[:depth], before[0]])
    return None


def repeated_block_taps(model: nn.Module) -> list[str]:
    """The embedding (when unambiguous) and the blocks of the model's main stack, at most 16 evenly spaced."""
    found = _block_stack(model)
    if found is None:
        return []
    path, stack = found
    blocks = [f"{path}.{i}" for i in range(len(stack))]
    if len(blocks) > _MAX_TAPS - 1:
        step = (len(blocks) - 1) / (_MAX_TAPS - 2)
        blocks = [blocks[round(i * step)] for i in range(_MAX_TAPS - 1)]
    embedding = _embedding_before(model, path)
    return ([embedding] if embedding else []) + blocks
