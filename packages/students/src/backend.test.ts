import { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs-core';
import { afterEach, describe, expect, it } from 'vitest';
import { selectBackend } from './backend.js';

const require = createRequire(import.meta.url);
function installed(pkg: string): boolean {
  try {
    require.resolve(pkg);
    return true;
  } catch {
    return false;
  }
}
const native = ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'].find(installed);

describe('selectBackend', () => {
  afterEach(() => {
    delete process.env.COMPRESS_BACKEND;
    delete process.env.COMPRESS_KERNELS;
  });

  it('picks wasm when no native TensorFlow is installed, registers the training kernels, and logs once', async () => {
    const lines: string[] = [];
    const info = await selectBackend({
      backend: native ? 'wasm' : 'auto',
      threads: 1,
      log: (l) => lines.push(l),
    });
    // onnxruntime-node is installed with this package's dev dependencies: auto takes it
    expect(info).toEqual({ name: 'wasm', provider: '@tensorflow/tfjs-backend-wasm', kernels: 'onnxruntime' });
    expect(tf.getBackend()).toBe('wasm');
    expect(tf.getKernel('Conv2DBackpropFilter', 'wasm')).toBeDefined();
    await selectBackend({ backend: 'wasm', threads: 1, log: (l) => lines.push(l) });
    expect(lines).toEqual([
      "compress: training backend 'wasm' (@tensorflow/tfjs-backend-wasm), convolutions on onnxruntime (1 thread)",
    ]);
    // another kernel engine on the running backend: switched and logged
    const wasmOnly = await selectBackend({ backend: 'wasm', kernels: 'wasm', log: (l) => lines.push(l) });
    expect(wasmOnly.kernels).toBe('wasm');
    expect(lines[1]).toBe("compress: training backend 'wasm' (@tensorflow/tfjs-backend-wasm)");
    await selectBackend({ backend: 'wasm', threads: 1, log: () => {} });
  });

  it('honours COMPRESS_KERNELS for auto, and rejects an unknown value naming it', async () => {
    process.env.COMPRESS_KERNELS = 'wasm';
    expect((await selectBackend({ backend: 'wasm', log: () => {} })).kernels).toBe('wasm');
    process.env.COMPRESS_KERNELS = 'fast';
    await expect(selectBackend({ backend: 'wasm' })).rejects.toThrow(
      "COMPRESS_KERNELS must be one of auto, wasm, onnxruntime; found 'fast'",
    );
    delete process.env.COMPRESS_KERNELS;
    expect((await selectBackend({ backend: 'wasm', threads: 1, log: () => {} })).kernels).toBe('onnxruntime');
  });

  it('honours COMPRESS_BACKEND for auto, and rejects an unknown value naming it', async () => {
    process.env.COMPRESS_BACKEND = 'cpu';
    const lines: string[] = [];
    expect((await selectBackend({ log: (l) => lines.push(l) })).name).toBe('cpu');
    expect(lines[0]).toContain('hundreds of times slower than wasm');
    process.env.COMPRESS_BACKEND = 'gpu';
    await expect(selectBackend()).rejects.toThrow(
      "COMPRESS_BACKEND must be one of auto, tensorflow, wasm, cpu; found 'gpu'",
    );
    delete process.env.COMPRESS_BACKEND;
    // an explicit option wins over the environment
    process.env.COMPRESS_BACKEND = 'cpu';
    expect((await selectBackend({ backend: 'wasm', log: () => {} })).name).toBe('wasm');
  });

  it.skipIf(native !== undefined)(
    'says why tensorflow is unavailable when it is asked for and not installed',
    async () => {
      await expect(selectBackend({ backend: 'tensorflow' })).rejects.toThrow(
        'no training backend could start (asked for tensorflow): tensorflow: @tensorflow/tfjs-node-gpu: not installed; @tensorflow/tfjs-node: not installed',
      );
    },
  );

  // Runs only where @tensorflow/tfjs-node(-gpu) is installed. Skipped elsewhere because their
  // installers download libtensorflow from outside the npm registry, which CI machines cannot reach.
  it.skipIf(native === undefined)(
    `tensorflow: trains a student on the native backend (${native ?? 'skipped: neither @tensorflow/tfjs-node-gpu nor @tensorflow/tfjs-node is installed'})`,
    async () => {
      const info = await selectBackend({ backend: 'tensorflow', log: () => {} });
      expect(info).toEqual({ name: 'tensorflow', provider: native });
      const { createStudent } = await import('./models/registry.js');
      const { SGD } = await import('./sgd.js');
      const { trainStep } = await import('./train.js');
      const s = createStudent('alexnet-small');
      const x = tf.randomNormal([2, 28, 28, 1]) as tf.Tensor4D;
      const r = trainStep(s, () => tf.mean(tf.square(s.features(x))) as tf.Scalar, { optimizer: new SGD() });
      expect(Number.isFinite(r.loss)).toBe(true);
      s.dispose();
      x.dispose();
    },
  );
});
