"""Fast checks of the teacher recipe: augmentation, loss, determinism and export.

Run: /usr/bin/python3 -m unittest discover -s tooling/teacher-train -p 'test_*.py'
Needs Fashion-MNIST (Debian's dataset-fashion-mnist, or FASHION_MNIST_DIR).
"""

from __future__ import annotations

import os
import sys
import tempfile
import unittest

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from augment import AugmentOptions, random_view  # noqa: E402
from model import ExportWrapper, TeacherNet  # noqa: E402
from train import Recipe, nt_xent, train  # noqa: E402

DATA = os.environ.get("FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist")


class AugmentTest(unittest.TestCase):
    def test_views_are_seeded_in_range_and_differ(self) -> None:
        x = torch.rand(8, 1, 28, 28)
        a = random_view(x, torch.Generator().manual_seed(1))
        b = random_view(x, torch.Generator().manual_seed(1))
        c = random_view(x, torch.Generator().manual_seed(2))
        self.assertTrue(torch.equal(a, b))
        self.assertFalse(torch.equal(a, c))
        self.assertEqual(a.shape, x.shape)
        self.assertGreaterEqual(float(a.min()), 0.0)
        self.assertLessEqual(float(a.max()), 1.0)

    def test_full_crop_without_jitter_or_flip_is_the_image(self) -> None:
        x = torch.rand(4, 1, 28, 28)
        opts = AugmentOptions(scale=(1.0, 1.0), ratio=(1.0, 1.0), flip=0.0, jitter=0.0)
        self.assertLess(float((random_view(x, torch.Generator().manual_seed(0), opts) - x).abs().max()), 1e-5)
        flipped = AugmentOptions(scale=(1.0, 1.0), ratio=(1.0, 1.0), flip=1.0, jitter=0.0)
        self.assertLess(float((random_view(x, torch.Generator().manual_seed(0), flipped) - x.flip(3)).abs().max()), 1e-5)


class LossTest(unittest.TestCase):
    def test_nt_xent_matches_the_definition(self) -> None:
        torch.manual_seed(0)
        z = torch.randn(6, 5)
        t = 0.5
        zn = F.normalize(z, dim=1)
        n = 3
        total = 0.0
        for i in range(2 * n):
            j = (i + n) % (2 * n)
            sims = torch.stack([zn[i] @ zn[k] / t for k in range(2 * n) if k != i])
            pos = zn[i] @ zn[j] / t
            total += float(torch.logsumexp(sims, 0) - pos)
        self.assertAlmostEqual(float(nt_xent(z, t)), total / (2 * n), places=5)


class RecipeTest(unittest.TestCase):
    def test_training_is_deterministic_and_resumes_exactly(self) -> None:
        recipe = Recipe(epochs=2, batch=32, subset=64, warmup_steps=2, threads=1)
        with tempfile.TemporaryDirectory() as tmp:
            whole, part = os.path.join(tmp, "whole"), os.path.join(tmp, "part")
            train(recipe, whole, DATA)
            # An interrupted run: one epoch, then the same recipe again picks up the checkpoint.
            train(recipe, part, DATA, stop_after_epochs=1)
            self.assertFalse(os.path.exists(os.path.join(part, "teacher.pt")))
            train(recipe, part, DATA)
            a = torch.load(os.path.join(whole, "teacher.pt"))["net"]
            b = torch.load(os.path.join(part, "teacher.pt"))["net"]
            for key in a:
                self.assertTrue(torch.equal(a[key], b[key]), key)

    def test_export_wrapper_takes_nhwc_in_unit_range(self) -> None:
        net = TeacherNet("resnet-s").eval()
        x = torch.rand(2, 28, 28, 1)
        wrapped = ExportWrapper(net).eval()
        with torch.no_grad():
            expected = net((x.permute(0, 3, 1, 2) - 0.2860) / 0.3530)
            self.assertTrue(torch.allclose(wrapped(x), expected))
        self.assertEqual(tuple(wrapped(x).shape), (2, net.dim))
        grid = ExportWrapper(net, "grid2").eval()
        with torch.no_grad():
            g = grid(x)
        self.assertEqual(tuple(g.shape), (2, 4 * net.dim))
        # The mean of the four quadrant averages is the global average.
        self.assertTrue(torch.allclose(g.view(2, net.dim, 4).mean(2), expected, atol=1e-6))

    def test_mid_grid4_pools_the_stage_before_the_last(self) -> None:
        net = TeacherNet("resnet-s").eval()
        x = torch.rand(2, 28, 28, 1)
        mid = ExportWrapper(net, "mid-grid4").eval()
        with torch.no_grad():
            h = net.trunk[:-1]((x.permute(0, 3, 1, 2) - 0.2860) / 0.3530)  # resnet-s: one block per stage
            m = mid(x)
        self.assertEqual(tuple(h.shape), (2, 128, 7, 7))
        self.assertEqual(net.mid_dim, 128)
        self.assertEqual(tuple(m.shape), (2, mid.dim))
        self.assertEqual(mid.dim, 16 * 128)
        cells = m.view(2, 128, 4, 4)
        # 3×3 windows, stride 2, padding not counted: the corner cell averages rows/cols 0–1, the
        # cell (1, 2) rows 1–3 and cols 3–5, the last cell rows/cols 5–6.
        self.assertTrue(torch.allclose(cells[:, :, 0, 0], h[:, :, 0:2, 0:2].mean((2, 3)), atol=1e-6))
        self.assertTrue(torch.allclose(cells[:, :, 1, 2], h[:, :, 1:4, 3:6].mean((2, 3)), atol=1e-6))
        self.assertTrue(torch.allclose(cells[:, :, 3, 3], h[:, :, 5:7, 5:7].mean((2, 3)), atol=1e-6))
        # resnet-m has two blocks in its last stage: both are left out.
        deep = TeacherNet("resnet-m").eval()
        with torch.no_grad():
            hm = deep.trunk[:-2]((x.permute(0, 3, 1, 2) - 0.2860) / 0.3530)
            self.assertTrue(torch.allclose(ExportWrapper(deep, "mid-grid4").eval()(x).view(2, 128, 4, 4)[:, :, 0, 0], hm[:, :, 0:2, 0:2].mean((2, 3)), atol=1e-6))


if __name__ == "__main__":
    unittest.main()
