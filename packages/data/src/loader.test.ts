import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Dataset, Sample } from '@compress/core';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Cifar10, cifar10 } from './datasets/cifar10.js';
import { imageFolder } from './datasets/image-folder.js';
import { moduleDataset } from './datasets/spec.js';
import { createLoader, type Loader } from './loader.js';
import { augmentationRng, epochOrder, type LoaderBatch, loadSample } from './pipeline.js';
import { compose, moduleTransform } from './transforms/compose.js';
import { horizontalFlip } from './transforms/geometry.js';
import { toFloat } from './transforms/pixel.js';
import { randomResizedCrop } from './transforms/random-resized-crop.js';

const dir = mkdtempSync(join(tmpdir(), 'compress-data-loader-'));
const loaders: Loader[] = [];
afterAll(async () => {
  await Promise.all(loaders.map((l) => l.close()));
  rmSync(dir, { recursive: true, force: true });
});
function loader(...args: Parameters<typeof createLoader>): Loader {
  const l = createLoader(...args);
  loaders.push(l);
  return l;
}

async function collect(it: AsyncIterable<LoaderBatch>): Promise<LoaderBatch[]> {
  const out: LoaderBatch[] = [];
  for await (const b of it) out.push(b);
  return out;
}

function sameBatches(a: LoaderBatch[], b: LoaderBatch[]): void {
  expect(b.length).toBe(a.length);
  a.forEach((x, i) => {
    const y = b[i]!;
    expect([y.epoch, y.step, y.shape]).toEqual([x.epoch, x.step, x.shape]);
    expect(Array.from(y.indices)).toEqual(Array.from(x.indices));
    expect(Array.from(y.labels)).toEqual(Array.from(x.labels));
    expect(Buffer.from(y.images.buffer).equals(Buffer.from(x.images.buffer))).toBe(true);
  });
}

// A tiny CIFAR-10 test split: 45 images of 32×32×3.
let cifar: Cifar10;
const cifarRoot = join(dir, 'cifar');
beforeAll(async () => {
  mkdirSync(cifarRoot);
  const n = 45;
  const bytes = new Uint8Array(n * 3073);
  for (let r = 0; r < n; r++) {
    bytes[r * 3073] = r % 10;
    for (let i = 0; i < 3072; i++) bytes[r * 3073 + 1 + i] = (i * 3 + r * 17) % 256;
  }
  writeFileSync(join(cifarRoot, 'test_batch.bin'), bytes);
  cifar = await cifar10({ split: 'test', root: cifarRoot });
});

const augment = () => compose([randomResizedCrop(16, { scale: [0.2, 1] }), horizontalFlip()]);

