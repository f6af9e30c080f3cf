"""The torchvision side of @compress/data's benchmark: the same pipelines with PIL and DataLoader.

  imagefolder ROOT WORKERS EPOCHS: ImageFolder → RandomResizedCrop(224) + RandomHorizontalFlip →
      ToTensor → batches of 256.
  fashion-mnist ROOT WORKERS EPOCHS: Fashion-MNIST train (PIL 'L' images, as torchvision's
      FashionMNIST) → RandomResizedCrop(28, scale=(0.35, 1)) + RandomHorizontalFlip → ToTensor.

The first epoch warms up (workers start, files enter the page cache) and is not timed; the next
EPOCHS are. Prints one JSON line: images/s and CPU seconds of the main process and its workers.
"""

import gzip
import json
import os
import sys
import time

import numpy as np
import torch
import torchvision
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import datasets, transforms


def cpu_seconds(pids):
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick  # utime + stime
        except FileNotFoundError:
            pass
    return total


class FashionMnistTrain(Dataset):
    """What torchvision.datasets.FashionMNIST.__getitem__ does, over the Debian IDX files."""

    def __init__(self, root, transform):
        def read(name, offset):
            path = os.path.join(root, name)
            opener = gzip.open if os.path.exists(path + ".gz") else open
            with opener(path + ".gz" if opener is gzip.open else path, "rb") as f:
                return np.frombuffer(f.read(), dtype=np.uint8, offset=offset)

        self.data = torch.from_numpy(read("train-images-idx3-ubyte", 16).reshape(-1, 28, 28).copy())
        self.targets = torch.from_numpy(read("train-labels-idx1-ubyte", 8).astype(np.int64))
        self.transform = transform

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, index):
        img = Image.fromarray(self.data[index].numpy(), mode="L")
        return self.transform(img), int(self.targets[index])


def main():
    mode, root, workers, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    torch.set_num_threads(1)
    if mode == "imagefolder":
        tf = transforms.Compose(
            [transforms.RandomResizedCrop(224), transforms.RandomHorizontalFlip(), transforms.ToTensor()]
        )
        ds = datasets.ImageFolder(root, transform=tf)
    else:
        tf = transforms.Compose(
            [
                transforms.RandomResizedCrop(28, scale=(0.35, 1.0)),
                transforms.RandomHorizontalFlip(),
                transforms.ToTensor(),
            ]
        )
        ds = FashionMnistTrain(root, tf)
    dl = DataLoader(
        ds, batch_size=256, shuffle=True, num_workers=workers, persistent_workers=workers > 0, drop_last=False
    )
    for _ in dl:  # warm-up epoch
        pass
    it_pids = [os.getpid()] + [w.pid for w in getattr(dl._iterator, "_workers", [])]
    c0 = cpu_seconds(it_pids)
    t0 = time.perf_counter()
    n = 0
    for _ in range(epochs):
        for x, _y in dl:
            n += x.shape[0]
    dt = time.perf_counter() - t0
    cpu = cpu_seconds(it_pids) - c0
    print(
        json.dumps(
            {
                "images": n,
                "seconds": dt,
                "images_per_s": n / dt,
                "cpu_s": cpu,
                "torch": torch.__version__,
                "torchvision": torchvision.__version__,
                "pillow": Image.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()
