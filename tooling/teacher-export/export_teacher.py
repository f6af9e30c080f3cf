#!/usr/bin/env python3
"""Turns a self-supervised PyTorch checkpoint into an ONNX teacher for compress, head removed.

    /usr/bin/python3 export_teacher.py --format moco --checkpoint moco_v2_800ep_pretrain.pth.tar --out moco_v2.onnx
    /usr/bin/python3 export_teacher.py --format simclr --width 4 --checkpoint resnet50-4x.pth --out simclr_4x.onnx
    /usr/bin/python3 export_teacher.py --format swav --checkpoint swav_800ep_pretrain.pth.tar --out swav.onnx
    /usr/bin/python3 export_teacher.py --format torchvision --arch resnet50 [--checkpoint weights.pth] --out r50.onnx

Formats (what the public checkpoints hold):
  moco         MoCo v1/v2 (facebookresearch/moco): {'arch', 'state_dict': {'module.encoder_q.*', 'module.encoder_k.*',
               'module.queue', ...}}. The query encoder is kept; its fc (v1: linear, v2: MLP) is dropped.
  simclr       SimCLR v1 ResNet-50 (1x/2x/4x) converted to PyTorch by tonylins/simclr-converter: {'state_dict': keys of a
               torchvision-style ResNet-50 with every width × 1/2/4}. The supervised fc is dropped. Trained on images in
               [0, 1] without normalisation.
  swav         SwAV ResNet-50 (facebookresearch/swav): a state dict with 'module.' prefixes (or {'state_dict': ...});
               projection_head and prototypes are dropped.
  torchvision  any torchvision classification model by --arch, from a state dict (--checkpoint) or random weights; the
               classifier (fc / classifier / heads) is dropped.

The ONNX model has one input `images` and one output `features` [batch, D], a dynamic batch axis, opset 13 by default.
By default (--normalize inside) the model takes images as compress passes them, values in [0, 1], and normalises inside
(ImageNet mean/std for moco/swav/torchvision, none for simclr), so OnnxTeacher needs `normalize: 'none'`; with
--normalize outside the bare network is exported and OnnxTeacher must normalise (the command prints the options).
--layout nhwc makes the input NHWC, as compress's ImageBatch, so OnnxTeacher needs no transpose.

After exporting, the script checks the file with onnx.checker and compares its output, run by onnxruntime-node through
compress's own OnnxTeacher (node + @compress/teacher, built), with the PyTorch model in eval mode on random images, and
prints the largest difference. onnxruntime for Python is not needed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from typing import Callable

import numpy as np
import torch
import torch.nn as nn
import torchvision

HERE = os.path.dirname(os.path.abspath(__file__))
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
FORMATS = ("moco", "simclr", "swav", "torchvision")


class ExportError(Exception):
    """A refusal with a message for the user (bad checkpoint, unknown arch...)."""


def wide_resnet50(width: int) -> torchvision.models.ResNet:
    """ResNet-50 with every width × `width`, as SimCLR v1's 1x/2x/4x (the converter's resnet_wider)."""
    from torchvision.models.resnet import Bottleneck

    model = torchvision.models.resnet50()
    if width == 1:
        return model
    model.inplanes = 64 * width
    model.conv1 = nn.Conv2d(3, 64 * width, kernel_size=7, stride=2, padding=3, bias=False)
    model.bn1 = nn.BatchNorm2d(64 * width)
    model.layer1 = model._make_layer(Bottleneck, 64 * width, 3)
    model.layer2 = model._make_layer(Bottleneck, 128 * width, 4, stride=2)
    model.layer3 = model._make_layer(Bottleneck, 256 * width, 6, stride=2)
    model.layer4 = model._make_layer(Bottleneck, 512 * width, 3, stride=2)
    model.fc = nn.Linear(2048 * width, 1000)
    return model


def drop_head(model: nn.Module) -> nn.Module:
    """Replaces the classifier of a torchvision model by the identity: the output is the pooled features."""
    for name in ("fc", "classifier", "heads", "head"):
        if isinstance(getattr(model, name, None), nn.Module):
            setattr(model, name, nn.Identity())
            return model
    raise ExportError(f"cannot find the classifier of {type(model).__name__} (looked for fc, classifier, heads, head)")


def state_dict_of(checkpoint: object, path: str) -> dict[str, torch.Tensor]:
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get("state_dict"), dict):
        checkpoint = checkpoint["state_dict"]
    elif isinstance(checkpoint, dict) and isinstance(checkpoint.get("model"), dict):
        checkpoint = checkpoint["model"]
    if not isinstance(checkpoint, dict) or not all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        raise ExportError(f"{path}: expected a state dict (or a dict with 'state_dict'), found {type(checkpoint).__name__}")
    return checkpoint


def load_into(model: nn.Module, state: dict[str, torch.Tensor], path: str, fmt: str) -> None:
    """Loads `state` into `model` (head already dropped), refusing missing or unexpected backbone keys."""
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as error:  # shape mismatches
        lines = [line.strip() for line in str(error).splitlines() if "size mismatch" in line]
        raise ExportError(f"{path} does not fit the {fmt} model: {len(lines)} tensors of other shapes, e.g. {lines[0] if lines else error}") from None
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    if missing or result.unexpected_keys:
        raise ExportError(
            f"{path} does not fit the {fmt} model: {len(missing)} missing keys {missing[:5]}, "
            f"{len(result.unexpected_keys)} unexpected keys {result.unexpected_keys[:5]}"
        )


def build(fmt: str, checkpoint: str | None, arch: str, width: int) -> tuple[nn.Module, tuple[float, ...], tuple[float, ...]]:
    """The backbone (head removed, eval mode) and the normalisation its training used."""
    if fmt != "torchvision" and checkpoint is None:
        raise ExportError(f"--format {fmt} needs --checkpoint")
    raw = torch.load(checkpoint, map_location="cpu") if checkpoint else None
    if fmt == "moco":
        state = state_dict_of(raw, checkpoint)
        prefix = next((p for p in ("module.encoder_q.", "encoder_q.") if any(k.startswith(p) for k in state)), None)
        if prefix is None:
            raise ExportError(f"{checkpoint}: no 'module.encoder_q.*' keys; is this a MoCo checkpoint? keys start {list(state)[:3]}")
        arch = raw.get("arch", arch) if isinstance(raw, dict) else arch
        backbone = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix) and not k[len(prefix):].startswith("fc.")}
        model = drop_head(getattr(torchvision.models, arch)())
        load_into(model, backbone, checkpoint, f"MoCo {arch}")
        mean, std = IMAGENET_MEAN, IMAGENET_STD
    elif fmt == "simclr":
        if width not in (1, 2, 4):
            raise ExportError(f"--width must be 1, 2 or 4 for SimCLR v1 ResNet-50, got {width}")
        state = {k.removeprefix("module."): v for k, v in state_dict_of(raw, checkpoint).items()}
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        conv1 = state.get("conv1.weight")
        if conv1 is not None and conv1.shape[0] != 64 * width:
            raise ExportError(f"{checkpoint}: conv1 has {conv1.shape[0]} channels, a ResNet-50 ({width}x) has {64 * width}; pass --width {conv1.shape[0] // 64}")
        model = drop_head(wide_resnet50(width))
        load_into(model, state, checkpoint, f"SimCLR ResNet-50 ({width}x)")
        mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    elif fmt == "swav":
        state = {k.removeprefix("module."): v for k, v in state_dict_of(raw, checkpoint).items()}
        state = {k: v for k, v in state.items() if not k.startswith(("projection_head.", "prototypes."))}
        model = drop_head(getattr(torchvision.models, arch)())
        load_into(model, state, checkpoint, f"SwAV {arch}")
        mean, std = IMAGENET_MEAN, IMAGENET_STD
    elif fmt == "torchvision":
        if not hasattr(torchvision.models, arch):
            raise ExportError(f"torchvision has no model {arch!r}")
        model = getattr(torchvision.models, arch)()
        if raw is not None:
            model.load_state_dict(state_dict_of(raw, checkpoint))
        else:
            print(f"note: {arch} with random weights (no --checkpoint): for tests and benchmarks", file=sys.stderr)
        model = drop_head(model)
        mean, std = IMAGENET_MEAN, IMAGENET_STD
    else:
        raise ExportError(f"unknown --format {fmt!r}; expected one of {', '.join(FORMATS)}")
    model.eval()
    return model, mean, std


class Wrapped(nn.Module):
    """What the ONNX file computes: optional NHWC → NCHW, optional normalisation, the backbone, flatten."""

    def __init__(self, backbone: nn.Module, mean: tuple[float, ...] | None, std: tuple[float, ...] | None, nhwc: bool):
        super().__init__()
        self.backbone = backbone
        self.nhwc = nhwc
        self.normalize = mean is not None and (any(m != 0 for m in mean) or any(s != 1 for s in std))
        if self.normalize:
            self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
            self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.permute(0, 3, 1, 2) if self.nhwc else images  # B×H×W×3 → B×3×H×W
        if self.normalize:
            x = (x - self.mean) / self.std
        return torch.flatten(self.backbone(x), 1)  # B×D


def export(
    model: nn.Module,
    out: str,
    image_size: int,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    normalize_inside: bool,
    nhwc: bool,
    opset: int,
    metadata: dict[str, str],
) -> tuple[nn.Module, dict]:
    """Writes the ONNX file; returns the exported module (eval mode) and the OnnxTeacher options it needs."""
    import onnx

    wrapped = Wrapped(model, mean if normalize_inside else None, std if normalize_inside else None, nhwc)
    wrapped.eval()
    shape = (1, image_size, image_size, 3) if nhwc else (1, 3, image_size, image_size)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(
            wrapped,
            torch.rand(shape),
            out,
            input_names=["images"],
            output_names=["features"],
            dynamic_axes={"images": {0: "batch"}, "features": {0: "batch"}},
            opset_version=opset,
            do_constant_folding=True,
            training=torch.onnx.TrainingMode.EVAL,
        )
    # torch.onnx.export puts back the train/eval mode the modules had; set eval explicitly again so the PyTorch side
    # of the check below uses BatchNorm's running statistics, as the ONNX graph does.
    wrapped.eval()
    options: dict = {"inputLayout": "NHWC" if nhwc else "NCHW"}
    if normalize_inside or all(m == 0 for m in mean) and all(s == 1 for s in std):
        options["normalize"] = "none"
    elif tuple(mean) == IMAGENET_MEAN and tuple(std) == IMAGENET_STD:
        options["normalize"] = "imagenet"
    else:
        options["normalize"] = {"mean": list(mean), "std": list(std)}
    proto = onnx.load(out)
    meta = {**metadata, "compress.onnxTeacherOptions": json.dumps(options), "compress.imageSize": str(image_size)}
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, out)
    onnx.checker.check_model(out)
    return wrapped, options


def node_command() -> list[str] | None:
    node = shutil.which("node")
    return [node, os.path.join(HERE, "run_onnx_teacher.mjs")] if node else None


def verify(wrapped: nn.Module, out: str, image_size: int, options: dict, nhwc: bool, batch: int = 3, seed: int = 0) -> float:
    """Largest |ONNX − PyTorch| over `batch` random images in [0, 1] (ONNX run by compress's OnnxTeacher)."""
    cmd = node_command()
    if cmd is None:
        raise ExportError("cannot check the ONNX output: `node` is not on PATH (pass --skip-verify to export without the check)")
    gen = torch.Generator().manual_seed(seed)
    images = torch.rand(batch, image_size, image_size, 3, generator=gen)  # NHWC in [0, 1], as compress's ImageBatch
    wrapped.eval()
    with torch.no_grad():
        x = images if nhwc else images.permute(0, 3, 1, 2).contiguous()
        if not nhwc and options["normalize"] != "none":
            norm = options["normalize"]
            mean, std = (IMAGENET_MEAN, IMAGENET_STD) if norm == "imagenet" else (norm["mean"], norm["std"])
            x = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
        reference = wrapped(x).numpy()
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "images.f32")
        dst = os.path.join(tmp, "features.f32")
        images.numpy().astype("<f4").tofile(src)
        spec = {"model": out, "images": src, "shape": list(images.shape), "options": options, "features": dst}
        run = subprocess.run(cmd + [json.dumps(spec)], capture_output=True, text=True)
        if run.returncode != 0:
            raise ExportError(f"running {out} with OnnxTeacher failed:\n{run.stderr.strip() or run.stdout.strip()}")
        got = np.fromfile(dst, dtype="<f4").reshape(reference.shape)
    return float(np.abs(got - reference).max())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--format", required=True, choices=FORMATS)
    ap.add_argument("--checkpoint", help="the PyTorch checkpoint (torchvision: optional, random weights without it)")
    ap.add_argument("--out", required=True, help="the ONNX file to write")
    ap.add_argument("--arch", default="resnet50", help="torchvision architecture (moco: read from the checkpoint when present)")
    ap.add_argument("--width", type=int, default=1, help="SimCLR ResNet-50 width: 1, 2 or 4")
    ap.add_argument("--image-size", type=int, default=224, help="input side of the exported model (only the batch axis is dynamic: train with augment.size equal to it)")
    ap.add_argument("--normalize", choices=("inside", "outside"), default="inside", help="normalise inside the ONNX model (default) or leave it to OnnxTeacher")
    ap.add_argument("--layout", choices=("nchw", "nhwc"), default="nchw", help="input layout of the ONNX model")
    ap.add_argument("--opset", type=int, default=13)
    ap.add_argument("--seed", type=int, default=0, help="seed of random weights (torchvision without --checkpoint) and of the check's images")
    ap.add_argument("--tolerance", type=float, default=1e-3, help="largest allowed |ONNX − PyTorch| relative to the largest |PyTorch| feature")
    ap.add_argument("--skip-verify", action="store_true", help="do not run the ONNX model to compare it with PyTorch")
    args = ap.parse_args(argv)
    if args.opset < 13:
        ap.error("--opset must be at least 13")
    torch.manual_seed(args.seed)
    try:
        model, mean, std = build(args.format, args.checkpoint, args.arch, args.width)
        metadata = {"compress.format": args.format, "compress.source": os.path.basename(args.checkpoint or f"{args.arch} (random weights)")}
        wrapped, options = export(model, args.out, args.image_size, mean, std, args.normalize == "inside", args.layout == "nhwc", args.opset, metadata)
        with torch.no_grad():
            probe = torch.zeros((1, args.image_size, args.image_size, 3) if args.layout == "nhwc" else (1, 3, args.image_size, args.image_size))
            dim = wrapped(probe).shape[1]
        print(f"wrote {args.out}: images {'[batch, H, W, 3]' if args.layout == 'nhwc' else '[batch, 3, H, W]'} → features [batch, {dim}], opset {args.opset}; onnx.checker: ok")
        if not args.skip_verify:
            diff = verify(wrapped, args.out, args.image_size, options, args.layout == "nhwc", seed=args.seed)
            with torch.no_grad():
                scale = float(np.abs(wrapped(probe + 0.5).numpy()).max()) or 1.0
            print(f"check: largest |ONNX (onnxruntime-node via OnnxTeacher) − PyTorch (eval)| = {diff:.3g} (features up to {scale:.3g})")
            if diff > args.tolerance * max(scale, 1.0):
                print(f"error: the difference exceeds {args.tolerance} × {max(scale, 1.0):.3g}", file=sys.stderr)
                return 1
        print(f"use it with: OnnxTeacher.create('{args.out}', {json.dumps(options)})")
        return 0
    except ExportError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
