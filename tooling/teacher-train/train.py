"""Trains the built-in `fashion-mnist` teacher with SimCLR (Chen et al. 2020) on the Fashion-MNIST
train split, without its labels, deterministically from a seed.

    GLIBC_TUNABLES=glibc.malloc.hugetlb=1 /usr/bin/python3 train.py --out runs/teacher

Writes `<out>/checkpoint.pt` after every epoch (a killed run continues from it with the same result
as an unbroken one: model, head, optimiser and epoch are restored and each epoch's random numbers
come from `seed` and the epoch number only), `<out>/log.jsonl`, and at the end `<out>/teacher.pt`.
Labels are read only by the optional `--eval-every` check, never by training.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F

from augment import AugmentOptions, random_view
from fmnist import load_split
from model import ExportWrapper, ProjectionHead, TeacherNet, count_macs, normalize


@dataclass
class Recipe:
    """Every setting of the recipe; the defaults are the shipped teacher's."""

    arch: str = "resnet-s"
    seed: int = 0
    epochs: int = 15
    # SimCLR batch: every image gives two views, so the contrastive softmax is over 2·batch − 1.
    batch: int = 256
    # SimCLR's NT-Xent temperature; 0.2 is a good value for small batches (Chen et al. 2020, B.9).
    temperature: float = 0.2
    # SGD with momentum, cosine schedule after a linear warm-up, as SimCLR's small-batch CIFAR runs.
    lr: float = 0.3
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_steps: int = 100
    # Projection head g(·): dim → hidden → out (dropped from the exported teacher).
    head_hidden: int = 512
    head_out: int = 128
    threads: int = 2
    # Train on the first N images only (0 = all 60000): for smoke tests, not for the shipped teacher.
    subset: int = 0
    augment: AugmentOptions = field(default_factory=AugmentOptions)


def nt_xent(z: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's loss. z: 2B×d projections, rows i and i+B are the two views of image i."""
    z = F.normalize(z, dim=1)
    n = z.shape[0] // 2
    sim = z @ z.t() / temperature  # 2B×2B cosine similarities / τ
    sim.fill_diagonal_(float("-inf"))  # a view is not its own positive nor a negative
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)])
    return F.cross_entropy(sim, target)


def lr_at(step: int, total: int, r: Recipe) -> float:
    if step < r.warmup_steps:
        return r.lr * (step + 1) / r.warmup_steps
    p = (step - r.warmup_steps) / max(1, total - r.warmup_steps)
    return r.lr * 0.5 * (1 + math.cos(math.pi * p))


def build(r: Recipe) -> tuple[TeacherNet, ProjectionHead]:
    torch.manual_seed(r.seed)
    net = TeacherNet(r.arch)
    head = ProjectionHead(net.dim, r.head_hidden, r.head_out)
    return net, head


def load_teacher(path: str, pool: str = "avg") -> ExportWrapper:
    """A checkpoint or teacher.pt → the ExportWrapper (NHWC [B, 28, 28, 1] in [0, 1] → features), eval mode."""
    state = torch.load(path, map_location="cpu")
    recipe = state["recipe"]
    net = TeacherNet(recipe["arch"])
    net.load_state_dict(state["net"])
    wrapper = ExportWrapper(net, pool)
    wrapper.eval()
    return wrapper