describe('createLoader', () => {
  it('visits every index exactly once per epoch, in a seeded order that changes with the epoch', async () => {
    const l = loader(cifar, { batchSize: 8, seed: 3, workers: 0 });
    expect(l.stepsPerEpoch).toBe(6);
    const e0 = await collect(l.iterate({ epoch: 0 }));
    const e1 = await collect(l.iterate({ epoch: 1 }));
    for (const epoch of [e0, e1]) {
      expect(epoch.map((b) => b.indices.length)).toEqual([8, 8, 8, 8, 8, 5]);
      const seen = epoch.flatMap((b) => Array.from(b.indices)).sort((a, b) => a - b);
      expect(seen).toEqual(Array.from({ length: 45 }, (_, i) => i));
    }
    expect(Array.from(e0[0]!.indices)).not.toEqual(Array.from(e1[0]!.indices));
    expect(Array.from(e0[0]!.indices)).toEqual(Array.from(epochOrder(45, 3, 0, true).subarray(0, 8)));
    const again = await collect(loader(cifar, { batchSize: 8, seed: 3, workers: 0 }));
    sameBatches(e0, again);
  });

  it('keeps dataset order without shuffle and drops the last batch with dropLast', async () => {
    const batches = await collect(
      loader(cifar, { batchSize: 10, shuffle: false, dropLast: true, workers: 0 }),
    );
    expect(batches.map((b) => b.indices[0])).toEqual([0, 10, 20, 30]);
    expect(batches.every((b) => b.indices.length === 10)).toBe(true);
  });

  it('batches NHWC floats in [0, 1] with labels, equal to the samples divided by 255', async () => {
    const [b] = await collect(loader(cifar, { batchSize: 4, shuffle: false, workers: 0 }));
    expect(b!.shape).toEqual([4, 32, 32, 3]);
    expect(Array.from(b!.labels)).toEqual([0, 1, 2, 3]);
    const s = cifar.get(2).image.data;
    const row = b!.images.subarray(2 * 3072, 3 * 3072);
    expect(Array.from(row)).toEqual(Array.from(s, (v) => Math.fround(v / 255)));
  });

  it('gives the same batches for 0, 1 and 2 workers', async () => {
    const opts = { batchSize: 8, seed: 11, transform: augment(), epoch: 2 };
    const ref = await collect(loader(cifar, { ...opts, workers: 0 }));
    expect(ref[0]!.shape).toEqual([8, 16, 16, 3]);
    sameBatches(ref, await collect(loader(cifar, { ...opts, workers: 1 })));
    sameBatches(ref, await collect(loader(cifar, { ...opts, workers: 2, prefetch: 1 })));
  });

  it('augments each sample from (seed, epoch, index) only', async () => {
    const t = augment();
    const [b] = await collect(loader(cifar, { batchSize: 8, seed: 5, transform: t, workers: 0, epoch: 4 }));
    const index = b!.indices[3]!;
    const row = Array.from(b!.images.subarray(3 * 768, 4 * 768));
    const img = (await loadSample(cifar, t, index, augmentationRng(5, 4, index))).image;
    expect(row).toEqual(Array.from(img.data as Uint8Array, (v) => Math.fround(v / 255)));
    // The loader fuses the trailing flip into its copy; applying the transform by hand agrees.
    const direct = t(cifar.get(index).image, augmentationRng(5, 4, index));
    expect(row).toEqual(Array.from(direct.data as Uint8Array, (v) => Math.fround(v / 255)));
    const flips = await Promise.all(
      Array.from(b!.indices, async (i) => {
        const r = augmentationRng(5, 4, i);
        t.steps![0]!(cifar.get(i).image, r);
        return r.next() < 0.5;
      }),
    );
    expect(flips).toContain(true); // the batch exercised the mirrored copy
    expect(flips).toContain(false);
  });

  it('resumes an epoch at startStep with the same batches', async () => {
    const opts = { batchSize: 8, seed: 2, transform: augment(), epoch: 1 };
    const full = await collect(loader(cifar, { ...opts, workers: 0 }));
    const tail = await collect(loader(cifar, { ...opts, workers: 2, startStep: 4 }));
    sameBatches(full.slice(4), tail);
    expect(await collect(loader(cifar, { ...opts, workers: 0, startStep: 6 }))).toEqual([]);
  });

  it('can stop early and go on with another epoch', async () => {
    const l = loader(cifar, { batchSize: 4, seed: 1, transform: augment(), workers: 1 });
    for await (const b of l.iterate({ epoch: 0 })) if (b.step === 1) break;
    const e1 = await collect(l.iterate({ epoch: 1 }));
    sameBatches(
      await collect(
        loader(cifar, { batchSize: 4, seed: 1, transform: augment(), workers: 0 }).iterate({ epoch: 1 }),
      ),
      e1,
    );
    await l.close();
    await expect(l.iterate().next()).rejects.toThrow('Loader: iterate() after close()');
  });

  it('accepts a transform spec and floats from the transform', async () => {
    const spec = compose([randomResizedCrop(8), toFloat()]).spec!;
    const a = await collect(loader(cifar, { batchSize: 16, seed: 4, transform: spec, workers: 1 }));
    const b = await collect(
      loader(cifar, {
        batchSize: 16,
        seed: 4,
        transform: compose([randomResizedCrop(8), toFloat()]),
        workers: 0,
      }),
    );
    sameBatches(a, b);
  });
});

