import { CompressError, Rng } from '@compress/core';
import { alexnet } from './alexnet.js';
import { mobilenetV2 } from './mobilenetv2.js';
import { resnet } from './resnet.js';
import { Student, type StudentOptions, type StudentSpec } from './student.js';

/** ImageNet mean/std (torchvision), used by the RGB students as the CompRess code does. */
const IMAGENET = { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };
/** Fashion-MNIST train-set mean/std, the small students' default for 1-channel inputs. */
const FASHION_MNIST = { mean: [0.286], std: [0.353] };

export interface StudentEntry {
  name: StudentName;
  /** One line for `--help` and docs. */
  description: string;
  /** Feature dim, input size and channels by default (before options). */
  defaults: { featureDim: number; inputSize: number; channels: number };
}

export type StudentName =
  | 'alexnet'
  | 'resnet18'
  | 'resnet50'
  | 'mobilenetv2'
  | 'alexnet-small'
  | 'resnet18-small'
  | 'mobilenetv2-small';

/** The students by name, in the order the CLI lists them. */
export const studentRegistry: readonly StudentEntry[] = [
  {
    name: 'alexnet',
    description: 'AlexNet as in the CompRess code (no dropout), features = ReLU(fc7)',
    defaults: { featureDim: 4096, inputSize: 224, channels: 3 },
  },
  {
    name: 'resnet18',
    description: 'torchvision ResNet-18, classifier removed',
    defaults: { featureDim: 512, inputSize: 224, channels: 3 },
  },
  {
    name: 'resnet50',
    description: 'torchvision ResNet-50, classifier removed (optional linear head, e.g. 8192)',
    defaults: { featureDim: 2048, inputSize: 224, channels: 3 },
  },
  {
    name: 'mobilenetv2',
    description: 'torchvision MobileNetV2, classifier removed',
    defaults: { featureDim: 1280, inputSize: 224, channels: 3 },
  },
  {
    name: 'alexnet-small',
    description: 'AlexNet with 3×3 convs for 28–32 px inputs, 1024-d fc6/fc7',
    defaults: { featureDim: 1024, inputSize: 28, channels: 1 },
  },
  {
    name: 'resnet18-small',
    description: 'CIFAR-style ResNet-18: 3×3 stem, no max-pool',
    defaults: { featureDim: 512, inputSize: 28, channels: 1 },
  },
  {
    name: 'mobilenetv2-small',
    description: 'MobileNetV2 with stride-1 stem and second stage for 28–32 px inputs',
    defaults: { featureDim: 1280, inputSize: 28, channels: 1 },
  },
];

/** Feature dim of a registry entry at a width multiplier (mirrors the builders' rounding). */
function scaledFeatureDim(entry: StudentEntry, width: number): number {
  if (width === 1) return entry.defaults.featureDim;
  switch (entry.name) {
    case 'alexnet':
    case 'alexnet-small':
      return Math.max(8, Math.round(entry.defaults.featureDim * width));
    case 'resnet18':
    case 'resnet18-small':
    case 'resnet50':
      return (entry.defaults.featureDim / 64) * Math.max(4, Math.round(64 * width));
    case 'mobilenetv2':
    case 'mobilenetv2-small': {
      const v = 1280 * Math.max(1, width);
      let out = Math.max(8, Math.floor((v + 4) / 8) * 8);
      if (out < 0.9 * v) out += 8;
      return out;
    }
  }
}

/** Looks a student up by name; the error lists every known name. */
export function studentEntry(name: string): StudentEntry {
  const entry = studentRegistry.find((e) => e.name === name);
  if (entry === undefined) {
    throw new CompressError(
      'INVALID_ARGUMENT',
      `unknown student '${name}'; expected one of ${studentRegistry.map((e) => e.name).join(', ')}`,
      { input: 'student' },
    );
  }
  return entry;
}

/** Builds a student by registry name with PyTorch-equivalent structure and initialisation. */
export function createStudent(
  name: StudentName | string,
  options: StudentOptions = {},
  /** `initialize: false` skips the random initialisation (weights about to be overwritten). */
  build: { initialize?: boolean } = {},
): Student {
  const entry = studentEntry(name);
  const resolved: Required<StudentOptions> = {
    seed: options.seed ?? 0,
    channels: options.channels ?? entry.defaults.channels,
    inputSize: options.inputSize ?? entry.defaults.inputSize,
    head: options.head ?? 0,
    width: options.width ?? 1,
  };
  if (!(resolved.width > 0 && resolved.width <= 4)) {
    throw new CompressError(
      'INVALID_ARGUMENT',
      `student option width must be in (0, 4], found ${resolved.width}`,
      {
        input: 'width',
      },
    );
  }
  for (const key of ['channels', 'inputSize'] as const) {
    if (!Number.isInteger(resolved[key]) || resolved[key] < 1) {
      throw new CompressError(
        'INVALID_ARGUMENT',
        `student option ${key} must be a positive integer, found ${resolved[key]}`,
        { input: key },
      );
    }
  }
  if (resolved.head !== 0 && entry.name !== 'resnet50') {
    throw new CompressError(
      'INVALID_ARGUMENT',
      `student option head is for resnet50 only, found head ${resolved.head} for ${entry.name}`,
      { input: 'head' },
    );
  }
  const rng = build.initialize === false ? null : new Rng(resolved.seed);
  const c = resolved.channels;
  const body = (() => {
    switch (entry.name) {
      case 'alexnet':
        return alexnet(
          { channels: c, variant: 'imagenet', inputSize: resolved.inputSize, width: resolved.width },
          rng,
        );
      case 'alexnet-small':
        return alexnet(
          { channels: c, variant: 'small', inputSize: resolved.inputSize, width: resolved.width },
          rng,
        );
      case 'resnet18':
        return resnet(
          {
            block: 'basic',
            layers: [2, 2, 2, 2],
            channels: c,
            stem: 'imagenet',
            head: 0,
            width: resolved.width,
          },
          rng,
        );
      case 'resnet18-small':
        return resnet(
          {
            block: 'basic',
            layers: [2, 2, 2, 2],
            channels: c,
            stem: 'cifar',
            head: 0,
            width: resolved.width,
          },
          rng,
        );
      case 'resnet50':
        return resnet(
          {
            block: 'bottleneck',
            layers: [3, 4, 6, 3],
            channels: c,
            stem: 'imagenet',
            head: resolved.head,
            width: resolved.width,
          },
          rng,
        );
      case 'mobilenetv2':
        return mobilenetV2({ channels: c, variant: 'imagenet', width: resolved.width }, rng);
      case 'mobilenetv2-small':
        return mobilenetV2({ channels: c, variant: 'small', width: resolved.width }, rng);
    }
  })();
  const norm =
    c === 3
      ? IMAGENET
      : c === 1
        ? FASHION_MNIST
        : { mean: new Array(c).fill(0.5), std: new Array(c).fill(0.5) };
  const spec: StudentSpec = {
    name: entry.name,
    featureDim: resolved.head > 0 ? resolved.head : scaledFeatureDim(entry, resolved.width),
    inputSize: resolved.inputSize,
    channels: c,
    mean: norm.mean,
    std: norm.std,
  };
  return new Student(spec, resolved, body);
}
