"""PyTorch reference for the teacher benchmark: torchvision ResNet-50 (random weights, eval, no grad) on the CPU.

    python3 torch_resnet50.py --threads 2 --batch 32 --size 224 --runs 5
Prints one JSON line: {"threads", "batch", "images_per_s" (median), "best_images_per_s", "runs"}.
"""

import argparse
import json
import statistics
import time

import torch
import torchvision

ap = argparse.ArgumentParser()
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--batch", type=int, default=32)
ap.add_argument("--size", type=int, default=224)
ap.add_argument("--runs", type=int, default=5)
args = ap.parse_args()
torch.set_num_threads(args.threads)
torch.manual_seed(0)
model = torchvision.models.resnet50()
model.fc = torch.nn.Identity()
model.eval()
x = torch.rand(args.batch, 3, args.size, args.size)
rates = []
with torch.no_grad():
    model(x)  # warm-up
    for _ in range(args.runs):
        t0 = time.perf_counter()
        model(x)
        rates.append(args.batch / (time.perf_counter() - t0))
print(json.dumps({"threads": args.threads, "batch": args.batch, "images_per_s": statistics.median(rates), "best_images_per_s": max(rates), "runs": rates}))
