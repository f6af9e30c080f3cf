"""Batched, seeded augmentations for 28 × 28 grayscale images (whole batches at once, no workers).

Per view: RandomResizedCrop (scale, ratio as torchvision, done as one affine resampling of the
whole batch), horizontal flip (p = 0.5), brightness/contrast jitter (p = 0.8). Every random number
comes from the `torch.Generator` passed in, so a seed fixes the views.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentOptions:
    # RandomResizedCrop area range. Fashion-MNIST items are centred and fill the frame: crops much
    # smaller than half the image lose the garment's shape, which is what k-NN needs to see.
    scale: tuple[float, float] = (0.35, 1.0)
    # RandomResizedCrop aspect-ratio range (torchvision's default).
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip: float = 0.5
    # Probability and strength of brightness/contrast jitter (SimCLR's colour jitter without hue
    # and saturation, which grayscale has not).
    jitter: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4


def random_view(images: torch.Tensor, gen: torch.Generator, opts: AugmentOptions = AugmentOptions()) -> torch.Tensor:
    """images: B×1×H×W float in [0, 1] → one augmented view, same shape, values in [0, 1]."""
    b = images.shape[0]

    def u(lo: float, hi: float) -> torch.Tensor:
        return torch.rand(b, generator=gen) * (hi - lo) + lo

    # RandomResizedCrop: area fraction a and aspect r give the crop's width/height as fractions of
    # the image side; the crop lies inside the image. Sampled once (no rejection loop): w, h ≤ 1.
    area = u(*opts.scale)
    log_r = u(math.log(opts.ratio[0]), math.log(opts.ratio[1]))
    r = torch.exp(log_r)
    w = torch.sqrt(area * r).clamp(max=1.0)
    h = torch.sqrt(area / r).clamp(max=1.0)
    cx = (torch.rand(b, generator=gen) * 2 - 1) * (1 - w)  # centre in [-1+w, 1-w] (normalised coords)
    cy = (torch.rand(b, generator=gen) * 2 - 1) * (1 - h)
    flip = torch.where(torch.rand(b, generator=gen) < opts.flip, -1.0, 1.0)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = w * flip
    theta[:, 0, 2] = cx
    theta[:, 1, 1] = h
    theta[:, 1, 2] = cy
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)  # B×H×W×2
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    # Brightness/contrast jitter (torchvision order: brightness, then contrast around the mean).
    apply = (torch.rand(b, generator=gen) < opts.jitter).float().view(b, 1, 1, 1)
    bright = u(1 - opts.brightness, 1 + opts.brightness).view(b, 1, 1, 1)
    contr = u(1 - opts.contrast, 1 + opts.contrast).view(b, 1, 1, 1)
    jittered = (out * bright).clamp(0, 1)
    mean = jittered.mean(dim=(1, 2, 3), keepdim=True)
    jittered = ((jittered - mean) * contr + mean).clamp(0, 1)
    return apply * jittered + (1 - apply) * out
