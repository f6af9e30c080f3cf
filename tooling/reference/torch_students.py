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


class ResNet18Small(nn.Module):
    """`resnet18-small`: torchvision's ResNet-18 with a 3×3 stride-1 stem and no max-pool, every
    stage 64·width (at least 4) · 2^i channels wide; the pooled features. Names as torchvision's."""

    def __init__(self, channels: int = 1, width: float = 1.0):
        super().__init__()
        from torchvision.models.resnet import BasicBlock, conv1x1
        base = max(4, round(64 * width))
        self.conv1 = nn.Conv2d(channels, base, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(base)
        self.relu = nn.ReLU(inplace=True)
        cin = base
        for i in range(4):
            planes, blocks = base * 2 ** i, []
            for j in range(2):
                stride = 2 if j == 0 and i > 0 else 1
                down = None
                if stride != 1 or cin != planes:
                    down = nn.Sequential(conv1x1(cin, planes, stride), nn.BatchNorm2d(planes))
                blocks.append(BasicBlock(cin, planes, stride, down))
                cin = planes
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.avgpool(x).flatten(1)


def resnet18_small(channels: int = 1, width: float = 1.0) -> nn.Module:
    return ResNet18Small(channels, width)


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
        return resnet18_small(channels, width)
    if name in ("mobilenetv2", "mobilenetv2-small"):
        return mobilenetv2(channels, name == "mobilenetv2-small", width)
    raise SystemExit(f"error: unknown student {name}")
