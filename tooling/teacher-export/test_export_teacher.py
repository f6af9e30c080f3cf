"""Builds random-weight checkpoints in each public format, exports them, and checks the ONNX files against PyTorch.

Run: /usr/bin/python3 -m unittest discover -s tooling/teacher-export -p 'test_*.py'
The numeric check runs the ONNX model with @compress/teacher's OnnxTeacher (node; the package must be built).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import tempfile
import unittest

import onnx
import torch
import torch.nn as nn
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export_teacher  # noqa: E402

torch.set_num_threads(int(os.environ.get("COMPRESS_TEST_THREADS", "2")))


def randomize_batchnorm(model: nn.Module, seed: int = 0) -> nn.Module:
    """Running statistics far from a batch's own, so a check run in train mode would fail."""
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=gen) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.bias.data.copy_(torch.rand(m.num_features, generator=gen) - 0.5)
    return model


def run_export(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = export_teacher.main(list(args))
    return code, out.getvalue(), err.getvalue()


def largest_difference(stdout: str) -> float:
    """The export check's largest |ONNX − PyTorch| as a fraction of the features' scale.

    onnxruntime's and PyTorch's float32 kernels differ between CPUs (AVX2, AVX-512) and thread
    counts, by amounts that grow with the features: only a relative bound holds on every machine.
    """
    match = re.search(r"largest \|ONNX .*\| = ([0-9.e+-]+) \(features up to ([0-9.e+-]+)\)", stdout)
    if match is None:
        raise AssertionError(f"no check line in:\n{stdout}")
    return float(match.group(1)) / max(float(match.group(2)), 1e-30)


def onnx_io(path: str) -> tuple[list, list]:
    model = onnx.load(path)
    dims = lambda v: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]  # noqa: E731
    return [(i.name, dims(i)) for i in model.graph.input], [(o.name, dims(o)) for o in model.graph.output]


