import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { presetConfig } from './presets.js';
import type { Reporter } from './progress.js';
import {
  ablationConfig,
  ablationQueueSizes,
  type ReproduceResult,
  reproduce,
  tableOrder,
} from './reproduce.js';

const silent: Reporter = { info: () => {}, progress: () => {}, done: () => {} };

describe('reproduce', () => {
  it('fills every row of Table 1, writes table.md/json and pictures, and reuses finished pieces', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'compress-reproduce-'));
    const teacher = join(dir, 'teacher.mjs');
    await writeFile(
      teacher,
      `export default { dim: 8, async embed(b) { const [n, h, w] = b.shape; const per = h * w; const out = new Float32Array(n * 8);
        for (let i = 0; i < n; i++) for (let j = 0; j < 8; j++) { let s = 0; for (let p = j; p < per; p += 8) s += b.images[i * per + p]; out[i * 8 + j] = s; }
        return { rows: n, dim: 8, data: out }; }, dispose() {} };`,
    );
    const config = presetConfig('fashion-mnist', 'quick', 'momentum');
    config.data = { ...config.data, trainSubset: 128, evalTrainSubset: 300, evalTestSubset: 100, workers: 0 };
    config.teacher.source = teacher;
    config.student = { ...config.student, arch: 'alexnet-small', width: 0.125 };
    config.loss = { ...config.loss, queueSize: 32, ccClusters: 6 };
    config.optim = { ...config.optim, batchSize: 32, maxSteps: 2, baselineMaxSteps: 1 };
    config.eval = { ...config.eval, linearEpochs: 2, linearMilestones: [1] };
    config.schedule.monitorSize = 0;
    const out = join(dir, 'run');
    const first: string[] = [];
    const result = await reproduce({ config, out, reporter: { ...silent, info: (m) => first.push(m) } });
    expect(first).toContain('training momentum');
    expect(first).toContain('evaluating teacher');
    expect(result.rows.map((r) => r.method)).toEqual(tableOrder);
    for (const row of result.rows) {
      for (const key of ['linear', 'nn', 'ca'] as const) {
        expect(row[key]).toBeGreaterThanOrEqual(0);
        expect(row[key]).toBeLessThanOrEqual(100);
      }
    }
    const json = JSON.parse(await readFile(join(out, 'results', 'table.json'), 'utf8')) as ReproduceResult;
    expect(json).toMatchObject({ preset: 'fashion-mnist', budget: 'quick', seed: 0 });
    expect(json.rows).toEqual(result.rows);
    const md = await readFile(join(out, 'results', 'table.md'), 'utf8');
    expect(md).toMatch(/\| method \| Linear \| NN \| CA \| steps \|/);
    // the baselines stop at baselineMaxSteps, the CompRess variants at maxSteps
    expect(Object.fromEntries(result.rows.map((r) => [r.method, r.steps ?? null]))).toMatchObject({
      teacher: null,
      supervised: 1,
      'reg-bn': 1,
      momentum: 2,
      'one-queue': 2,
    });
    for (const png of [
      join(out, 'results', 'training-curves.png'),
      join(out, 'runs', 'momentum', 'training-curves.png'),
    ]) {
      expect((await sharp(png).metadata()).format).toBe('png');
    }
    expect(md).toMatch(/\| CompRess, momentum \(Ours-2q\) \|/);
    expect((await sharp(join(out, 'results', 'table.png')).metadata()).format).toBe('png');
    expect((await sharp(join(out, 'eval', 'momentum', 'confusion.png')).metadata()).format).toBe('png');
    expect((await sharp(join(out, 'eval', 'teacher', 'clusters.png')).metadata()).format).toBe('png');
    // A second run reuses every finished training and evaluation: it starts none of them.
    const said: string[] = [];
    const listening: Reporter = { ...silent, info: (m) => said.push(m) };
    const again = await reproduce({ config, out, reporter: listening });
    expect(again.rows).toEqual(result.rows);
    // its wall time adds to the first sitting's
    expect(again.wallSeconds).toBeGreaterThanOrEqual(result.wallSeconds);
    expect(said.filter((m) => /^(training|evaluating) /.test(m))).toEqual([]);

    // The same directory with another budget is refused before anything is written or started.
    const longer = { ...config, optim: { ...config.optim, maxSteps: 3 } };
    const before = await readFile(join(out, 'config.json'));
    await expect(reproduce({ config: longer, out, reporter: listening })).rejects.toThrow(
      /cannot resume .*run: its config\.json was made with other settings \(optim\.maxSteps: 2 there, 3 now\)/,
    );
    expect((await readFile(join(out, 'config.json'))).equals(before)).toBe(true);
    expect(said.filter((m) => /^(training|evaluating) /.test(m))).toEqual([]);
  }, 300_000);
});

describe('the ablations budget', () => {
  it('queue sizes: powers of 4 from 256 and the largest power of two below the training images', () => {
    expect(ablationQueueSizes(20000)).toEqual([256, 1024, 4096, 16384]);
    expect(ablationQueueSizes(60000)).toEqual([256, 1024, 4096, 16384, 32768]);
    expect(ablationQueueSizes(300)).toEqual([256]);
  });

  it('every point is the momentum variant at 500 steps of batch 128 on at most 20000 images, whatever the budget', () => {
    const a = ablationConfig(presetConfig('fashion-mnist', 'full', 'supervised'));
    expect([a.method, a.optim.maxSteps, a.optim.batchSize, a.data.trainSubset]).toEqual([
      'momentum',
      500,
      128,
      20000,
    ]);
  });
});
