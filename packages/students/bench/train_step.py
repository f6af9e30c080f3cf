# PyTorch reference for bench/train_step.mjs: the same networks (torchvision's, with the same
# small-input changes), the same loss (mean of squared features) and the same SGD.
# Usage: python3 bench/train_step.py '<config json>' <threads>
import json, resource, sys, time

import torch
import os

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', '..', 'tooling', 'reference'))
from torch_students import student  # noqa: E402

cfg = json.loads(sys.argv[1])
torch.set_num_threads(int(sys.argv[2]))
min_seconds = float(__import__('os').environ.get('BENCH_MIN_SECONDS', '15'))
c, name = cfg['channels'], cfg['student']


m = student(name, c, cfg['inputSize'], cfg.get('width', 1.0))
m.train()
opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
x = torch.rand(cfg['batch'], c, cfg['inputSize'], cfg['inputSize'])


def step():
    opt.zero_grad(set_to_none=True)
    loss = m(x).pow(2).mean()
    loss.backward()
    opt.step()


step()
steps, t0 = 0, time.perf_counter()
while True:
    step()
    steps += 1
    if time.perf_counter() - t0 >= min_seconds:
        break
seconds = time.perf_counter() - t0
print(json.dumps({'steps': steps, 'stepMs': seconds * 1000 / steps, 'imagesPerSec': steps * cfg['batch'] / seconds,
                  'peakRssMB': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