def train(r: Recipe, out: str, data: str, eval_every: int = 0, stop_after_epochs: int = 0) -> None:
    """Runs (or resumes) the recipe; `stop_after_epochs` > 0 stops this call early, as a kill would."""
    torch.set_num_threads(r.threads)
    torch.use_deterministic_algorithms(True)
    os.makedirs(out, exist_ok=True)
    images, _ = load_split(data, "train")  # labels are not used
    if r.subset:
        images = images[: r.subset]
    n = images.shape[0]
    steps_per_epoch = n // r.batch  # the last partial batch of each epoch is dropped
    total = steps_per_epoch * r.epochs

    net, head = build(r)
    model = torch.nn.Sequential(net, head).to(memory_format=torch.channels_last)
    params_bn = [p for name, p in model.named_parameters() if p.ndim <= 1]
    params_w = [p for name, p in model.named_parameters() if p.ndim > 1]
    # No weight decay on BatchNorm parameters and biases (as SimCLR's LARS exclusion).
    opt = torch.optim.SGD(
        [{"params": params_w, "weight_decay": r.weight_decay}, {"params": params_bn, "weight_decay": 0.0}],
        lr=r.lr,
        momentum=r.momentum,
    )
    ckpt_path = os.path.join(out, "checkpoint.pt")
    start_epoch = 0
    spent = 0.0
    if os.path.exists(ckpt_path):
        state = torch.load(ckpt_path, map_location="cpu")
        if state["recipe"] != asdict(r):
            raise SystemExit(f"{ckpt_path} was written by another recipe:\n{state['recipe']}\nexpected\n{asdict(r)}")
        net.load_state_dict(state["net"])
        head.load_state_dict(state["head"])
        opt.load_state_dict(state["opt"])
        start_epoch = state["epoch"]
        spent = state["seconds"]
        print(f"resuming after epoch {start_epoch} ({spent:.0f} s so far)", flush=True)
    else:
        print(
            f"SimCLR {r.arch}: {sum(p.numel() for p in net.parameters()) / 1e6:.2f} M parameters, "
            f"{count_macs(net) / 1e6:.1f} MMAC/image, dim {net.dim}; {r.epochs} epochs × {steps_per_epoch} steps",
            flush=True,
        )
    log_path = os.path.join(out, "log.jsonl")
    for epoch in range(start_epoch, r.epochs):
        # Each epoch's order and views come from (seed, epoch) only: resuming changes nothing.
        gen = torch.Generator().manual_seed(r.seed * 100_003 + epoch)
        order = torch.randperm(n, generator=gen)
        model.train()
        t0 = time.time()
        loss_sum = 0.0
        for i in range(steps_per_epoch):
            step = epoch * steps_per_epoch + i
            for g in opt.param_groups:
                g["lr"] = lr_at(step, total, r)
            x = images[order[i * r.batch : (i + 1) * r.batch]].float().div_(255).unsqueeze(1)  # B×1×28×28
            views = torch.cat([random_view(x, gen, r.augment), random_view(x, gen, r.augment)])  # 2B×1×28×28
            z = model(normalize(views).contiguous(memory_format=torch.channels_last))  # 2B×head_out
            loss = nt_xent(z, r.temperature)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.item()
            if (i + 1) % 50 == 0:
                el = time.time() - t0
                print(
                    f"epoch {epoch + 1}/{r.epochs} step {i + 1}/{steps_per_epoch} loss {loss_sum / (i + 1):.4f} "
                    f"lr {opt.param_groups[0]['lr']:.4f} {(i + 1) * r.batch / el:.0f} images/s",
                    flush=True,
                )
        seconds = time.time() - t0
        spent += seconds
        entry = {"epoch": epoch + 1, "loss": loss_sum / steps_per_epoch, "seconds": round(seconds, 1), "images_per_s": round(steps_per_epoch * r.batch / seconds, 1)}
        if eval_every and ((epoch + 1) % eval_every == 0 or epoch + 1 == r.epochs):
            from evaluate import embed, knn

            xtr, ytr = load_split(data, "train")
            xte, yte = load_split(data, "t10k")
            w = ExportWrapper(net)
            entry.update(knn(embed(w, xtr), ytr.numpy(), embed(w, xte), yte.numpy()))
            model.train()
        print(json.dumps(entry), flush=True)
        with open(log_path, "a") as log:
            log.write(json.dumps(entry) + "\n")
        tmp = ckpt_path + ".tmp"
        torch.save({"recipe": asdict(r), "net": net.state_dict(), "head": head.state_dict(), "opt": opt.state_dict(), "epoch": epoch + 1, "seconds": spent}, tmp)
        os.replace(tmp, ckpt_path)
        if stop_after_epochs and epoch + 1 - start_epoch >= stop_after_epochs and epoch + 1 < r.epochs:
            print(f"stopping after epoch {epoch + 1} as asked; run again to resume", flush=True)
            return
    torch.save({"recipe": asdict(r), "net": net.state_dict(), "seconds": spent}, os.path.join(out, "teacher.pt"))
    print(f"done: {spent / 60:.1f} min of training; teacher in {os.path.join(out, 'teacher.pt')}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="run directory (checkpoint, log, teacher.pt)")
    ap.add_argument("--data", default=os.environ.get("FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist"))
    ap.add_argument("--eval-every", type=int, default=0, help="k-NN check on the test split every N epochs (reads labels)")
    defaults = Recipe()
    for name, value in asdict(defaults).items():
        if isinstance(value, (int, float, str)):
            ap.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    ap.add_argument("--crop-scale", type=float, default=defaults.augment.scale[0], help="smallest RandomResizedCrop area")
    args = ap.parse_args()
    fields = {k: getattr(args, k) for k in asdict(defaults) if k != "augment"}
    recipe = Recipe(**fields, augment=AugmentOptions(scale=(args.crop_scale, 1.0)))
    train(recipe, args.out, args.data, args.eval_every)


if __name__ == "__main__":
    main()
