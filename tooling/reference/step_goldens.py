"""Golden values of three training steps, computed with PyTorch, for the step engines of
@compress/train: a small student of each architecture family (every layer kind the students use —
convolutions with bias, stride, padding, depthwise groups; train-mode BatchNorm with PyTorch's
running statistics; ReLU, ReLU6; max pooling, global average pooling; linear; residual adds;
flatten), fixed initial weights, the momentum CompRess step in the engines' order — the key
encoder's EMA, key features (train mode), the student's features, KL(p‖q) against the two queues,
backward, torch.optim.SGD (momentum 0.9, weight decay 1e-4), then both queues take the batch.

Writes one gzip'd JSON file (float32 arrays in base64, PyTorch layouts):

    /usr/bin/python3 tooling/reference/step_goldens.py packages/train/src/onnx/step-goldens.json.gz
"""

import base64
import gzip
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_students import student as build  # noqa: E402

B, DT, K, T, KEY_M = 16, 8, 64, 0.07, 0.9
# the students' input normalisation: Fashion-MNIST's for 1 channel, ImageNet's for 3 (compress's registry)
NORMALISATION = {1: ([0.286], [0.353]), 3: ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])}
CASES = [
    # Training BatchNorm students from their initialisation is ill-conditioned in float32 on any
    # engine: PyTorch against itself, with a 1e-6 change of the input pixels, moves resnet18-small's
    # weights after these 3 steps by up to 10% (seed-dependent) and mobilenetv2-small's by 100%. They
    # run at lr 0: the weights stay, and what is compared is the running statistics, the queues, the
    # losses and (resnet18-small) the momentum buffers, i.e. the gradients summed over the steps.
    {"arch": "alexnet-small", "width": 0.125, "side": 16, "lrs": [0.05, 0.05, 0.01]},
    {"arch": "resnet18-small", "width": 0.125, "side": 16, "channels": 3, "lrs": [0.0, 0.0, 0.0]},
    {"arch": "mobilenetv2-small", "width": 0.25, "side": 16, "lrs": [0.0, 0.0, 0.0], "buffers": False},
]


def b64(t: torch.Tensor) -> str:
    return base64.b64encode(t.detach().contiguous().float().numpy().astype("<f4").tobytes()).decode()


def state(module: torch.nn.Module, parameters: bool = True) -> dict:
    """The state_dict (without num_batches_tracked); `parameters=False`: the buffers only."""
    names = {n for n, _ in module.named_parameters()}
    return {k: {"shape": list(v.shape), "data": b64(v)} for k, v in module.state_dict().items()
            if not k.endswith("num_batches_tracked") and (parameters or k not in names)}


def run(case: dict, seed: int) -> dict:
    torch.manual_seed(seed)
    side, c = case["side"], case.get("channels", 1)
    mean, std = (torch.tensor(v).view(1, c, 1, 1) for v in NORMALISATION[c])
    student = build(case["arch"], c, side, case["width"])
    key = build(case["arch"], c, side, case["width"])
    key.load_state_dict(student.state_dict())
    for p in key.parameters():
        p.requires_grad_(False)
    initial = state(student)
    student.eval()  # the probe of the feature size must not move the running statistics
    with torch.no_grad():
        ds = student(torch.zeros(2, c, side, side)).shape[1]
    stdv_t, stdv_s = 1 / math.sqrt(DT / 3), 1 / math.sqrt(ds / 3)
    qt = torch.rand(K, DT) * 2 * stdv_t - stdv_t
    qs = torch.rand(K, ds) * 2 * stdv_s - stdv_s
    queues0 = {"teacher": b64(qt), "student": b64(qs)}
    images = [torch.rand(B, side, side, c) for _ in range(3)]  # NHWC, [0, 1]
    teacher = [torch.rand(B, DT) * 2 - 1 for _ in range(3)]
    optimizer = torch.optim.SGD(student.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    student.train()
    key.train()
    pointer, losses = 0, []
    for step in range(3):
        for g in optimizer.param_groups:
            g["lr"] = case["lrs"][step]
        with torch.no_grad():
            for pk, ps in zip(key.parameters(), student.parameters()):
                pk.mul_(KEY_M).add_(ps, alpha=1 - KEY_M)
        x = (images[step].permute(0, 3, 1, 2) - mean) / std
        with torch.no_grad():
            kn = F.normalize(key(x), dim=1)
        s = student(x)
        tn = F.normalize(teacher[step], dim=1)
        sn = F.normalize(s, dim=1)
        p = F.softmax(tn @ qt.t() / T, dim=1)
        log_q = F.log_softmax(sn @ qs.t() / T, dim=1)
        loss = F.kl_div(log_q, p, reduction="batchmean")
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        ids = (torch.arange(B) + pointer) % K
        qt[ids] = tn.detach()
        qs[ids] = kn
        pointer = (pointer + B) % K
    momentum = {name: {"shape": list(p.shape), "data": b64(optimizer.state[p]["momentum_buffer"])}
                for name, p in student.named_parameters() if p in optimizer.state and case.get("buffers", True)}
    return {
        **case,
        "batch": B, "teacherDim": DT, "queueSize": K, "temperature": T, "keyMomentum": KEY_M,
        "channels": c, "momentum": 0.9, "weightDecay": 1e-4, "mean": NORMALISATION[c][0], "std": NORMALISATION[c][1],
        "initial": initial,
        "queues": queues0,
        "images": [b64(i) for i in images],
        "teacher": [b64(t) for t in teacher],
        "after": {
            # at lr 0 the weights stay: only the running statistics are written
            "student": state(student, any(case["lrs"])),
            "key": state(key, any(case["lrs"])),
            "momentum": momentum,
            "queues": {"teacher": b64(qt), "student": b64(qs), "pointer": pointer},
            "losses": losses,
        },
    }


def main() -> int:
    out = sys.argv[1]
    torch.set_num_threads(1)
    data = {
        "about": "3 momentum CompRess steps per student, PyTorch " + torch.__version__ + ", tooling/reference/step_goldens.py",
        "cases": [run(c, i) for i, c in enumerate(CASES)],
    }
    with gzip.open(out + ".tmp", "wt") as f:
        json.dump(data, f)
    os.replace(out + ".tmp", out)
    print(f"wrote {out} ({os.path.getsize(out)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