class ExportTest(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)

    def path(self, name: str) -> str:
        return os.path.join(self.tmp.name, name)

    def moco_checkpoint(self, version: int) -> str:
        torch.manual_seed(1)
        encoder = randomize_batchnorm(torchvision.models.resnet18(num_classes=128))
        if version == 2:  # MoCo v2: MLP head
            encoder.fc = nn.Sequential(nn.Linear(512, 512), nn.ReLU(), encoder.fc)
        state = {f"module.encoder_q.{k}": v for k, v in encoder.state_dict().items()}
        state.update({f"module.encoder_k.{k}": v.clone() for k, v in encoder.state_dict().items()})
        state["module.queue"] = torch.randn(128, 64)
        state["module.queue_ptr"] = torch.zeros(1, dtype=torch.long)
        path = self.path(f"moco_v{version}.pth.tar")
        torch.save({"epoch": 200, "arch": "resnet18", "state_dict": state, "optimizer": {}}, path)
        return path

    def test_moco_v1_and_v2(self) -> None:
        for version in (1, 2):
            out = self.path(f"moco_v{version}.onnx")
            code, stdout, stderr = run_export("--format", "moco", "--checkpoint", self.moco_checkpoint(version), "--out", out, "--image-size", "64")
            self.assertEqual(code, 0, stderr)
            self.assertIn("features [batch, 512]", stdout)  # the 512-d backbone, not the 128-d head
            self.assertLess(largest_difference(stdout), 1e-4)
            self.assertIn("""use it with: OnnxTeacher.create('%s', {"inputLayout": "NCHW", "normalize": "none"})""" % out, stdout)
            inputs, outputs = onnx_io(out)
            self.assertEqual(inputs, [("images", ["batch", 3, 64, 64])])
            self.assertEqual(outputs, [("features", ["batch", 512])])
            model = onnx.load(out)
            self.assertGreaterEqual(model.opset_import[0].version, 13)
            meta = {p.key: p.value for p in model.metadata_props}
            self.assertEqual(meta["compress.format"], "moco")

    def test_simclr_resnet50_1x_without_normalisation(self) -> None:
        torch.manual_seed(2)
        model = randomize_batchnorm(export_teacher.wide_resnet50(1))
        ckpt = self.path("resnet50-1x.pth")
        torch.save({"state_dict": model.state_dict()}, ckpt)
        out = self.path("simclr.onnx")
        code, stdout, stderr = run_export("--format", "simclr", "--checkpoint", ckpt, "--out", out, "--image-size", "64", "--layout", "nhwc")
        self.assertEqual(code, 0, stderr)
        self.assertIn("features [batch, 2048]", stdout)
        self.assertLess(largest_difference(stdout), 1e-4)
        self.assertEqual(onnx_io(out)[0], [("images", ["batch", 64, 64, 3])])
        # A 1x checkpoint given as 2x is refused, naming the width it has.
        code, _, stderr = run_export("--format", "simclr", "--width", "2", "--checkpoint", ckpt, "--out", self.path("x.onnx"), "--skip-verify")
        self.assertEqual(code, 2)
        self.assertIn("conv1 has 64 channels, a ResNet-50 (2x) has 128; pass --width 1", stderr)

    def test_simclr_wider_resnets_have_the_converters_shapes(self) -> None:
        model = export_teacher.wide_resnet50(2)
        state = model.state_dict()
        self.assertEqual(tuple(state["conv1.weight"].shape), (128, 3, 7, 7))
        self.assertEqual(tuple(state["layer1.0.conv1.weight"].shape), (128, 128, 1, 1))
        self.assertEqual(tuple(state["layer4.2.conv3.weight"].shape), (4096, 1024, 1, 1))
        self.assertEqual(tuple(state["fc.weight"].shape), (1000, 4096))
        backbone = sum(p.numel() for name, p in model.named_parameters() if not name.startswith("fc."))
        self.assertEqual(backbone, 93_907_072)  # the SimCLR paper's "94M" for ResNet-50 (2x)

    def test_swav(self) -> None:
        torch.manual_seed(3)
        model = randomize_batchnorm(torchvision.models.resnet18())
        model.fc = nn.Identity()
        state = {f"module.{k}": v for k, v in model.state_dict().items()}
        state["module.projection_head.0.weight"] = torch.randn(2048, 512)
        state["module.projection_head.0.bias"] = torch.randn(2048)
        state["module.prototypes.weight"] = torch.randn(3000, 128)
        ckpt = self.path("swav.pth.tar")
        torch.save(state, ckpt)
        out = self.path("swav.onnx")
        code, stdout, stderr = run_export("--format", "swav", "--arch", "resnet18", "--checkpoint", ckpt, "--out", out, "--image-size", "64", "--normalize", "outside")
        self.assertEqual(code, 0, stderr)
        self.assertIn("features [batch, 512]", stdout)
        self.assertLess(largest_difference(stdout), 1e-4)
        self.assertIn('"normalize": "imagenet"', stdout)

    def test_torchvision_state_dict_and_random_weights(self) -> None:
        torch.manual_seed(4)
        model = randomize_batchnorm(torchvision.models.mobilenet_v2())
        ckpt = self.path("mobilenet_v2.pth")
        torch.save(model.state_dict(), ckpt)
        out = self.path("mnv2.onnx")
        code, stdout, stderr = run_export("--format", "torchvision", "--arch", "mobilenet_v2", "--checkpoint", ckpt, "--out", out, "--image-size", "64")
        self.assertEqual(code, 0, stderr)
        self.assertIn("features [batch, 1280]", stdout)
        self.assertLess(largest_difference(stdout), 1e-4)
        code, stdout, stderr = run_export("--format", "torchvision", "--arch", "resnet18", "--out", self.path("r18.onnx"), "--image-size", "32")
        self.assertEqual(code, 0, stderr)
        self.assertIn("random weights", stderr)

    def test_refuses_checkpoints_of_another_format(self) -> None:
        ckpt = self.path("plain.pth")
        torch.save(torchvision.models.resnet18().state_dict(), ckpt)
        code, _, stderr = run_export("--format", "moco", "--checkpoint", ckpt, "--out", self.path("m.onnx"))
        self.assertEqual(code, 2)
        self.assertIn("no 'module.encoder_q.*' keys; is this a MoCo checkpoint?", stderr)
        code, _, stderr = run_export("--format", "swav", "--checkpoint", ckpt, "--out", self.path("s.onnx"))  # resnet50 expected
        self.assertEqual(code, 2)
        self.assertIn("does not fit the SwAV resnet50 model", stderr)

    def test_export_leaves_the_model_in_eval_mode(self) -> None:
        model = randomize_batchnorm(torchvision.models.resnet18())
        model.fc = nn.Identity()
        model.train()  # as a model fresh from a training loop
        wrapped, _ = export_teacher.export(model, self.path("t.onnx"), 32, export_teacher.IMAGENET_MEAN, export_teacher.IMAGENET_STD, True, False, 13, {})
        self.assertFalse(any(m.training for m in wrapped.modules()))


if __name__ == "__main__":
    unittest.main()
