"""Trained models as the workflow sees them: a spec from the config, a resumable (fine-)tuning run, a loader.

Final weights are written as safetensors (no pickle); the resumable training checkpoint sits beside them and is
only read with ``torch.load(weights_only=True)`` by the training loop.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn
from torch.utils.data import TensorDataset

from experiments.atomic import atomic_path, write_safetensors
from experiments.config import from_mapping, mapping_key
from experiments.data.spec import DataSpec, split_dataset
from experiments.models.factory import WEIGHT_SUFFIXES, build_model, load_weights_file
from experiments.models.training import TrainConfig, TrainResult, evaluate_accuracy, train_classifier

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelSpec:
    """One model of the config (``models.<key>``): architecture (any timm name works), input format, weights, recipe.

    Attributes:
        key: the model's name in the config (the mapping key; YAML cannot set it).
        arch: ``small_cnn``, ``resnet20``, ``resnet18``, ``tv_resnet18``, ``vit_tiny``, ``vit_small``, ``vit_mini``
            or any timm name.
        in_chans: input channels (1 for Fashion-MNIST, 3 for CIFAR-10).
        num_classes: size of the classifier head.
        pretrained: start from pretrained weights instead of random ones (timm's, downloaded from the hub, unless
            ``weights_file`` is set); ``train`` then fine-tunes them.
        weights_file: read the pretrained weights from this local file (``.safetensors``; ``.pth`` / ``.pt`` /
            ``.bin`` are read with ``torch.load(weights_only=True)``); a relative path is read from the working
            directory (the repository root under the workflow). Needs ``pretrained: true``.
        train: the training (or fine-tuning) recipe.
        classes: train and evaluate on these dataset labels only, relabelled ``0..len(classes)-1`` in this order
            (``num_classes`` must equal their count); None: every class. The classes left out are a natural
            shift for the model (see :mod:`experiments.mode_truth`).
    """

    key: str = mapping_key()
    arch: str
    in_chans: int = 1
    num_classes: int = 10
    pretrained: bool = False
    weights_file: str | None = None
    train: TrainConfig = field(default_factory=TrainConfig)
    classes: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.classes is not None and (
            len(set(self.classes)) != len(self.classes) or len(self.classes) != self.num_classes
        ):
            raise ValueError(
                f"classes {list(self.classes)} must be distinct and as many as num_classes "
                f"({self.num_classes}); set num_classes: {len(set(self.classes))}"
            )
        if self.weights_file is not None:
            if not self.pretrained:
                raise ValueError("weights_file says where pretrained weights come from: set pretrained: true too")
            if not self.weights_file.endswith(WEIGHT_SUFFIXES):
                raise ValueError(f"weights_file {self.weights_file!r} must end with one of {WEIGHT_SUFFIXES}")
        if self.train.steps == 0 and self.weights_file is None:
            raise ValueError(
                "train.steps: 0 uses the pretrained weights as they are, so it needs weights_file (weights whose "
                "head already has num_classes outputs); hub weights have an ImageNet head: fine-tune them"
            )

    @classmethod
    def from_config(cls, key: str, cfg: Mapping[str, Any]) -> ModelSpec:
        return from_mapping(cls, cfg, f"models.{key}", key=key)


def build(spec: ModelSpec, data: DataSpec) -> nn.Module:
    """The model before training: random weights (seeded by the training seed) or the pretrained ones.

    Raises:
        WeightsFileError: ``spec.weights_file`` is missing, unreadable, or does not fit ``spec.arch``.
    """
    torch.manual_seed(spec.train.seed)
    return build_model(
        spec.arch,
        num_classes=spec.num_classes,
        in_chans=spec.in_chans,
        img_size=data.img_size,
        pretrained=spec.pretrained,
        weights_file=spec.weights_file,
    )


def restrict_classes(dataset: TensorDataset, classes: Sequence[int] | None) -> TensorDataset:
    """The rows of ``dataset`` whose label is in ``classes``, relabelled by position in ``classes`` (None: all).

    Example:
        >>> ds = TensorDataset(torch.zeros(4, 1), torch.tensor([3, 0, 9, 3]))
        >>> restrict_classes(ds, (3, 0)).tensors[1].tolist()
        [0, 1, 0]
    """
    if classes is None:
        return dataset
    x, y = dataset.tensors
    lookup = torch.full((int(max(int(y.max()), *classes)) + 1,), -1, dtype=torch.int64)
    lookup[torch.as_tensor(list(classes))] = torch.arange(len(classes))
    keep = lookup[y] >= 0
    return TensorDataset(x[keep], lookup[y[keep]])


def training_device() -> torch.device:
    """The first GPU when there is one (the ``paper`` set's scale needs it), else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _check_as_loaded(model: nn.Module, spec: ModelSpec) -> None:
    """With no training, every tensor must be the file's own (not a re-initialised head or a resampled embedding)."""
    source = load_weights_file(str(spec.weights_file))
    changed = [k for k, v in model.state_dict().items() if k not in source or not torch.equal(v.cpu(), source[k])]
    if changed:
        raise ValueError(
            f"models.{spec.key}: train.steps is 0, but {len(changed)} tensors ({', '.join(changed[:4])}) are not "
            f"taken from {spec.weights_file} as they are (a head of another size, or another input size); "
            "fine-tune them with train.steps > 0"
        )


def _fit(model: nn.Module, spec: ModelSpec, data: DataSpec, checkpoint: str | Path | None) -> TrainResult:
    if spec.train.steps == 0:
        _check_as_loaded(model, spec)
        logger.info("%s: train.steps is 0, keeping the weights of %s as they are", spec.key, spec.weights_file)
        return TrainResult(steps=0, losses=(), resumed_from=0, seconds=0.0, steps_per_second=0.0)
    train_set = restrict_classes(split_dataset(data, "train", data.splits().train, spec.in_chans), spec.classes)
    return train_classifier(model, train_set, spec.train, checkpoint_path=checkpoint)


def train_model(
    spec: ModelSpec,
    data: DataSpec,
    weights_out: str | Path,
    metrics_out: str | Path,
    checkpoint: str | Path | None = None,
) -> dict[str, Any]:
    """Train or fine-tune (resuming from ``checkpoint`` if present), evaluate, and write weights + metrics atomically.

    Runs on the first GPU when there is one (:func:`training_device`). With ``train.steps: 0`` (pretrained weights
    from a file) nothing is trained: the weights are evaluated and written as they are.
    """
    heldout = restrict_classes(split_dataset(data, "test", data.splits().heldout, spec.in_chans), spec.classes)
    model = build(spec, data).to(training_device())
    result = _fit(model, spec, data, checkpoint)
    accuracy = evaluate_accuracy(model, heldout)
    model.cpu()
    metrics = {
        "key": spec.key,
        "arch": spec.arch,
        "parameters": sum(p.numel() for p in model.parameters()),
        "initial_weights": spec.weights_file or ("timm hub" if spec.pretrained else "random"),
        "heldout_accuracy": accuracy,
        "final_loss": result.final_loss,
        "steps": result.steps,
        "steps_per_second": result.steps_per_second,
        "train_seconds": result.seconds,
        "train_config": asdict(spec.train),
        "classes": None if spec.classes is None else list(spec.classes),
        "data": asdict(data),
    }
    logger.info("%s (%s): held-out accuracy %.4f after %d steps", spec.key, spec.arch, accuracy, result.steps)
    write_safetensors(
        {k: v.contiguous() for k, v in model.state_dict().items()}, weights_out, {"arch": spec.arch, "key": spec.key}
    )
    with atomic_path(metrics_out) as tmp:
        tmp.write_text(json.dumps(metrics, indent=2))
    return metrics


def load_model(spec: ModelSpec, data: DataSpec, weights: str | Path) -> nn.Module:
    """Rebuild a trained model from its safetensors weights, in eval mode (offline: nothing is downloaded).

    A pretrained model is rebuilt in its pretrained layout (a ResNet keeps its 7x7 stem) straight from ``weights``.
    """
    if spec.pretrained:
        model = build_model(
            spec.arch,
            num_classes=spec.num_classes,
            in_chans=spec.in_chans,
            img_size=data.img_size,
            pretrained=True,
            weights_file=weights,
        )
    else:
        model = build(spec, data)
        model.load_state_dict(load_file(str(weights)))
    return model.eval()
