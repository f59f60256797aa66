"""Replay precomputed per-image tap features through a real ``DeepDriftMonitor``.

A stream of thousands of batches per configuration would cost one forward pass of the network per batch and per
detector setting. In eval mode the pooled features of an image do not depend on its batch, so we compute them once
per image and feed batches of them to a monitor watching a tiny network of identity modules, one per real tap.
The monitor, its calibration, null model, p-values, per-layer FSMs and history are the library's own, unchanged;
``tests/experiments/test_streams_replay.py`` checks that replayed drift equals the real model's drift.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from deepdrift import DeepDriftMonitor, ObserverConfig


class ReplayNet(nn.Module):
    """Splits a packed ``(batch, sum of widths)`` tensor into one slice per tap and passes each through an identity.

    Child ``t{i}`` stands for the ``i``-th tap of the real network, so its output is exactly that tap's pooled
    features and the monitor's hooks capture them unchanged.
    """

    def __init__(self, widths: Sequence[int]) -> None:
        super().__init__()
        self.widths = list(widths)
        for i in range(len(widths)):
            self.add_module(f"t{i}", nn.Identity())

    def forward(self, packed: torch.Tensor) -> torch.Tensor:
        outputs = [getattr(self, f"t{i}")(part) for i, part in enumerate(packed.split(self.widths, dim=1))]
        return outputs[-1]


def pack(features: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Concatenate per-tap features (depth order) into the replay network's input."""
    return torch.cat([x.float() for x in features.values()], dim=1)


def replay_monitor(
    widths: Sequence[int],
    labels: Sequence[str],
    calib_packed: torch.Tensor,
    config: ObserverConfig = ObserverConfig(),
    calibration_batch: int = 128,
) -> DeepDriftMonitor:
    """A monitor over the replay network, calibrated on packed clean calibration features.

    Args:
        widths: feature width of each tap, depth order.
        labels: display labels of the real taps (they appear in alerts and timelines).
        calib_packed: packed calibration features.
        config: FSM thresholds.
        calibration_batch: batch size of the calibration pass (statistics are exact either way).
    """
    net = ReplayNet(widths).eval()  # no parameters, but a training-mode module makes the monitor warn
    layers_map = {label: f"t{i}" for i, label in enumerate(labels)}
    monitor = DeepDriftMonitor(net, drift_config=config, layers_map=layers_map)
    monitor.calibrate(calib_packed.split(calibration_batch), progress=False)
    return monitor


def with_config(monitor: DeepDriftMonitor, config: ObserverConfig) -> DeepDriftMonitor:
    """A new monitor with other FSM thresholds sharing ``monitor``'s calibration (no recalibration, same nulls)."""
    labels = [t.label for t in monitor.taps]
    other = DeepDriftMonitor(
        monitor.model,
        drift_config=config,
        layers_map={label: t.name for label, t in zip(labels, monitor.taps, strict=True)},
    )
    other.scorer = monitor.scorer  # shared calibration and cached null fits: scores are identical by construction
    other.reset()
    return other
