"""PyTorch reference of the `fashion-mnist` preset's CompRess run, written the way the paper's official
training loop is (`train_student.py` with the momentum loss: two queues, the key encoder an EMA of the
student), with the same inputs as compress: Fashion-MNIST, RandomResizedCrop(28, scale 0.2–1,
ratio 3/4–4/3) + horizontal flip through torchvision on PIL images, the same augmented batch to the
teacher and the student, the built-in teacher (its ONNX file, run here as PyTorch ops), the student
`alexnet-small` at width 0.25 normalised with the Fashion-MNIST mean/std, K = 8192, T = 0.04, SGD lr 0.01
momentum 0.9 weight decay 1e-4, 15 epochs with lr × 0.2 after epochs 10 and 13 (the official
`adjust_learning_rate`).

It then evaluates as compress does, on the full splits: 1-NN (cosine) of test against train features,
and cluster alignment (k-means with k = 10 classes, k-means++ and 20 iterations on the L2-normalised
train features; clusters mapped to classes by the Hungarian algorithm on |cluster ∩ class| / |cluster|;
accuracy of that map on the test split) over 5 k-means seeds, for the student, its random init and the
teacher. Writes one JSON file.

    /usr/bin/python3 train_student_reference.py --data /usr/share/datasets/fashion-mnist \\
        --teacher ../../packages/teacher/models/fashion-mnist-teacher.onnx --out reference.json

Runs on CPU (Debian's PyTorch) or CUDA (--device cuda); --max-steps and --subset make a short run.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import platform
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image
from scipy.optimize import linear_sum_assignment
from torchvision import transforms

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_students import alexnet_small  # noqa: E402

MEAN, STD = 0.286, 0.353  # the small students' Fashion-MNIST normalisation (compress's registry)


# ---------------------------------------------------------------- data


def read_idx(path: str) -> np.ndarray:
    with (gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")) as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def load_split(root: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    prefix = "train" if split == "train" else "t10k"
    def find(kind: str) -> str:
        for name in (f"{prefix}-{kind}-idx{3 if kind == 'images' else 1}-ubyte.gz", f"{prefix}-{kind}-idx{3 if kind == 'images' else 1}-ubyte"):
            if os.path.exists(os.path.join(root, name)):
                return os.path.join(root, name)
        raise SystemExit(f"error: no {prefix} {kind} IDX file in {root}")
    return read_idx(find("images")), read_idx(find("labels")).astype(np.int64)


class Augmented(torch.utils.data.Dataset):
    """The training view: PIL image → RandomResizedCrop(28) + flip → [1, 28, 28] in [0, 1]."""

    def __init__(self, images: np.ndarray, scale: tuple[float, float]):
        self.images = images
        self.transform = transforms.Compose([
            transforms.RandomResizedCrop(28, scale=scale, ratio=(3 / 4, 4 / 3)),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
        ])

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return i, self.transform(Image.fromarray(self.images[i], mode="L"))


# ---------------------------------------------------------------- networks


class OnnxAsTorch(nn.Module):
    """The built-in teacher's ONNX graph (Transpose, Sub, Div, Conv, Relu, Add, AveragePool, Flatten)
    evaluated with PyTorch ops, so that it runs where the student runs (CPU or CUDA)."""

    def __init__(self, path: str):
        super().__init__()
        import onnx
        from onnx import numpy_helper
        model = onnx.load(path)
        self.nodes = []
        for i, init in enumerate(model.graph.initializer):
            self.register_buffer(f"w{i}", torch.from_numpy(numpy_helper.to_array(init).copy()))
        self.names = {init.name: f"w{i}" for i, init in enumerate(model.graph.initializer)}
        self.consts = {}
        known = {"Transpose", "Constant", "Sub", "Div", "Conv", "Relu", "Add", "AveragePool", "Flatten"}
        for node in model.graph.node:
            if node.op_type not in known:
                raise SystemExit(f"error: the teacher uses {node.op_type}, which this reference does not evaluate")
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            if node.op_type == "Constant":
                self.consts[node.output[0]] = torch.from_numpy(numpy_helper.to_array(attrs["value"]).copy())
                continue
            self.nodes.append((node.op_type, list(node.input), node.output[0], attrs))
        self.input = model.graph.input[0].name
        self.output = model.graph.output[0].name

    def value(self, env: dict, name: str) -> torch.Tensor:
        if name in env:
            return env[name]
        if name in self.names:
            return getattr(self, self.names[name])
        return self.consts[name].to(next(iter(env.values())).device)

    @torch.no_grad()
    def forward(self, nhwc: torch.Tensor) -> torch.Tensor:
        env = {self.input: nhwc}
        for op, inputs, out, a in self.nodes:
            x = [self.value(env, n) for n in inputs]
            if op == "Transpose":
                y = x[0].permute(*a["perm"])
            elif op == "Sub":
                y = x[0] - x[1]
            elif op == "Div":
                y = x[0] / x[1]
            elif op == "Relu":
                y = F.relu(x[0])
            elif op == "Add":
                y = x[0] + x[1]
            elif op == "Flatten":
                y = torch.flatten(x[0], a.get("axis", 1))
            elif op == "Conv":
                p = a.get("pads", [0, 0, 0, 0])
                assert p[0] == p[2] and p[1] == p[3], "asymmetric pads"
                y = F.conv2d(x[0], x[1], x[2] if len(x) > 2 else None, stride=a.get("strides", [1, 1]),
                             padding=(p[0], p[1]), dilation=a.get("dilations", [1, 1]), groups=a.get("group", 1))
            elif op == "AveragePool":
                p = a.get("pads", [0, 0, 0, 0])
                y = F.avg_pool2d(x[0], a["kernel_shape"], a.get("strides", a["kernel_shape"]), (p[0], p[1]),
                                 ceil_mode=bool(a.get("ceil_mode", 0)),
                                 count_include_pad=bool(a.get("count_include_pad", 0)))
            env[out] = y
        return env[self.output]


# ---------------------------------------------------------------- the official loss (momentum variant)


class Queue(nn.Module):
    """A memory bank as the official SampleSimilarities: uniform in [−stdv, stdv], stdv = 1/√(D/3)."""

    def __init__(self, size: int, dim: int):
        super().__init__()
        stdv = 1.0 / math.sqrt(dim / 3)
        self.register_buffer("memory", torch.rand(size, dim).mul_(2 * stdv).add_(-stdv))
        self.index = 0

    def logits(self, q: torch.Tensor, t: float) -> torch.Tensor:
        return q @ self.memory.clone().t() / t  # a copy, as the official code: the enqueue below must not touch it

    @torch.no_grad()
    def enqueue(self, rows: torch.Tensor) -> None:
        ids = (torch.arange(rows.shape[0], device=rows.device) + self.index) % self.memory.shape[0]
        self.memory.index_copy_(0, ids, rows)
        self.index = (self.index + rows.shape[0]) % self.memory.shape[0]


def compress_momentum_loss(t, s, s_key, qt: Queue, qs: Queue, temperature: float) -> torch.Tensor:
    t, s, s_key = F.normalize(t, dim=1), F.normalize(s, dim=1), F.normalize(s_key, dim=1)
    p = F.softmax(qt.logits(t, temperature), dim=1)
    log_q = F.log_softmax(qs.logits(s, temperature), dim=1)
    loss = F.kl_div(log_q, p, reduction="batchmean")
    qs.enqueue(s_key)
    qt.enqueue(t)
    return loss


@torch.no_grad()
def moment_update(student: nn.Module, key: nn.Module, m: float) -> None:
    for p, k in zip(student.parameters(), key.parameters()):
        k.mul_(m).add_(p.detach(), alpha=1 - m)


# ---------------------------------------------------------------- evaluation


@torch.no_grad()
def features(fn, images: np.ndarray, device: str, batch: int = 2048) -> torch.Tensor:
    out = []
    for i in range(0, len(images), batch):
        x = torch.from_numpy(np.ascontiguousarray(images[i : i + batch]).copy()).to(device).float().div_(255).unsqueeze(1)
        out.append(fn(x).float())
    return torch.cat(out)


@torch.no_grad()
def knn1(train: torch.Tensor, train_y: torch.Tensor, test: torch.Tensor, test_y: torch.Tensor) -> float:
    a, b = F.normalize(train, dim=1), F.normalize(test, dim=1)
    hits = 0
    for i in range(0, len(b), 1024):
        nearest = (b[i : i + 1024] @ a.t()).argmax(dim=1)
        hits += (train_y[nearest] == test_y[i : i + 1024]).sum().item()
    return 100.0 * hits / len(b)


@torch.no_grad()
def kmeans(x: torch.Tensor, k: int, iterations: int, seed: int) -> torch.Tensor:
    """k-means++ seeding, then Lloyd iterations; returns the centroids."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    n = x.shape[0]
    centroids = [x[torch.randint(n, (1,), generator=g).item()]]
    d2 = ((x - centroids[0]) ** 2).sum(1)
    for _ in range(1, k):
        probs = (d2 / d2.sum()).cpu().double()
        i = torch.multinomial(probs, 1, generator=g).item()
        centroids.append(x[i])
        d2 = torch.minimum(d2, ((x - x[i]) ** 2).sum(1))
    c = torch.stack(centroids)
    for _ in range(iterations):
        assign = torch.cdist(x, c).argmin(1)
        for j in range(k):
            members = x[assign == j]
            if len(members):
                c[j] = members.mean(0)
    return c


