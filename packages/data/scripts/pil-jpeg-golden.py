"""Writes src/datasets/pil-jpeg.golden.json: what torchvision's PIL path gives for crop+resize of small
JPEGs (Image.open → convert('RGB') → crop → resize BILINEAR, as RandomResizedCrop does), with the
JPEG bytes themselves, so jpeg-native.test.ts checks the libjpeg-turbo decoder against Pillow bit
for bit.

Run: /usr/bin/python3 packages/data/scripts/pil-jpeg-golden.py
"""

import base64
import io
import json
import os

import numpy as np
import PIL
from PIL import Image, features


def photo(h, w, seed):
    y, x = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    v = 50 * np.sin(x / (9 + seed) + seed) * np.cos(y / 13)
    r = x * 200 / w + v + (x * y % 5)
    g = y * 200 / h - v + 30
    b = 128 + v + (x * 7 + y * 3) % 11
    return np.clip(np.stack([r, g, b], -1), 0, 255).astype(np.uint8)


images = []
# (name, h, w, save options, grey)
for name, h, w, options, grey in [
    ("4:2:0 q85", 45, 61, dict(quality=85, subsampling=2), False),
    ("4:2:2 q90", 40, 52, dict(quality=90, subsampling=1), False),
    ("4:4:4 q95", 33, 47, dict(quality=95, subsampling=0), False),
    ("progressive 4:2:0", 50, 70, dict(quality=80, subsampling=2, progressive=True), False),
    ("greyscale", 37, 41, dict(quality=90), True),
]:
    im = Image.fromarray(photo(h, w, len(images)))
    if grey:
        im = im.convert("L")
    buf = io.BytesIO()
    im.save(buf, "JPEG", **options)
    data = buf.getvalue()
    decoded = Image.open(io.BytesIO(data)).convert("RGB")
    rng = np.random.default_rng(len(images))
    crops = []
    for k in range(6):
        cw = int(rng.integers(1, w + 1))
        ch = int(rng.integers(1, h + 1))
        left = int(rng.integers(0, w - cw + 1))
        top = int(rng.integers(0, h - ch + 1))
        if k == 0:  # the whole image, downscaled
            left, top, cw, ch = 0, 0, w, h
        out_w, out_h = [(16, 16), (24, 17), (cw, ch), (cw, 9), (40, 33), (7, 30)][k]
        got = decoded.crop((left, top, left + cw, top + ch)).resize((out_w, out_h), Image.BILINEAR)
        crops.append(
            {
                "left": left,
                "top": top,
                "width": cw,
                "height": ch,
                "outWidth": out_w,
                "outHeight": out_h,
                "pixels": base64.b64encode(np.asarray(got, dtype=np.uint8).tobytes()).decode(),
            }
        )
    images.append({"name": name, "width": w, "height": h, "jpeg": base64.b64encode(data).decode(), "crops": crops})

out = {
    "pillow": PIL.__version__,
    "libjpeg_turbo": features.version("libjpeg_turbo"),
    "script": "packages/data/scripts/pil-jpeg-golden.py",
    "pixels": "base64 of outHeight × outWidth × 3 bytes (RGB, row-major)",
    "images": images,
}
path = os.path.join(os.path.dirname(__file__), "..", "src", "datasets", "pil-jpeg.golden.json")
with open(path, "w") as f:
    json.dump(out, f, indent=1)
    f.write("\n")
print(f"wrote {path}")
