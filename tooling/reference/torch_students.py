"""compress's `-small` students as PyTorch modules (torchvision's networks with the registry's
small-input changes; PyTorch's default initialisation), returning the features compress's students
return. Shared by the PyTorch references of the benchmarks and the reproduction."""

from __future__ import annotations

import torch.nn as nn
import torchvision


def alexnet_small(width: float = 1.0, channels: int = 1, side: int = 28) -> nn.Module:
    """`alexnet-small`: 3×3 convolutions at stride 1, three 3/2 max-pools, two linear layers, ReLU on
    the features; channels × width (at least 8)."""
    w = lambda n: max(8, round(n * width))
    for _ in range(3):
        side = (side - 3) // 2 + 1
    hidden = max(8, round(1024 * width))
    return nn.Sequential(
        nn.Conv2d(channels, w(64), 3, 1, 1), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        nn.Conv2d(w(64), w(192), 3, 1, 1), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        nn.Conv2d(w(192), w(384), 3, 1, 1), nn.ReLU(inplace=True),
        nn.Conv2d(w(384), w(256), 3, 1, 1), nn.ReLU(inplace=True),
        nn.Conv2d(w(256), w(256), 3, 1, 1), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        nn.Flatten(),
        nn.Linear(w(256) * side * side, hidden), nn.ReLU(inplace=True),
        nn.Linear(hidden, hidden), nn.ReLU(inplace=True),
    )


def resnet18_small(channels: int = 1) -> nn.Module:
    """`resnet18-small`: a 3×3 stride-1 stem, no max-pool, the 512-d pooled features."""
    m = torchvision.models.resnet18()
    m.conv1 = nn.Conv2d(channels, 64, 3, 1, 1, bias=False)
    m.maxpool = nn.Identity()
    m.fc = nn.Identity()
    return m


def mobilenetv2(channels: int = 1, small: bool = True, width: float = 1.0) -> nn.Module:
    """`mobilenetv2(-small)`: the small form keeps stride 1 in the stem and the 24-channel stage."""
    setting = [[1, 16, 1, 1], [6, 24, 2, 1 if small else 2], [6, 32, 3, 2], [6, 64, 4, 2],
               [6, 96, 3, 1], [6, 160, 3, 2], [6, 320, 1, 1]]
    m = torchvision.models.MobileNetV2(width_mult=width, inverted_residual_setting=setting)
    m.features[0][0] = nn.Conv2d(channels, m.features[0][0].out_channels, 3, 1 if small else 2, 1, bias=False)
    m.classifier = nn.Identity()
    return m


def student(name: str, channels: int, side: int, width: float = 1.0) -> nn.Module:
    if name == "alexnet-small":
        return alexnet_small(width, channels, side)
    if name == "resnet18-small":
        if width != 1:
            raise SystemExit("error: the PyTorch resnet18-small is width 1 only")
        return resnet18_small(channels)
    if name in ("mobilenetv2", "mobilenetv2-small"):
        return mobilenetv2(channels, name == "mobilenetv2-small", width)
    raise SystemExit(f"error: unknown student {name}")