@torch.no_grad()
def cluster_alignment(train, train_y, test, test_y, classes: int, seeds: list[int]) -> list[float]:
    a, b = F.normalize(train, dim=1), F.normalize(test, dim=1)
    out = []
    for seed in seeds:
        c = kmeans(a, classes, 20, seed)
        ca, cb = torch.cdist(a, c).argmin(1).cpu().numpy(), torch.cdist(b, c).argmin(1).cpu().numpy()
        counts = np.zeros((classes, classes))
        np.add.at(counts, (ca, train_y.cpu().numpy()), 1)
        score = counts / np.maximum(counts.sum(1, keepdims=True), 1)
        rows, cols = linear_sum_assignment(score, maximize=True)
        mapping = dict(zip(rows, cols))
        out.append(100.0 * float(np.mean([mapping[int(k)] == int(y) for k, y in zip(cb, test_y.cpu().numpy())])))
    return out


def evaluate(name, fn, data, device, seeds):
    (xtr, ytr), (xte, yte) = data
    ftr, fte = features(fn, xtr, device), features(fn, xte, device)
    ytr_t, yte_t = torch.from_numpy(ytr).to(device), torch.from_numpy(yte).to(device)
    nn1 = knn1(ftr, ytr_t, fte, yte_t)
    ca = cluster_alignment(ftr, ytr_t, fte, yte_t, 10, seeds)
    row = {"nn": nn1, "ca": ca, "caMean": float(np.mean(ca)), "caSd": float(np.std(ca, ddof=1)) if len(ca) > 1 else 0.0}
    print(f"{name}: 1-NN {nn1:.2f}  CA {row['caMean']:.2f} ± {row['caSd']:.2f}", flush=True)
    return row


