import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from '../backend.js';
import { createStudent, type StudentName, studentRegistry } from './registry.js';

// Parameter counts of the torchvision models with the classifier removed (fc = nn.Sequential()):
// sum(p.numel() for p in model.parameters()) − fc.weight − fc.bias.
const torchvisionParams: Partial<Record<StudentName, number>> = {
  alexnet: 57_003_840, // CompRess AlexNet (torchvision AlexNet without fc8)
  resnet18: 11_176_512,
  resnet50: 23_508_032,
  mobilenetv2: 2_223_872,
};

describe('student registry', () => {
  beforeAll(async () => {
    await selectBackend({ backend: 'wasm', log: () => {} });
  });

  for (const [name, count] of Object.entries(torchvisionParams)) {
    it(`${name} has torchvision's parameter count (${count})`, () => {
      const s = createStudent(name, {}, { initialize: false });
      expect(s.trainableVariables().reduce((a, v) => a + v.size, 0)).toBe(count);
      s.dispose();
    });
  }

  it('names parameters and buffers as PyTorch state_dicts do', () => {
    const r = createStudent('resnet18', {}, { initialize: false });
    const names = r.stateDict().map(([n]) => n);
    for (const n of [
      'conv1.weight',
      'bn1.weight',
      'layer1.0.conv1.weight',
      'layer2.0.downsample.0.weight',
      'layer2.0.downsample.1.running_var',
      'layer4.1.bn2.bias',
    ]) {
      expect(names).toContain(n);
    }
    r.dispose();
    const m = createStudent('mobilenetv2', {}, { initialize: false });
    const mn = m.stateDict().map(([n]) => n);
    for (const n of [
      'features.0.0.weight',
      'features.1.conv.0.0.weight',
      'features.1.conv.1.weight',
      'features.2.conv.3.running_mean',
      'features.18.1.bias',
    ]) {
      expect(mn).toContain(n);
    }
    m.dispose();
    const a = createStudent('alexnet-small');
    expect(a.namedParameters().map(([n]) => n)).toEqual([
      ...[0, 3, 6, 8, 10].flatMap((i) => [`features.${i}.weight`, `features.${i}.bias`]),
      'feats.0.weight',
      'feats.0.bias',
      'feats.2.weight',
      'feats.2.bias',
    ]);
    a.dispose();
  });

  it('initialises ResNet convolutions with kaiming_normal(fan_out) and BatchNorm with 1/0', () => {
    const r = createStudent('resnet18', { seed: 5 });
    const w = r
      .namedParameters()
      .find(([n]) => n === 'layer3.0.conv2.weight')![1]
      .dataSync();
    let s = 0;
    for (const v of w) s += v * v;
    // std = √(2 / (Cout·3·3)) with Cout = 256
    expect(Math.sqrt(s / w.length)).toBeCloseTo(Math.sqrt(2 / (256 * 9)), 3);
    const bn = r
      .namedParameters()
      .find(([n]) => n === 'layer3.0.bn2.weight')![1]
      .dataSync();
    expect(Array.from(bn).every((v) => v === 1)).toBe(true);
    r.dispose();
  });

  it('is deterministic for a seed and differs across seeds', () => {
    const a = createStudent('mobilenetv2-small', { seed: 1 });
    const b = createStudent('mobilenetv2-small', { seed: 1 });
    const c = createStudent('mobilenetv2-small', { seed: 2 });
    const wa = a.trainableVariables()[0]!.dataSync();
    expect(Array.from(b.trainableVariables()[0]!.dataSync())).toEqual(Array.from(wa));
    expect(Array.from(c.trainableVariables()[0]!.dataSync())).not.toEqual(Array.from(wa));
    for (const s of [a, b, c]) s.dispose();
  });

  for (const entry of studentRegistry.filter((e) => e.name.endsWith('-small'))) {
    for (const [channels, inputSize] of [
      [1, 28],
      [3, 32],
    ] as const) {
      it(`${entry.name} maps ${inputSize}×${inputSize}×${channels} images to ${entry.defaults.featureDim}-d features in train and eval mode`, () => {
        const s = createStudent(entry.name, { channels, inputSize });
        expect(s.spec).toMatchObject({ featureDim: entry.defaults.featureDim, inputSize, channels });
        const x = tf.randomUniform([2, inputSize, inputSize, channels]) as tf.Tensor4D;
        for (const train of [true, false]) {
          s.train(train);
          const f = tf.tidy(() => s.features(x));
          expect(f.shape).toEqual([2, entry.defaults.featureDim]);
          expect(f.dataSync().every(Number.isFinite)).toBe(true);
          f.dispose();
        }
        x.dispose();
        s.dispose();
      });
    }
  }

  it('gives resnet50 an optional linear head (8192-d in the paper)', () => {
    const s = createStudent('resnet50', { head: 8192, inputSize: 64 }, { initialize: false });
    expect(s.spec.featureDim).toBe(8192);
    expect(s.namedParameters().at(-2)![1].shape).toEqual([2048, 8192]);
    s.dispose();
  });

  it('scales channels by a width multiplier, with the feature dim it reports', () => {
    // torchvision.models.mobilenet_v2(width_mult=0.5).features: 687 680 parameters.
    const m = createStudent('mobilenetv2', { width: 0.5, inputSize: 64 }, { initialize: false });
    expect(m.trainableVariables().reduce((a, v) => a + v.size, 0)).toBe(687_680);
    m.dispose();
    for (const name of ['alexnet-small', 'resnet18-small', 'mobilenetv2-small'] as const) {
      for (const width of [0.25, 0.5]) {
        const s = createStudent(name, { width }, { initialize: false });
        const y = tf.tidy(() => s.features(tf.zeros([2, 28, 28, 1]) as tf.Tensor4D));
        expect(y.shape).toEqual([2, s.spec.featureDim]);
        y.dispose();
        s.dispose();
      }
    }
    expect(createStudent('alexnet-small', { width: 0.25 }, { initialize: false }).spec.featureDim).toBe(256);
    expect(() => createStudent('alexnet-small', { width: 0 })).toThrow(
      'student option width must be in (0, 4], found 0',
    );
  });

  it('refuses unknown names and bad options, listing what it expects', () => {
    expect(() => createStudent('vgg16')).toThrow(
      "unknown student 'vgg16'; expected one of alexnet, resnet18, resnet50, mobilenetv2, alexnet-small, resnet18-small, mobilenetv2-small",
    );
    expect(() => createStudent('resnet18', { head: 10 })).toThrow(
      'student option head is for resnet50 only, found head 10 for resnet18',
    );
    expect(() => createStudent('alexnet', { inputSize: 100 })).toThrow(
      'AlexNet (imagenet) cannot take 100 px inputs',
    );
  });
});
