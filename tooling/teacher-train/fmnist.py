"""Fashion-MNIST IDX files (gzip) → uint8 tensors."""

from __future__ import annotations

import gzip
import os

import numpy as np
import torch


def _read_idx(path: str) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic = int.from_bytes(data[0:4], "big")
    ndim = magic & 0xFF
    if magic >> 8 != 0x08:
        raise ValueError(f"{path}: expected an IDX file of unsigned bytes (magic 0x0000080n), found {magic:#010x}")
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_split(root: str, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """split: 'train' or 't10k' → (N×28×28 uint8 images, N int64 labels)."""
    images = _read_idx(os.path.join(root, f"{split}-images-idx3-ubyte.gz"))
    labels = _read_idx(os.path.join(root, f"{split}-labels-idx1-ubyte.gz"))
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"{root}/{split}: {images.shape[0]} images but {labels.shape[0]} labels")
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64))