# ---------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--teacher", required=True, help="the built-in teacher's ONNX file")
    ap.add_argument("--out", required=True, help="JSON file to write")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: PyTorch's choice)")
    ap.add_argument("--workers", type=int, default=4, help="DataLoader workers")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--milestones", default="10,13")
    ap.add_argument("--gamma", type=float, default=0.2)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--queue", type=int, default=8192)
    ap.add_argument("--temperature", type=float, default=0.04)
    ap.add_argument("--key-momentum", type=float, default=0.999)
    ap.add_argument("--width", type=float, default=0.25)
    ap.add_argument("--scale", default="0.2,1")
    ap.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (0: the whole budget)")
    ap.add_argument("--subset", type=int, default=0, help="train on the first N images (0: all)")
    ap.add_argument("--eval-every", type=int, default=0, help="also evaluate 1-NN every N epochs (the curve)")
    ap.add_argument("--ca-seeds", type=int, default=5)
    ap.add_argument("--eval-subset", type=int, default=0, help="evaluate on the first N images of each split (0: all)")
    args = ap.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    device = args.device
    train, test = load_split(args.data, "train"), load_split(args.data, "test")
    xtr = train[0][: args.subset] if args.subset else train[0]
    cut = (lambda split: (split[0][: args.eval_subset], split[1][: args.eval_subset])) if args.eval_subset else (lambda split: split)
    data = (cut(train), cut(test))
    seeds = list(range(args.ca_seeds))

    teacher = OnnxAsTorch(args.teacher).to(device).eval()
    student = alexnet_small(args.width).to(device)
    key = alexnet_small(args.width).to(device)
    key.load_state_dict(student.state_dict())  # moment_update(student, key, 0)
    for p in key.parameters():
        p.requires_grad_(False)
    key.eval()  # no BatchNorm in alexnet-small: eval mode is the official key's mode
    probe = torch.zeros(2, 28, 28, 1, device=device)
    qt = Queue(args.queue, teacher(probe).shape[1]).to(device)
    qs = Queue(args.queue, student(torch.zeros(2, 1, 28, 28, device=device)).shape[1]).to(device)
    optimizer = torch.optim.SGD(student.parameters(), lr=args.lr, momentum=0.9, weight_decay=1e-4)
    milestones = [int(m) for m in args.milestones.split(",") if m]
    scale = tuple(float(v) for v in args.scale.split(","))
    loader = torch.utils.data.DataLoader(Augmented(xtr, scale), batch_size=args.batch, shuffle=True,
                                         num_workers=args.workers, pin_memory=device != "cpu",
                                         persistent_workers=args.workers > 0, drop_last=False)
    norm = lambda x: (x - MEAN) / STD

    results = {"reference": "PyTorch, the official train_student.py loop (momentum variant)", "args": vars(args)}
    student.eval()
    results["randomInit"] = evaluate("random init", lambda x: student(norm(x)), data, device, seeds)
    results["teacher"] = evaluate("teacher", lambda x: teacher(x.permute(0, 2, 3, 1)), data, device, seeds)

    step, started, curve, losses = 0, time.time(), [], []
    for epoch in range(1, args.epochs + 1):
        lr = args.lr * args.gamma ** sum(epoch > m for m in milestones)
        for g in optimizer.param_groups:
            g["lr"] = lr
        student.train()
        for _, x in loader:
            x = x.to(device, non_blocking=True)
            t = teacher(x.permute(0, 2, 3, 1))
            s = student(norm(x))
            with torch.no_grad():
                s_key = key(norm(x))
            loss = compress_momentum_loss(t, s, s_key, qt, qs, args.temperature)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            moment_update(student, key, args.key_momentum)
            step += 1
            losses.append((step, loss.item()))
            if step % 200 == 0:
                print(f"epoch {epoch} step {step} loss {loss.item():.4f} lr {lr:g} ({step / (time.time() - started):.1f} steps/s)", flush=True)
            if args.max_steps and step >= args.max_steps:
                break
        if args.eval_every and epoch % args.eval_every == 0:
            student.eval()
            (xa, ya), (xb, yb) = data
            fa, fb = features(lambda x: student(norm(x)), xa, device), features(lambda x: student(norm(x)), xb, device)
            nn1 = knn1(fa, torch.from_numpy(ya).to(device), fb, torch.from_numpy(yb).to(device))
            curve.append({"epoch": epoch, "step": step, "nn": nn1})
            print(f"epoch {epoch}: 1-NN {nn1:.2f}", flush=True)
        if args.max_steps and step >= args.max_steps:
            break
    seconds = time.time() - started
    student.eval()
    results["student"] = evaluate("student (momentum)", lambda x: student(norm(x)), data, device, seeds)
    results["student"].update({"steps": step, "trainSeconds": seconds})
    results["curve"] = curve
    results["loss"] = losses[:: max(1, len(losses) // 400)]
    results["machine"] = {"torch": torch.__version__, "python": platform.python_version(), "device": device,
                          "gpu": torch.cuda.get_device_name(0) if device.startswith("cuda") else None,
                          "cpu": platform.processor() or platform.machine()}
    with open(args.out + ".tmp", "w") as f:
        json.dump(results, f, indent=1)
    os.replace(args.out + ".tmp", args.out)
    print(f"wrote {args.out} ({step} steps in {seconds:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
