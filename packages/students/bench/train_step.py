# PyTorch reference for bench/train_step.mjs: the same networks (torchvision's, with the same
# small-input changes), the same loss (mean of squared features) and the same SGD.
# Usage: python3 bench/train_step.py '<config json>' <threads>
import json, resource, sys, time

import torch
import torch.nn as nn
import torchvision

cfg = json.loads(sys.argv[1])
torch.set_num_threads(int(sys.argv[2]))
min_seconds = float(__import__('os').environ.get('BENCH_MIN_SECONDS', '15'))
c, name = cfg['channels'], cfg['student']


def small_alexnet(c, size):
    side = size
    for _ in range(3):
        side = (side - 3) // 2 + 1
    feats = nn.Sequential(
        nn.Conv2d(c, 64, 3, 1, 1), nn.ReLU(True), nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, 3, 1, 1), nn.ReLU(True), nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, 1, 1), nn.ReLU(True),
        nn.Conv2d(384, 256, 3, 1, 1), nn.ReLU(True),
        nn.Conv2d(256, 256, 3, 1, 1), nn.ReLU(True), nn.MaxPool2d(3, 2),
        nn.Flatten(),
        nn.Linear(256 * side * side, 1024), nn.ReLU(True), nn.Linear(1024, 1024), nn.ReLU(True))
    return feats


if name == 'resnet18-small':
    m = torchvision.models.resnet18()
    m.conv1 = nn.Conv2d(c, 64, 3, 1, 1, bias=False)
    m.maxpool = nn.Identity()
    m.fc = nn.Identity()
elif name == 'alexnet-small':
    m = small_alexnet(c, cfg['inputSize'])
elif name in ('mobilenetv2', 'mobilenetv2-small'):
    small = name == 'mobilenetv2-small'
    setting = [[1, 16, 1, 1], [6, 24, 2, 1 if small else 2], [6, 32, 3, 2], [6, 64, 4, 2],
               [6, 96, 3, 1], [6, 160, 3, 2], [6, 320, 1, 1]]
    m = torchvision.models.MobileNetV2(inverted_residual_setting=setting)
    m.features[0][0] = nn.Conv2d(c, 32, 3, 1 if small else 2, 1, bias=False)
    m.classifier = nn.Identity()
else:
    raise SystemExit(f'unknown student {name}')

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