describe('createLoader on an ImageFolder of JPEGs', () => {
  const root = join(dir, 'folder');
  beforeAll(async () => {
    for (let c = 0; c < 2; c++) {
      mkdirSync(join(root, `class${c}`), { recursive: true });
      for (let k = 0; k < 6; k++) {
        const w = 60 + k * 7;
        const h = 45 + c * 9;
        const px = Buffer.alloc(w * h * 3);
        for (let i = 0; i < px.length; i++) px[i] = (i * (k + 3) + c * 50) % 256;
        await sharp(px, { raw: { width: w, height: h, channels: 3 } })
          .jpeg()
          .toFile(join(root, `class${c}`, `${k}.jpg`));
      }
    }
  });

  it('decodes, crops and resizes in workers with the same result as on the main thread', async () => {
    const ds = await imageFolder(root);
    const opts = { batchSize: 5, seed: 9, transform: augment() };
    const ref = await collect(loader(ds, { ...opts, workers: 0 }));
    expect(ref.map((b) => b.shape)).toEqual([
      [5, 16, 16, 3],
      [5, 16, 16, 3],
      [2, 16, 16, 3],
    ]);
    sameBatches(ref, await collect(loader(ds, { ...opts, workers: 2 })));
  });

  it('writes crops straight into the batch with the same pixels and flips as sample by sample', async () => {
    const ds = await imageFolder(root);
    const transform = augment();
    const [batch] = await collect(loader(ds, { batchSize: 12, seed: 4, transform, workers: 0, epoch: 1 }));
    const per = 16 * 16 * 3;
    for (let pos = 0; pos < 12; pos++) {
      const index = batch!.indices[pos]!;
      const s = await loadSample(ds, transform, index, augmentationRng(4, 1, index));
      const want = Float32Array.from(s.image.data, (v) => v / 255);
      expect(batch!.images.subarray(pos * per, (pos + 1) * per)).toEqual(want);
    }
  });

  it('recycles released batch arrays: same batches, released arrays detached, double release refused', async () => {
    const ds = await imageFolder(root);
    const opts = { batchSize: 5, seed: 9, transform: augment(), epoch: 3 };
    const ref = await collect(loader(ds, { ...opts, workers: 0 }));
    for (const workers of [0, 2]) {
      const l = loader(ds, { ...opts, workers, prefetch: 1 });
      const copies: LoaderBatch[] = [];
      for (let round = 0; round < 2; round++) {
        for await (const b of l.iterate()) {
          copies.push({ ...b, images: b.images.slice() });
          l.release(b);
          expect(b.images.length).toBe(0);
          expect(() => l.release(b)).toThrow(
            `Loader.release: the batch (epoch 3, step ${b.step}) was not yielded by this loader, or was released already`,
          );
        }
        sameBatches(ref, copies.splice(0));
      }
      expect(() => l.release(ref[0]!)).toThrow('was not yielded by this loader');
    }
  });

  it('says when images of a batch differ in size', async () => {
    const ds = await imageFolder(root);
    await expect(collect(loader(ds, { batchSize: 12, workers: 0, shuffle: false }))).rejects.toThrow(
      /^image-folder\/folder: image of dataset index \d+ is \d+×\d+×3 after the transform, but index \d+ in the same batch is \d+×\d+×3; a batch needs one size \(add resize\/centerCrop\/randomResizedCrop to the transform\)$/,
    );
  });

  it('passes a worker’s error on, naming the file', async () => {
    const broken = join(dir, 'broken');
    mkdirSync(join(broken, 'a'), { recursive: true });
    writeFileSync(join(broken, 'a', 'x.jpg'), 'garbage');
    const ds = await imageFolder(broken);
    const err = await collect(loader(ds, { batchSize: 1, workers: 1, transform: augment() })).catch((e) => e);
    expect(err.code).toBe('CORRUPT_INPUT');
    expect(err.message).toContain(`imageFolder: cannot decode ${join(broken, 'a', 'x.jpg')}`);
  });
});

describe('createLoader worker failures', () => {
  it('passes on a worker that cannot reopen the dataset', async () => {
    const root = join(dir, 'vanishing');
    mkdirSync(root);
    writeFileSync(join(root, 'test_batch.bin'), new Uint8Array(3073 * 2));
    const ds = await cifar10({ split: 'test', root });
    rmSync(root, { recursive: true });
    const err = await collect(loader(ds, { batchSize: 2, workers: 1 })).catch((e) => e);
    expect(err.code).toBe('NOT_FOUND');
    expect(err.message).toContain(`cifar10: cannot find test_batch.bin in ${root}`);
  });
});

