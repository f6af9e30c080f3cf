"""The built-in Fashion-MNIST teacher: a small ResNet for 28 × 28 × 1 images.

The network takes NCHW images already normalised with the Fashion-MNIST mean/std; `ExportWrapper`
adds the layout change (NHWC → NCHW) and the normalisation so that the shipped ONNX model takes the
project's ImageBatch as it is: NHWC [B, 28, 28, 1], values in [0, 1].
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

# Pixel mean and standard deviation of the Fashion-MNIST train split (values in [0, 1]).
FMNIST_MEAN = 0.2860
FMNIST_STD = 0.3530


class BasicBlock(nn.Module):
    """ResNet basic block (He et al. 2016): two 3×3 convolutions and a shortcut."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = (
            nn.Identity()
            if stride == 1 and cin == cout
            else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + self.shortcut(x))


# name → (stem width, [(width, blocks, stride), ...]). Spatial sizes for 28 px input are noted.
ARCHS: dict[str, tuple[int, list[tuple[int, int, int]]]] = {
    # 28 → 14 → 7 → 4; one block per stage.
    "resnet-s": (32, [(64, 1, 2), (128, 1, 2), (256, 1, 2)]),
    # as resnet-s with a second block at 7 × 7 and 4 × 4.
    "resnet-m": (32, [(64, 1, 2), (128, 2, 2), (256, 2, 2)]),
    # narrow and cheap: 28 → 14 → 7.
    "resnet-xs": (24, [(48, 1, 2), (96, 1, 2), (192, 1, 1)]),
    # wide at low resolution: most parameters live at 7 × 7.
    "resnet-w": (32, [(64, 1, 2), (192, 1, 2), (384, 1, 1)]),
}


class TeacherNet(nn.Module):
    """Stem (3×3 conv, BN, ReLU) → residual stages → global average pool → features."""

    def __init__(self, arch: str = "resnet-s"):
        super().__init__()
        if arch not in ARCHS:
            raise ValueError(f"unknown arch {arch!r}; expected one of {sorted(ARCHS)}")
        stem, stages = ARCHS[arch]
        layers: list[nn.Module] = [nn.Conv2d(1, stem, 3, 1, 1, bias=False), nn.BatchNorm2d(stem), nn.ReLU(inplace=True)]
        cin = stem
        for width, blocks, stride in stages:
            for b in range(blocks):
                layers.append(BasicBlock(cin, width, stride if b == 0 else 1))
                cin = width
        self.trunk = nn.Sequential(*layers)
        self.dim = cin
        # The blocks of the last stage (the tail of `trunk`) and the width of the stage before it:
        # ExportWrapper's 'mid-grid4' stops before them.
        self.last_stage_blocks = stages[-1][1]
        self.mid_dim = stages[-2][0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: B×1×28×28 (normalised) → B×dim
        return torch.flatten(F.adaptive_avg_pool2d(self.trunk(x), 1), 1)


class ProjectionHead(nn.Module):
    """SimCLR's MLP head g(·): Linear → BN → ReLU → Linear. Used in training only, never exported."""

    def __init__(self, dim: int, hidden: int, out: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h)


def normalize(images01: torch.Tensor) -> torch.Tensor:
    """B×1×H×W in [0, 1] → normalised with the Fashion-MNIST mean/std."""
    return (images01 - FMNIST_MEAN) / FMNIST_STD


# How a feature map becomes the embedding (see ExportWrapper).
POOLS = ("avg", "grid2", "mid-grid4")


class ExportWrapper(nn.Module):
    """What the ONNX file contains: NHWC [B, 28, 28, 1] in [0, 1] → features.

    pool 'avg': global average pooling, [B, C] (the SimCLR representation h).
    pool 'grid2': average pooling over the four 2×2 quadrants of the last 4×4 map, [B, 4C]: the same
    features, keeping where on the (centred) garment they are.
    pool 'mid-grid4': the output of the stage before the last (C' channels at 7 × 7 for resnet-s),
    averaged over 3 × 3 windows with stride 2 (padding not counted) into a 4 × 4 grid, [B, 16C']. The
    last stage is not run. On Fashion-MNIST this layer's neighbours are the better ones (model card).
    """

    def __init__(self, net: TeacherNet, pool: str = "avg"):
        super().__init__()
        if pool not in POOLS:
            raise ValueError(f"unknown pool {pool!r}; expected one of {POOLS}")
        self.net = net
        self.pool = pool
        self.dim = {"avg": net.dim, "grid2": 4 * net.dim, "mid-grid4": 16 * net.mid_dim}[pool]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = normalize(images.permute(0, 3, 1, 2))  # B×H×W×1 → B×1×H×W, normalised
        if self.pool == "mid-grid4":
            h = self.net.trunk[: len(self.net.trunk) - self.net.last_stage_blocks](x)  # B×C'×7×7
            return torch.flatten(F.avg_pool2d(h, 3, 2, 1, count_include_pad=False), 1)  # B×C'×4×4 → B×16C'
        h = self.net.trunk(x)  # B×C×4×4
        if self.pool == "grid2":
            return torch.flatten(F.avg_pool2d(h, 2), 1)  # B×C×2×2 → B×4C
        return torch.flatten(F.adaptive_avg_pool2d(h, 1), 1)  # B×C


def count_macs(net: nn.Module, shape=(1, 1, 28, 28)) -> int:
    """Multiply-accumulates of one forward pass (convolutions and linear layers)."""
    total = 0

    def conv_hook(m: nn.Conv2d, _inp, out):
        nonlocal total
        total += out.numel() // out.shape[0] * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

    def linear_hook(m: nn.Linear, _inp, out):
        nonlocal total
        total += m.in_features * m.out_features

    hooks = []
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
    was_training = net.training
    net.eval()
    with torch.no_grad():
        net(torch.zeros(shape))
    net.train(was_training)
    for h in hooks:
        h.remove()
    return total
