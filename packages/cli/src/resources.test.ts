import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Dataset, Teacher } from '@compress/core';
import { pretrainedCard } from '@compress/students';
import { CachedTeacher, cacheTeacherFeatures } from '@compress/teacher';
import { beforeAll, describe, expect, it } from 'vitest';
import { evaluateSource } from './evaluate.js';
import { presetConfig } from './presets.js';
import type { Reporter } from './progress.js';
import { evalTransform, openSplits, openTeacher } from './resources.js';

const silent: Reporter = { info: () => {}, progress: () => {}, done: () => {} };
let dir: string;

/** Eight 4×4 gray images whose pixels are their index. */
const tiny: Dataset = {
  name: 'tiny',
  length: 8,
  classes: ['a', 'b'],
  imageShape: [4, 4, 1],
  fingerprint: 'tiny/8',
  get: (index) => ({
    index,
    label: index % 2,
    image: { data: new Uint8Array(16).fill(index * 30), height: 4, width: 4, channels: 1 },
  }),
};

/** Mean and maximum of every image. */
const stats: Teacher = {
  dim: 2,
  fingerprint: 'stats',
  async embed(batch) {
    const [b, h, w, c] = batch.shape;
    const per = h * w * c;
    const data = new Float32Array(b * 2);
    for (let i = 0; i < b; i++) {
      const row = batch.images.subarray(i * per, (i + 1) * per);
      data[i * 2] = row.reduce((s, v) => s + v, 0) / per;
      data[i * 2 + 1] = Math.max(...row);
    }
    return { rows: b, dim: 2, data };
  },
  dispose() {},
};

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'compress-resources-'));
});

describe('openTeacher', () => {
  it('refuses a TypeScript module with a message saying what to do', async () => {
    const file = join(dir, 'teacher.ts');
    await writeFile(file, 'export default {};\n');
    const config = presetConfig('fashion-mnist', 'quick', 'momentum');
    config.teacher.source = file;
    await expect(openTeacher(config, tiny, () => {})).rejects.toThrow(
      /does not import TypeScript.*\.js\/\.mjs/,
    );
  });

  it('refuses a module whose export is not a Teacher, naming the file', async () => {
    const file = join(dir, 'not-a-teacher.mjs');
    await writeFile(file, 'export default { dim: 3 };\n');
    const config = presetConfig('fashion-mnist', 'quick', 'momentum');
    config.teacher.source = file;
    await expect(openTeacher(config, tiny, () => {})).rejects.toThrow(/not-a-teacher\.mjs/);
  });

  it('opens a released student as a teacher by name, and refuses an unknown one', async () => {
    const config = presetConfig('fashion-mnist', 'quick', 'momentum');
    config.teacher.source = 'pretrained:fashion-mnist/one-queue';
    const teacher = await openTeacher(config, tiny, () => {});
    try {
      expect(teacher.dim).toBe(pretrainedCard('fashion-mnist/one-queue').dim);
    } finally {
      await teacher.dispose();
    }
    config.teacher.source = 'pretrained:fashion-mnist/best';
    await expect(openTeacher(config, tiny, () => {})).rejects.toThrow(
      /no released student "fashion-mnist\/best"/,
    );
  });
});

describe('evaluation transform', () => {
  it('is named in feature caches, so that a resume with another size is refused', async () => {
    const config = presetConfig('fashion-mnist', 'quick', 'momentum');
    config.augment.size = 2;
    const view = evalTransform(config, tiny)!;
    expect(view.id).toBe('resize-2-center-crop-2');
    const file = join(dir, 'tiny-2px.fcache');
    await cacheTeacherFeatures(stats, tiny, file, { transform: view.transform, transformId: view.id });
    config.augment.size = 3;
    const other = evalTransform(config, tiny)!;
    expect(other.id).toBe('resize-3-center-crop-3');
    await expect(
      cacheTeacherFeatures(stats, tiny, file, { transform: other.transform, transformId: other.id }),
    ).rejects.toThrow(/resize-2-center-crop-2/);
  });
});

describe('evaluateSource', () => {
  it('refuses to evaluate a teacher from a one-split feature cache', async () => {
    const file = join(dir, 'tiny.fcache');
    await cacheTeacherFeatures(stats, tiny, file);
    const cached = await CachedTeacher.open(file, { dataset: tiny });
    const config = presetConfig('fashion-mnist', 'quick', 'momentum');
    const splits = await openSplits(config);
    await expect(
      evaluateSource({
        config,
        splits,
        source: { kind: 'teacher', teacher: cached },
        name: 't',
        outDir: dir,
        reporter: silent,
      }),
    ).rejects.toThrow(/one dataset split only/);
    cached.dispose();
  });
});
