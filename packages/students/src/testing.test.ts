import { beforeAll } from 'vitest';
import { selectBackend } from './backend.js';
import { createStudent } from './models/registry.js';
import { describeStudent } from './testing.js';

beforeAll(async () => {
  await selectBackend({ log: () => {} });
});

// Every small student at the widths the presets train, on Fashion-MNIST's and CIFAR's shapes.
for (const [name, channels, inputSize] of [
  ['alexnet-small', 1, 28],
  ['resnet18-small', 1, 28],
  ['mobilenetv2-small', 1, 28],
  ['resnet18-small', 3, 32],
] as const) {
  describeStudent(`${name} ${inputSize}×${inputSize}×${channels}`, () =>
    createStudent(name, { channels, inputSize, width: 0.25, seed: 3 }),
  );
}
// The ImageNet architectures, narrow and on small images.
describeStudent('resnet50 64×64×3 with a head', () =>
  createStudent('resnet50', { inputSize: 64, width: 0.125, head: 64, seed: 1 }),
);
describeStudent('mobilenetv2 64×64×3', () =>
  createStudent('mobilenetv2', { inputSize: 64, width: 0.25, seed: 2 }),
);
