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
from experiments.data import fashion_mnist_dataset, make_splits
from experiments.models.factory import build_model
from experiments.models.training import TrainConfig, evaluate_accuracy, train_classifier

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DataSpec:
    """Which images a study uses (all from Fashion-MNIST; calibration and held-out come from the test split)."""

    img_size: int = 32
    n_train: int | None = None
    n_calib: int = 2000
    n_heldout: int = 8000
    split_seed: int = 0

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> DataSpec:
        return cls(**{k: cfg[k] for k in cls.__dataclass_fields__ if k in cfg})


@dataclass(frozen=True)
class ModelSpec:
    """One model of the config: architecture name (any timm name works), input format and training recipe."""

    key: str
    arch: str
    in_chans: int = 1
    num_classes: int = 10
    train: TrainConfig = field(default_factory=TrainConfig)

    @classmethod
    def from_config(cls, key: str, cfg: Mapping[str, Any]) -> ModelSpec:
        train = TrainConfig(**dict(cfg.get("train", {})))
        return cls(key=key, arch=cfg["arch"], in_chans=int(cfg.get("in_chans", 1)),
                   num_classes=int(cfg.get("num_classes", 10)), train=train)


def build(spec: ModelSpec, data: DataSpec) -> nn.Module:
    """A freshly initialised model (seeded by the training seed)."""
    torch.manual_seed(spec.train.seed)
    return build_model(spec.arch, num_classes=spec.num_classes, in_chans=spec.in_chans, img_size=data.img_size)


def train_model(spec: ModelSpec, data: DataSpec, weights_out: str | Path, metrics_out: str | Path,
                checkpoint: str | Path | None = None) -> dict[str, Any]:
    """Train (resuming from ``checkpoint`` if present), evaluate, and write weights + metrics atomically."""
    splits = make_splits(data.split_seed, data.n_calib, data.n_heldout, n_train=data.n_train)
    train_set = fashion_mnist_dataset("train", indices=splits.train, size=data.img_size, channels=spec.in_chans)
    heldout = fashion_mnist_dataset("test", indices=splits.heldout, size=data.img_size, channels=spec.in_chans)
    model = build(spec, data)
    result = train_classifier(model, train_set, spec.train, checkpoint_path=checkpoint)
    accuracy = evaluate_accuracy(model, heldout)
    metrics = {
        "key": spec.key, "arch": spec.arch, "parameters": sum(p.numel() for p in model.parameters()),
        "heldout_accuracy": accuracy, "final_loss": result.final_loss, "steps": result.steps,
        "steps_per_second": result.steps_per_second, "train_seconds": result.seconds,
        "train_config": asdict(spec.train), "data": asdict(data),
    }
    logger.info("%s (%s): held-out accuracy %.4f after %d steps", spec.key, spec.arch, accuracy, result.steps)
    with atomic_path(weights_out) as tmp:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp),
                  metadata={"arch": spec.arch, "key": spec.key})
    with atomic_path(metrics_out) as tmp:
        tmp.write_text(json.dumps(metrics, indent=2))
    return metrics


def load_model(spec: ModelSpec, data: DataSpec, weights: str | Path) -> nn.Module:
    """Rebuild a trained model from its safetensors weights, in eval mode."""
    model = build(spec, data)
    model.load_state_dict(load_file(str(weights)))
    return model.eval()
