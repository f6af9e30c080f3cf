"""Exports a trained teacher (teacher.pt from train.py) to the ONNX file compress ships.

    /usr/bin/python3 export_onnx.py runs/teacher/teacher.pt ../../packages/teacher/models/fashion-mnist-teacher.onnx

The ONNX model takes `images` NHWC [batch, 28, 28, 1], values in [0, 1] (compress's ImageBatch as it is), normalises
inside with the Fashion-MNIST mean/std and returns `features` [batch, D] (the backbone's pooled features; the SimCLR
projection head is not exported). Use it with OnnxTeacher.create(file, { inputLayout: 'NHWC', normalize: 'none' }).
After writing it runs onnx.checker and compares the file, run by onnxruntime-node through compress's OnnxTeacher,
with PyTorch in eval mode, printing the largest difference.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import onnx
import torch

from train import load_teacher

HERE = os.path.dirname(os.path.abspath(__file__))
RUNNER = os.path.join(HERE, "..", "teacher-export", "run_onnx_teacher.mjs")


def export(checkpoint: str, out: str, pool: str = "avg", opset: int = 13) -> None:
    state = torch.load(checkpoint, map_location="cpu")
    wrapper = load_teacher(checkpoint, pool)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(
            wrapper,
            torch.rand(1, 28, 28, 1),
            out,
            input_names=["images"],
            output_names=["features"],
            dynamic_axes={"images": {0: "batch"}, "features": {0: "batch"}},
            opset_version=opset,
            do_constant_folding=True,
            training=torch.onnx.TrainingMode.EVAL,
        )
    wrapper.eval()  # torch.onnx.export restores the modules' previous modes; be explicit for the check below
    proto = onnx.load(out)
    recipe = state["recipe"]
    meta = {
        "compress.model": "fashion-mnist-teacher",
        "compress.recipe": json.dumps(recipe),
        "compress.pool": pool,
        "compress.onnxTeacherOptions": json.dumps({"inputLayout": "NHWC", "normalize": "none"}),
    }
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.doc_string = "compress built-in Fashion-MNIST teacher: SimCLR, trained by tooling/teacher-train"
    onnx.save(proto, out)
    onnx.checker.check_model(out)
    size = os.path.getsize(out)
    print(f"wrote {out} ({size / 2**20:.2f} MiB): images [batch, 28, 28, 1] → features [batch, {wrapper.dim}]; onnx.checker: ok")

    node = shutil.which("node")
    if node is None:
        raise SystemExit("cannot check the ONNX output: `node` is not on PATH")
    images = torch.rand(16, 28, 28, 1, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        reference = wrapper(images).numpy()
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = os.path.join(tmp, "x.f32"), os.path.join(tmp, "y.f32")
        images.numpy().astype("<f4").tofile(src)
        spec = {"model": os.path.abspath(out), "images": src, "shape": [16, 28, 28, 1], "options": {"inputLayout": "NHWC", "normalize": "none"}, "features": dst}
        run = subprocess.run([node, RUNNER, json.dumps(spec)], capture_output=True, text=True)
        if run.returncode != 0:
            raise SystemExit(f"running {out} with OnnxTeacher failed:\n{run.stderr}")
        got = np.fromfile(dst, dtype="<f4").reshape(reference.shape)
    diff = float(np.abs(got - reference).max())
    print(f"check: largest |ONNX (onnxruntime-node via OnnxTeacher) − PyTorch (eval)| = {diff:.3g} (features up to {float(np.abs(reference).max()):.3g})")
    if diff > 1e-3 * max(1.0, float(np.abs(reference).max())):
        raise SystemExit("error: the ONNX model does not match PyTorch")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("out")
    ap.add_argument("--pool", default="avg", help="avg (global average, dim C), grid2 (2×2 quadrants, dim 4C) or mid-grid4 (the stage before the last on a 4×4 grid, dim 16C')")
    ap.add_argument("--opset", type=int, default=13)
    args = ap.parse_args()
    torch.set_num_threads(2)
    export(args.checkpoint, args.out, args.pool, args.opset)
    sys.exit(0)


if __name__ == "__main__":
    main()
