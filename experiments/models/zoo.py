"""Trained models as the workflow sees them: a spec from the config, a resumable training run, a loader.

Final weights are written as safetensors (no pickle); the resumable training checkpoint sits beside them and is
only read with ``torch.load(weights_only=True)`` by the training loop.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from experiments.atomic import atomic_path
from experiments.config import UnsupportedConfigError, from_mapping, mapping_key
from experiments.data.spec import DataSpec, split_dataset
from experiments.models.factory import build_model
from experiments.models.training import TrainConfig, evaluate_accuracy, train_classifier

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelSpec:
    """One model of the config (``models.<key>``): architecture (any timm name works), input format, training recipe.

    Attributes:
        key: the model's name in the config (the mapping key; YAML cannot set it).
        arch: ``small_cnn``, ``resnet20``, ``resnet18``, ``tv_resnet18``, ``vit_tiny``, ``vit_mini`` or any timm name.
        in_chans: input channels (1 for Fashion-MNIST).
        num_classes: size of the classifier head.
        pretrained: start from pretrained timm weights. Accepted by the loader (the ``paper`` set names it), but
            this version cannot honour it: building such a model raises
            :class:`~experiments.config.UnsupportedConfigError`.
        train: the training recipe.
    """

    key: str = mapping_key()
    arch: str
    in_chans: int = 1
    num_classes: int = 10
    pretrained: bool = False
    train: TrainConfig = field(default_factory=TrainConfig)

    @classmethod
    def from_config(cls, key: str, cfg: Mapping[str, Any]) -> ModelSpec:
        return from_mapping(cls, cfg, f"models.{key}", key=key)


def build(spec: ModelSpec, data: DataSpec) -> nn.Module:
    """A freshly initialised model (seeded by the training seed).

    Raises:
        UnsupportedConfigError: ``spec.pretrained`` is set (this version builds every model from scratch).
    """
    if spec.pretrained:
        raise UnsupportedConfigError(
            f"models.{spec.key}.pretrained=true is not implemented in this version (issue 14 adds CIFAR-10 and "
            "pretrained timm weights); use the default or test config set (pretrained: false)"
        )
    torch.manual_seed(spec.train.seed)
    return build_model(spec.arch, num_classes=spec.num_classes, in_chans=spec.in_chans, img_size=data.img_size)


def train_model(
    spec: ModelSpec,
    data: DataSpec,
    weights_out: str | Path,
    metrics_out: str | Path,
    checkpoint: str | Path | None = None,
) -> dict[str, Any]:
    """Train (resuming from ``checkpoint`` if present), evaluate, and write weights + metrics atomically."""
    splits = data.splits()
    train_set = split_dataset(data, "train", splits.train, spec.in_chans)
    heldout = split_dataset(data, "test", splits.heldout, spec.in_chans)
    model = build(spec, data)
    result = train_classifier(model, train_set, spec.train, checkpoint_path=checkpoint)
    accuracy = evaluate_accuracy(model, heldout)
    metrics = {
        "key": spec.key,
        "arch": spec.arch,
        "parameters": sum(p.numel() for p in model.parameters()),
        "heldout_accuracy": accuracy,
        "final_loss": result.final_loss,
        "steps": result.steps,
        "steps_per_second": result.steps_per_second,
        "train_seconds": result.seconds,
        "train_config": asdict(spec.train),
        "data": asdict(data),
    }
    logger.info("%s (%s): held-out accuracy %.4f after %d steps", spec.key, spec.arch, accuracy, result.steps)
    with atomic_path(weights_out) as tmp:
        save_file(
            {k: v.contiguous() for k, v in model.state_dict().items()},
            str(tmp),
            metadata={"arch": spec.arch, "key": spec.key},
        )
    with atomic_path(metrics_out) as tmp:
        tmp.write_text(json.dumps(metrics, indent=2))
    return metrics


def load_model(spec: ModelSpec, data: DataSpec, weights: str | Path) -> nn.Module:
    """Rebuild a trained model from its safetensors weights, in eval mode."""
    model = build(spec, data)
    model.load_state_dict(load_file(str(weights)))
    return model.eval()
