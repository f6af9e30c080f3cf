"""Measures SimCLR training throughput of the candidate teacher architectures on this machine.

    GLIBC_TUNABLES=glibc.malloc.hugetlb=1 /usr/bin/python3 throughput.py [arch ...] [--threads 2]

Prints parameters, forward MACs per image, and training images/s (one image = two augmented
views through forward + backward + SGD step), channels-first and channels-last.
"""

from __future__ import annotations

import argparse
import time

import torch

from augment import random_view
from model import ARCHS, ProjectionHead, TeacherNet, count_macs
from train import nt_xent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("archs", nargs="*", default=sorted(ARCHS))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=6)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(args.batch, 1, 28, 28)
    for arch in args.archs:
        for channels_last in (False, True):
            torch.manual_seed(0)
            net = TeacherNet(arch)
            head = ProjectionHead(net.dim, 512, 128)
            macs = count_macs(net)
            params = sum(p.numel() for p in net.parameters())
            model = torch.nn.Sequential(net, head)
            if channels_last:
                model = model.to(memory_format=torch.channels_last)
            opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
            times = []
            for step in range(args.steps + 2):
                t0 = time.perf_counter()
                x = torch.cat([random_view(images, gen), random_view(images, gen)])
                if channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                loss = nt_xent(model(x), 0.2)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if step >= 2:
                    times.append(time.perf_counter() - t0)
            best = min(times)
            print(
                f"{arch:10s} params {params / 1e6:5.2f} M  {macs / 1e6:6.1f} MMAC  "
                f"{'channels_last ' if channels_last else 'channels_first'}  "
                f"{args.batch / best:6.0f} images/s (best step), {args.batch * len(times) / sum(times):6.0f} (mean)",
                flush=True,
            )


if __name__ == "__main__":
    main()
