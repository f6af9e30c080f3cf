"""Writes src/transforms/pil-resample.golden.json: Pillow's bilinear crop+resize of small
deterministic images, the reference that resample.test.ts checks bit for bit.

Run: /usr/bin/python3 packages/data/scripts/pil-resample-golden.py
"""

import json
import os

import numpy as np
import PIL
from PIL import Image


def pattern(h, w, c):
    y, x, ch = np.meshgrid(np.arange(h), np.arange(w), np.arange(c), indexing="ij")
    return ((x * 37 + y * 91 + ch * 53 + (x * y % 7) * 11) % 256).astype(np.uint8)


def pattern_float(h, w):
    y, x = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    return (((x * 37 + y * 91 + (x * y % 7) * 11) % 256) / 255.0).astype(np.float32)


cases = []
# (name, h, w, c, box(top, left, height, width), out (height, width))
for name, h, w, c, box, out in [
    ("rgb down-x up-y", 9, 13, 3, (0, 0, 9, 13), (7, 5)),
    ("rgb up", 13, 9, 3, (0, 0, 13, 9), (20, 29)),
    ("gray crop same size", 28, 28, 1, (3, 4, 17, 20), (28, 28)),
    ("rgb crop down", 30, 40, 3, (5, 6, 22, 31), (11, 11)),
    ("gray tall to wide", 40, 10, 1, (0, 0, 40, 10), (12, 30)),
    ("rgb 2.67x down", 48, 64, 3, (0, 0, 48, 64), (18, 24)),
    ("rgb crop only width changes", 20, 30, 3, (2, 3, 10, 12), (10, 25)),
    ("rgb crop only height changes", 20, 30, 3, (2, 3, 10, 12), (4, 12)),
]:
    img = pattern(h, w, c)
    pil = Image.fromarray(img[:, :, 0] if c == 1 else img, mode="L" if c == 1 else "RGB")
    top, left, bh, bw = box
    res = pil.crop((left, top, left + bw, top + bh)).resize((out[1], out[0]), Image.BILINEAR)
    arr = np.asarray(res).reshape(out[0], out[1], c)
    cases.append({"name": name, "kind": "uint8", "height": h, "width": w, "channels": c,
                  "box": list(box), "out": list(out), "expected": arr.flatten().tolist()})

for name, h, w, box, out in [
    ("float down-x up-y", 9, 13, (0, 0, 9, 13), (7, 5)),
    ("float crop down", 30, 40, (5, 6, 22, 31), (11, 11)),
]:
    img = pattern_float(h, w)
    pil = Image.fromarray(img, mode="F")
    top, left, bh, bw = box
    res = pil.crop((left, top, left + bw, top + bh)).resize((out[1], out[0]), Image.BILINEAR)
    arr = np.asarray(res, dtype=np.float32).reshape(out[0], out[1], 1)
    cases.append({"name": name, "kind": "float32", "height": h, "width": w, "channels": 1,
                  "box": list(box), "out": list(out), "expected": [float(v) for v in arr.flatten()]})

path = os.path.join(os.path.dirname(__file__), "..", "src", "transforms", "pil-resample.golden.json")
with open(path, "w") as f:
    json.dump({"pillow": PIL.__version__, "script": "packages/data/scripts/pil-resample-golden.py",
               "pattern": "(x*37 + y*91 + c*53 + (x*y % 7)*11) % 256; float: same without c, / 255",
               "cases": cases}, f)
print("wrote", os.path.normpath(path), len(cases), "cases")
