"""PyTorch side of the training-step benchmark: the official CompRess `train_student.py` loop
(momentum variant: teacher forward, student forward, key forward, the two-queue loss, backward, SGD,
the key's EMA) on the fashion-mnist preset's data pipeline (torchvision RandomResizedCrop + flip on
PIL images, one DataLoader worker), the built-in teacher's ONNX graph run as PyTorch ops, for a
fixed time after a warm-up, with where a step's time goes. Prints one JSON line.

    /usr/bin/python3 bench/official_step.py '{"student": "alexnet-small", "width": 0.25, "teacher": "online"}' <threads>

`"teacher": "cached"` looks the teacher's features up by image (the student's own step)."""

import json
import os
import resource
import sys
import time

import torch

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "..", "..", "tooling", "reference"))
import train_student_reference as ref  # noqa: E402
from torch_students import student as build  # noqa: E402

cfg = json.loads(sys.argv[1])
torch.set_num_threads(int(sys.argv[2]))
min_seconds = float(os.environ.get("BENCH_MIN_SECONDS", "20"))
batch = cfg.get("batch", 256)
torch.manual_seed(0)

images, _ = ref.load_split(os.environ.get("COMPRESS_FASHION_MNIST", "/usr/share/datasets/fashion-mnist"), "train")
teacher = ref.OnnxAsTorch(os.path.join(here, "..", "..", "teacher", "models", "fashion-mnist-teacher.onnx")).eval()
student = build(cfg["student"], 1, 28, cfg.get("width", 1.0))
key = build(cfg["student"], 1, 28, cfg.get("width", 1.0))
key.load_state_dict(student.state_dict())
for p in key.parameters():
    p.requires_grad_(False)
dt = teacher(torch.zeros(2, 28, 28, 1)).shape[1]
ds = student(torch.zeros(2, 1, 28, 28)).shape[1]
qt, qs = ref.Queue(8192, dt), ref.Queue(8192, ds)
optimizer = torch.optim.SGD(student.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
loader = torch.utils.data.DataLoader(ref.Augmented(images, (0.2, 1)), batch_size=batch, shuffle=True,
                                     num_workers=1, persistent_workers=True, drop_last=True)
norm = lambda x: (x - ref.MEAN) / ref.STD
cached = None
if cfg.get("teacher") == "cached":
    with torch.no_grad():
        cached = teacher(torch.from_numpy(images[:4096]).float().div(255).unsqueeze(3))

parts = {"loader": 0.0, "teacher": 0.0, "forward": 0.0, "key": 0.0, "loss": 0.0, "backward": 0.0, "update": 0.0}
student.train()
key.train()  # as the official key encoder (no BatchNorm in alexnet-small; BatchNorm students use batch statistics)


def run(seconds: float, measure: bool) -> int:
    steps, started, it = 0, time.perf_counter(), iter(loader)
    while True:
        t0 = time.perf_counter()
        try:
            idx, x = next(it)
        except StopIteration:
            it = iter(loader)
            idx, x = next(it)
        t1 = time.perf_counter()
        t = cached[idx % cached.shape[0]] if cached is not None else teacher(x.permute(0, 2, 3, 1))
        t2 = time.perf_counter()
        s = student(norm(x))
        t3 = time.perf_counter()
        with torch.no_grad():
            s_key = key(norm(x))
        t4 = time.perf_counter()
        loss = ref.compress_momentum_loss(t, s, s_key, qt, qs, 0.04)
        t5 = time.perf_counter()
        optimizer.zero_grad()
        loss.backward()
        t6 = time.perf_counter()
        optimizer.step()
        ref.moment_update(student, key, 0.999)
        t7 = time.perf_counter()
        if measure:
            for k, a, b in (("loader", t0, t1), ("teacher", t1, t2), ("forward", t2, t3), ("key", t3, t4),
                            ("loss", t4, t5), ("backward", t5, t6), ("update", t6, t7)):
                parts[k] += b - a
        steps += 1
        if time.perf_counter() - started >= seconds:
            return steps


run(0, False)
run(0, False)
run(0, False)
started = time.perf_counter()
steps = run(min_seconds, True)
seconds = time.perf_counter() - started
print(json.dumps({
    "steps": steps,
    "stepMs": seconds * 1000 / steps,
    "imagesPerSec": steps * batch / seconds,
    "partsMs": {k: v * 1000 / steps for k, v in parts.items()},
    "peakRssMB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
