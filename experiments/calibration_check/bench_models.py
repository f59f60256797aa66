"""The models the overhead benchmark times, and their images, built the same way in this process or a fresh one.

A :class:`ModelRecipe` is plain data (JSON), so the calibration-cost arms can rebuild the same model in a fresh
process and measure its peak memory alone. Study models come with their trained weights and the study's own
calibration and held-out images; reference architectures (torchvision, timm) get random weights and smooth
synthetic images, which time a forward pass as well as real ones do.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from experiments.calibration_check.config import ReferenceModel
from experiments.data.spec import DataSpec, split_dataset
from experiments.models.zoo import ModelSpec, load_model

Source = Literal["study", "torchvision", "timm"]


@dataclass(frozen=True)
class ModelRecipe:
    """How to build one timed model and its images.

    Attributes:
        label: the model's name in the tables (a study key, or ``name@resolution``).
        source: ``study`` (trained weights), ``torchvision`` or ``timm`` (random weights).
        name: the study key or the library's model name.
        resolution: input side length.
        in_chans: input channels.
        seed: seeds random weights and synthetic images.
        weights: the study model's safetensors file.
        spec: the study model's ``ModelSpec`` as a mapping (JSON-able).
        data: the study's ``DataSpec`` as a mapping.
        batch_sizes: the batch sizes to time it at (None: the benchmark's).
    """

    label: str
    source: Source
    name: str
    resolution: int
    in_chans: int = 3
    seed: int = 0
    weights: str | None = None
    spec: dict[str, Any] | None = field(default=None, hash=False)
    data: dict[str, Any] | None = field(default=None, hash=False)
    batch_sizes: tuple[int, ...] | None = None

    @classmethod
    def study(cls, spec: ModelSpec, data: DataSpec, weights: str | Path, seed: int = 0) -> ModelRecipe:
        """A trained study model at the study's resolution."""
        raw = {k: v for k, v in asdict(spec).items() if k != "key"}
        return cls(spec.key, "study", spec.key, data.img_size, spec.in_chans, seed, str(weights), raw, asdict(data))

    @classmethod
    def reference(cls, model: ReferenceModel, seed: int = 0) -> ModelRecipe:
        """A torchvision or timm architecture with random weights."""
        return cls(model.label, model.source, model.name, model.resolution, 3, seed, batch_sizes=model.batch_sizes)

    def build(self) -> nn.Module:
        """The model in eval mode on the CPU (offline: nothing is downloaded)."""
        if self.source == "study":
            return load_model(self._model_spec(), self._data_spec(), self._weights())
        torch.manual_seed(self.seed)
        if self.source == "torchvision":
            import torchvision

            return torchvision.models.get_model(self.name, weights=None).eval()
        import timm

        return timm.create_model(self.name, pretrained=False).eval()

    def calibration_images(self, n: int) -> torch.Tensor:
        """``n`` clean images to calibrate on: the study's calibration split, else smooth synthetic ones."""
        if self.source == "study":
            data = self._data_spec()
            images = split_dataset(data, "test", data.splits().calib, self.in_chans).tensors[0]
            return _first(images, n, f"{self.label}: the calibration split")
        return smooth_images(n, self.in_chans, self.resolution, self.seed)

    def timing_images(self, n: int) -> torch.Tensor:
        """``n`` images to time on: the study's held-out split, else other smooth synthetic ones."""
        if self.source == "study":
            data = self._data_spec()
            images = split_dataset(data, "test", data.splits().heldout, self.in_chans).tensors[0]
            return _first(images, n, f"{self.label}: the held-out split")
        return smooth_images(n, self.in_chans, self.resolution, self.seed + 1)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ModelRecipe:
        raw = json.loads(text)
        if raw.get("batch_sizes") is not None:
            raw["batch_sizes"] = tuple(raw["batch_sizes"])
        return cls(**raw)

    def _model_spec(self) -> ModelSpec:
        return ModelSpec.from_config(self.name, self._required(self.spec, "spec"))

    def _data_spec(self) -> DataSpec:
        return DataSpec.from_config(self._required(self.data, "data"))

    def _weights(self) -> str:
        return self._required(self.weights, "weights")

    def _required(self, value: Any, name: str) -> Any:
        if value is None:
            raise ValueError(f"study model {self.label!r} needs its {name}; build it with ModelRecipe.study")
        return value


def smooth_images(n: int, channels: int, size: int, seed: int, chunk: int = 64) -> torch.Tensor:
    """``n`` smooth random fields ``(n, channels, size, size)``, each standardised to mean 0 and sd 1.

    Coarse blobs plus a finer texture (bicubic-upsampled Gaussian noise at 4x4 and size/8 cells): images with the
    spatial correlation of natural ones, so pooled features are not the averaged-out constants of white noise.
    """
    gen = torch.Generator().manual_seed(seed)
    scales = ((4, 1.0), (max(4, size // 8), 0.5))
    noise = [(torch.randn(n, channels, cells, cells, generator=gen), weight) for cells, weight in scales]
    chunks = []
    for start in range(0, n, chunk):  # upsampled a chunk at a time: the same images whatever the chunk size
        field_ = sum(
            weight
            * F.interpolate(coarse[start : start + chunk], size=(size, size), mode="bicubic", align_corners=False)
            for coarse, weight in noise
        )
        mean = field_.mean(dim=(1, 2, 3), keepdim=True)
        std = field_.std(dim=(1, 2, 3), keepdim=True)
        chunks.append((field_ - mean) / std)
    return torch.cat(chunks) if chunks else torch.zeros(0, channels, size, size)


def _first(images: torch.Tensor, n: int, what: str) -> torch.Tensor:
    if len(images) < n:
        raise ValueError(f"{what} has {len(images)} images, fewer than the {n} asked for; lower the count")
    return images[:n]
