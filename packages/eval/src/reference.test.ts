/**
 * The project's evaluators against scikit-learn / SciPy / faiss on the same raw-pixel features of
 * Fashion-MNIST (where Debian's python3 has them: python3-sklearn, python3-scipy, python3-faiss).
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { kmeans } from '@compress/cluster';
import { featureMatrix, l2NormalizeRows, Rng } from '@compress/core';
import { fashionMnist } from '@compress/data';
import { describe, expect, it } from 'vitest';
import { alignClusters } from './alignment.js';
import { knnAccuracy } from './knn.js';

const python = process.env.COMPRESS_PYTHON ?? '/usr/bin/python3';
function hasReference(): string | null {
  try {
    execFileSync(python, ['-c', 'import sklearn, scipy'], { stdio: 'ignore' });
    return null;
  } catch {
    return `${python} lacks scikit-learn/SciPy (Debian: python3-sklearn python3-scipy)`;
  }
}
const missing = hasReference();
if (missing) console.warn(`reference comparison skipped: ${missing}`);

async function rawPixels(split: 'train' | 'test', n: number, seed: number) {
  const ds = await fashionMnist({ split });
  const rows = new Rng(seed).permutation(ds.length).slice(0, n);
  const data = new Float32Array(n * 784);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const s = await ds.get(rows[i]!);
    for (let p = 0; p < 784; p++) data[i * 784 + p] = s.image.data[p]! / 255;
    labels[i] = s.label;
  }
  return { features: featureMatrix(n, 784, data), labels };
}

describe.skipIf(missing !== null)('raw-pixel baselines against scikit-learn / SciPy / faiss', () => {
  it('gives the same 1-NN predictions and the same cluster alignment', async () => {
    const train = await rawPixels('train', 6000, 1);
    const test = await rawPixels('test', 1000, 2);
    const ours = await knnAccuracy(train.features, train.labels, test.features, test.labels, { k: 1 });
    const km = await kmeans(l2NormalizeRows(train.features), 10, { seed: 0, iterations: 20 });
    const align = alignClusters(km.assignments, train.labels, [], [], 10, 10);

    const dir = await mkdtemp(join(tmpdir(), 'eval-ref-'));
    const raw = (a: Float32Array | Int32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
    await writeFile(join(dir, 'train.f32'), raw(train.features.data));
    await writeFile(join(dir, 'train.i32'), raw(train.labels));
    await writeFile(join(dir, 'test.f32'), raw(test.features.data));
    await writeFile(join(dir, 'test.i32'), raw(test.labels));
    await writeFile(join(dir, 'clusters.i32'), raw(km.assignments));
    await writeFile(join(dir, 'meta.json'), JSON.stringify({ dim: 784, clusters: 10, seed: 0 }));
    const script = new URL('../scripts/reference.py', import.meta.url).pathname;
    expect(existsSync(script)).toBe(true);
    const ref = JSON.parse(execFileSync(python, [script, dir], { encoding: 'utf8' }));

    console.info(
      `raw pixels, 6000 train / 1000 test: 1-NN ours ${(ours.top1 * 100).toFixed(2)}% vs scikit-learn ${(ref.knn1_accuracy * 100).toFixed(2)}%; ` +
        `alignment ours ${(align.trainAccuracy * 100).toFixed(2)}% vs SciPy ${(ref.train_accuracy * 100).toFixed(2)}%; ` +
        `k-means inertia ours ${km.inertia.toFixed(2)} vs faiss ${ref.faiss_inertia === null ? 'missing' : ref.faiss_inertia.toFixed(2)}`,
    );
    // 1-NN: identical predictions but for float rounding at near-ties.
    const agree = Array.from(ours.predictions).filter((p, i) => p === ref.knn1_predictions[i]).length;
    expect(agree / test.labels.length).toBeGreaterThanOrEqual(0.998);
    expect(Math.abs(ours.top1 - ref.knn1_accuracy)).toBeLessThanOrEqual(0.002);
    // Cluster alignment on the same clusters: the same Hungarian mapping and accuracy as SciPy.
    expect(Array.from(align.mapping)).toEqual(ref.mapping);
    expect(align.trainAccuracy).toBeCloseTo(ref.train_accuracy, 12);
    // k-means itself: our inertia within 2% of faiss' (different seeds of the same algorithm).
    if (ref.faiss_inertia !== null) expect(km.inertia / ref.faiss_inertia).toBeLessThan(1.02);
  }, 120_000);
});