describe('createLoader with datasets and transforms of your own', () => {
  const modulePath = join(dir, 'mine.mjs');
  beforeAll(() => {
    writeFileSync(
      modulePath,
      `export function squares({ n }) {
         return {
           name: 'squares', length: n, classes: ['a', 'b'], imageShape: [2, 2, 1], fingerprint: 'squares:' + n,
           get(index) { return { index, label: index % 2, image: { data: new Uint8Array(4).fill(index), height: 2, width: 2, channels: 1 } }; },
         };
       }
       export function double() { return (image) => ({ ...image, data: image.data.map((v) => v * 2) }); }`,
    );
  });

  it('reopens a module dataset and a module transform in workers', async () => {
    const ds = await moduleDataset(modulePath, 'squares', { n: 10 });
    const t = await moduleTransform(modulePath, 'double');
    expect(Array.from(ds.labels)).toEqual([0, 1, 0, 1, 0, 1, 0, 1, 0, 1]);
    const batches = await collect(loader(ds, { batchSize: 4, shuffle: false, transform: t, workers: 1 }));
    expect(Array.from(batches[2]!.images)).toEqual(
      [16, 16, 16, 16, 18, 18, 18, 18].map((v) => Math.fround(v / 255)),
    );
  });

  it('runs plain datasets and functions on the main thread, and says why workers cannot', async () => {
    const plain: Dataset = {
      name: 'plain',
      length: 3,
      classes: ['x'],
      imageShape: [1, 1, 1],
      fingerprint: 'plain',
      get: async (index: number): Promise<Sample> => ({
        index,
        label: 0,
        image: { data: Uint8Array.of(index), height: 1, width: 1, channels: 1 },
      }),
    };
    const l = loader(plain, { batchSize: 3, shuffle: false, transform: (img) => img });
    expect(l.options.workers).toBe(0);
    expect(Array.from((await collect(l))[0]!.images)).toEqual([0, 1 / 255, 2 / 255].map(Math.fround));
    expect(() => createLoader(plain, { workers: 1 })).toThrow(
      'createLoader: workers: 1 needs a dataset that worker threads can reopen, but plain has no `spec`; open it with moduleDataset(url, exportName, options), or use workers: 0',
    );
    expect(() =>
      createLoader(cifar, { workers: 2, transform: compose([randomResizedCrop(8), (img) => img]) }),
    ).toThrow(
      "createLoader: workers: 2 needs a transform that worker threads can rebuild, but the transform (or a part of it) is a plain function; build it from this package's transforms and moduleTransform(url, exportName, options), or use workers: 0",
    );
  });

  it('rejects a dataset that answers with another index', async () => {
    const liar: Dataset = {
      name: 'liar',
      length: 2,
      classes: ['x'],
      imageShape: [1, 1, 1],
      fingerprint: 'liar',
      get: (index: number): Sample => ({
        index: index + 1,
        label: 0,
        image: { data: Uint8Array.of(0), height: 1, width: 1, channels: 1 },
      }),
    };
    await expect(collect(loader(liar, { batchSize: 2, workers: 0 }))).rejects.toThrow(
      /^liar: get\(\d\) returned the sample of index \d; a dataset must return the index it was asked for$/,
    );
  });
});

describe('createLoader options', () => {
  it('rejects bad options with the accepted range', () => {
    expect(() => createLoader(cifar, { batchSize: 0 })).toThrow(
      'createLoader: batchSize must be a positive integer, got 0',
    );
    expect(() => createLoader(cifar, { workers: -1 })).toThrow(
      'createLoader: workers must be an integer ≥ 0, got -1',
    );
    expect(() => createLoader(cifar, { prefetch: 1.5 })).toThrow(
      'createLoader: prefetch must be a positive integer, got 1.5',
    );
    expect(() => createLoader(cifar, { seed: Number.NaN })).toThrow(
      'createLoader: seed must be a finite number, got NaN',
    );
    expect(() => createLoader(cifar, { batchSize: 10, startStep: 6 })).toThrow(
      'createLoader: startStep must be an integer in 0…5 (steps per epoch), got 6',
    );
    expect(() => createLoader(cifar, { batchSize: 50, dropLast: true })).toThrow(
      'createLoader: dataset cifar10/test has 45 samples, fewer than batchSize 50 with dropLast: an epoch would have no batches',
    );
    expect(() => createLoader({} as Dataset)).toThrow(
      'createLoader: expected a Dataset (an object with length and get(index))',
    );
  });

  it('visits only the given indices, each once per epoch, keeping dataset indices', async () => {
    const subset = [44, 3, 17, 8, 30, 21, 0];
    const seen = await collect(loader(cifar, { batchSize: 3, indices: subset, workers: 0 }));
    expect(seen.length).toBe(3);
    expect(seen.flatMap((b) => Array.from(b.indices)).sort((a, b) => a - b)).toEqual(
      [...subset].sort((a, b) => a - b),
    );
    const threaded = await collect(
      loader(cifar, { batchSize: 3, indices: subset, workers: 1, transform: augment() }),
    );
    sameBatches(
      threaded,
      await collect(loader(cifar, { batchSize: 3, indices: subset, workers: 0, transform: augment() })),
    );
    expect(() => createLoader(cifar, { indices: [3, 45] })).toThrow(
      'createLoader: indices[1] = 45 is outside dataset cifar10/test (0…44)',
    );
    expect(() => createLoader(cifar, { indices: [] })).toThrow('createLoader: indices is empty');
  });

  it('defaults to the paper’s batch size and worker threads when the dataset allows', () => {
    const l = createLoader(cifar);
    expect(l.options.batchSize).toBe(256);
    expect(l.options.workers).toBeGreaterThanOrEqual(1);
    expect(l.options.shuffle).toBe(true);
  });
});
