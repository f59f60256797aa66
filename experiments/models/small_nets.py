"""Small from-scratch networks that train in minutes on a CPU: a plain CNN and a CIFAR-style ResNet-20.

Both carry a timm-style ``feature_info`` list (``num_chs``, ``reduction``, ``module``), so tap selection can
treat them like any timm model.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn


def small_cnn(num_classes: int = 10, in_chans: int = 1, img_size: int = 32) -> nn.Sequential:
    """Plain ``nn.Sequential`` CNN: (conv3x3-ReLU-maxpool) x 3 with 32/64/128 channels, then a linear head.

    About 113k parameters at 32x32 with 10 classes. The ReLUs are in-place on purpose: hooks that read
    activations must cope with tensors that a later module overwrites.
    """
    if img_size % 8:
        raise ValueError(f"small_cnn halves the image three times; img_size must be a multiple of 8, got {img_size}")
    widths = (in_chans, 32, 64, 128)
    layers: list[nn.Module] = []
    for c_in, c_out in itertools.pairwise(widths):
        layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
    side = img_size // 8
    model = nn.Sequential(*layers, nn.Flatten(), nn.Linear(widths[-1] * side * side, num_classes))
    model.feature_info = [  # modules named by their index in the Sequential
        {"num_chs": c, "reduction": 2 ** (i + 1), "module": str(3 * i + 2)} for i, c in enumerate(widths[1:])
    ]
    return model


class BasicBlock(nn.Module):
    """Two 3x3 convs with batch norm and an identity (or 1x1 projection) shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.act2 = nn.ReLU(inplace=True)
        self.downsample: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act2(out + self.downsample(x))


class CifarResNet(nn.Module):
    """ResNet for 32x32 inputs (He et al. 2016, sec. 4.2): 3x3 stem, three stages of 16/32/64 channels.

    timm has no CIFAR ResNet and its ResNet stem is fixed at 64 channels, hence this small class.
    Module names follow timm (``conv1``, ``layer1``..., ``fc``).
    """

    def __init__(self, depth: int = 20, num_classes: int = 10, in_chans: int = 3) -> None:
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2 (20, 32, 44, 56...), got {depth}")
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(in_chans, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.act1 = nn.ReLU(inplace=True)
        c_in = 16
        for stage, (c_out, stride) in enumerate(((16, 1), (32, 2), (64, 2)), start=1):
            blocks = [BasicBlock(c_in if b == 0 else c_out, c_out, stride if b == 0 else 1) for b in range(n)]
            self.add_module(f"layer{stage}", nn.Sequential(*blocks))
            c_in = c_out
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, num_classes)
        self.feature_info = [
            {"num_chs": 16, "reduction": 1, "module": "act1"},
            {"num_chs": 16, "reduction": 1, "module": "layer1"},
            {"num_chs": 32, "reduction": 2, "module": "layer2"},
            {"num_chs": 64, "reduction": 4, "module": "layer3"},
        ]
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.global_pool(x), 1))
