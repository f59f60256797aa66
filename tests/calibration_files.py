"""A tiny valid calibration as raw parts (JSON header + tensors), to damage and write back in the integrity tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from deepdrift.calibration import Calibration, CalibrationAccumulator, CalibrationConfig


def tiny_calibration() -> Calibration:
    """Two layers (3 and 2 features), 40 moment samples and 10 held out; principal axes on both."""
    acc = CalibrationAccumulator(CalibrationConfig(holdout_fraction=0.2, reservoir_size=16))
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        acc.update({"conv": torch.randn(10, 3, generator=g), "head.fc": torch.randn(10, 2, generator=g) * 3 + 1})
    return acc.finalize(
        metadata={
            "model_class": "Toy",
            "pooling": {"summary": "mean"},
            "taps": [{"name": "conv", "zone": "UV", "depth": 0.0}, {"name": "head.fc", "zone": "IR", "depth": 1.0}],
        }
    )


def raw_parts(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The decoded JSON header and the tensors of a saved calibration."""
    with safe_open(str(path), framework="pt") as handle:
        header = json.loads(handle.metadata()["deepdrift"])
    return header, load_file(str(path))


def write_raw(path: Path, header: Any, tensors: dict[str, torch.Tensor], *, raw_text: str | None = None) -> Path:
    """Write a calibration-like safetensors file from parts, valid or not (``raw_text`` replaces the JSON)."""
    text = raw_text if raw_text is not None else json.dumps(header)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata={"deepdrift": text})
    return path
