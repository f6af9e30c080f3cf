import { mkdtempSync } from 'node:fs';
import { copyFile, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CompressError,
  type Dataset,
  type FeatureMatrix,
  type ImageBatch,
  type RawImage,
  Rng,
  type Teacher,
} from '@compress/core';
import { describe, expect, it } from 'vitest';
import { cacheTeacherFeatures, cacheTeacherFeaturesSteps } from './cache-features.js';
import { featureShardFile, featureShardRange, planFeatureCache } from './cache-plan.js';
import {
  checkFeatureShards,
  inspectFeatureShard,
  mergeFeatureCaches,
  readFeatureShard,
} from './cache-shards.js';
import { CachedTeacher } from './cached-teacher.js';

const dir = mkdtempSync(join(tmpdir(), 'compress-shards-'));
let count = 0;
const place = (name: string) => join(dir, `${count++}`, name);

function dataset(length: number, fingerprint: string): Dataset {
  const rng = new Rng(fingerprint);
  const images: RawImage[] = Array.from({ length }, () => ({
    data: Uint8Array.from({ length: 4 * 4 }, () => rng.int(256)),
    height: 4,
    width: 4,
    channels: 1,
  }));
  return {
    name: `tiny/${fingerprint}`,
    length,
    classes: ['a', 'b'],
    imageShape: [4, 4, 1],
    fingerprint,
    get: (index) => ({ index, image: images[index]!, label: index % 2 }),
  };
}

function teacher(fingerprint = 'fn-v1', dim = 6): Teacher {
  return {
    dim,
    fingerprint,
    async embed(batch: ImageBatch): Promise<FeatureMatrix> {
      const b = batch.shape[0];
      const data = new Float32Array(b * dim);
      for (let i = 0; i < b; i++)
        for (let j = 0; j < dim; j++) data[i * dim + j] = batch.images[i * 16 + j]! * (j + 1) - 0.3;
      return { rows: b, dim, data };
    },
    dispose() {},
  };
}

async function thrown(p: Promise<unknown>): Promise<CompressError> {
  try {
    await p;
  } catch (error) {
    expect(error).toBeInstanceOf(CompressError);
    return error as CompressError;
  }
  throw new Error('expected a CompressError');
}

/** Writes shards `indices` of `n` beside `whole` and returns their files. */
async function shards(
  data: Dataset,
  whole: string,
  n: number,
  options: Parameters<typeof cacheTeacherFeatures>[3] = {},
  indices = Array.from({ length: n }, (_, i) => i),
): Promise<string[]> {
  const files: string[] = [];
  for (const index of indices) {
    const file = featureShardFile(whole, { index, count: n });
    await cacheTeacherFeatures(teacher(), data, file, {
      batchSize: 4,
      ...options,
      shard: { index, count: n },
    });
    files.push(file);
  }
  return files;
}

describe('sharded feature caches', () => {
  it('ranges are contiguous, cover every row once, and name their files', () => {
    for (const [length, n] of [
      [10, 3],
      [7, 7],
      [1000, 6],
    ] as const) {
      const ranges = Array.from({ length: n }, (_, index) => featureShardRange(length, { index, count: n }));
      expect(ranges[0]!.start).toBe(0);
      expect(ranges.at(-1)!.end).toBe(length);
      for (let i = 1; i < n; i++) expect(ranges[i]!.start).toBe(ranges[i - 1]!.end);
    }
    expect(featureShardRange(10, { index: 1, count: 3 })).toEqual({ index: 1, count: 3, start: 3, end: 6 });
    expect(() => featureShardRange(2, { index: 0, count: 3 })).toThrow(/some shards would be empty/);
    expect(() => featureShardRange(10, { index: 3, count: 3 })).toThrow(/0…2/);
    expect(featureShardFile('/x/teacher-train.fcache', { index: 2, count: 5 })).toBe(
      '/x/teacher-train.shard-2-of-5.fcache',
    );
  });

  for (const dtype of ['float32', 'float16'] as const) {
    for (const blocks of [undefined, 7]) {
      it(`merging 3 shards gives the unsharded file byte for byte (${dtype}, ${blocks ?? 'default'} rows per checksum block)`, async () => {
        const data = dataset(50, 'A');
        const whole = place('teacher-train.fcache');
        const options = { dtype, ...(blocks ? { checksumBlockRows: blocks } : {}) };
        await cacheTeacherFeatures(teacher(), data, whole, { batchSize: 8, ...options });
        const files = await shards(data, place('teacher-train.fcache'), 3, options);
        const merged = place('merged.fcache');
        const summary = await mergeFeatureCaches(files.reverse(), merged, options);
        expect(summary.shards.map((s) => s.index)).toEqual([0, 1, 2]);
        expect(Buffer.compare(await readFile(merged), await readFile(whole))).toBe(0);
        // merged again over itself: the same bytes
        await mergeFeatureCaches(files, merged, options);
        expect(Buffer.compare(await readFile(merged), await readFile(whole))).toBe(0);
      });
    }
  }

  it('a killed shard resumes where it stopped and ends identical', async () => {
    const data = dataset(40, 'B');
    const base = place('t.fcache');
    const file = featureShardFile(base, { index: 1, count: 2 });
    const steps = cacheTeacherFeaturesSteps(teacher(), data, file, {
      batchSize: 4,
      shard: { index: 1, count: 2 },
    });
    for (let i = 0; i < 3; i++) await steps.next(); // start + 2 batches, then "killed"
    await steps.return(undefined as never);
    const half = await inspectFeatureShard(file);
    expect(half).toMatchObject({ index: 1, count: 2, start: 20, end: 40, doneRows: 8, done: false });
    const again = await cacheTeacherFeatures(teacher(), data, file, {
      batchSize: 4,
      shard: { index: 1, count: 2 },
    });
    expect(again.resumedFrom).toBe(8);
    const [other] = await shards(data, base, 2, {}, [0]);
    const merged = place('merged.fcache');
    await mergeFeatureCaches([other!, file], merged);
    const whole = place('whole.fcache');
    await cacheTeacherFeatures(teacher(), data, whole);
    expect(Buffer.compare(await readFile(merged), await readFile(whole))).toBe(0);
    // a resume with another shard layout is refused
    const e = await thrown(cacheTeacherFeatures(teacher(), data, file, { shard: { index: 1, count: 3 } }));
    expect(e.message).toMatch(/holds shard 1 of 2 \(dataset indices 20…39\), not shard 1 of 3/);
  });

  it('refuses missing, duplicate, foreign and unfinished shards by name', async () => {
    const data = dataset(30, 'C');
    const base = place('teacher-train.fcache');
    const files = await shards(data, base, 3);
    const expectedFile = (s: { index: number; count: number }) => featureShardFile('teacher-train.fcache', s);

    let e = await thrown(mergeFeatureCaches([files[0]!, files[2]!], place('m.fcache'), { expectedFile }));
    expect(e.code).toBe('NOT_FOUND');
    expect(e.message).toMatch(/1 of 3 shards missing: shard 1 \(teacher-train\.shard-1-of-3\.fcache\)/);

    const copy = join(dir, 'copy-of-shard-2.fcache');
    await copyFile(files[2]!, copy);
    e = await thrown(mergeFeatureCaches([...files, copy], place('m.fcache')));
    expect(e.code).toBe('MISMATCH');
    expect(e.message).toMatch(
      /shard 2 of 3 appears 2 times: .*shard-2-of-3\.fcache, .*copy-of-shard-2\.fcache/,
    );

    // another teacher's shard 1 in place of ours
    const foreign = featureShardFile(place('teacher-train.fcache'), { index: 1, count: 3 });
    await cacheTeacherFeatures(teacher('other-teacher'), data, foreign, { shard: { index: 1, count: 3 } });
    e = await thrown(mergeFeatureCaches([files[0]!, foreign, files[2]!], place('m.fcache')));
    expect(e.code).toBe('MISMATCH');
    expect(e.input).toBe(foreign);
    expect(e.message).toMatch(
      /shard-1-of-3\.fcache belongs to another shard set: its teacher is other-teacher, not fn-v1/,
    );
    // another dataset's, and one of a set of 2
    const otherData = featureShardFile(place('t.fcache'), { index: 1, count: 3 });
    await cacheTeacherFeatures(teacher(), dataset(30, 'D'), otherData, { shard: { index: 1, count: 3 } });
    e = await thrown(mergeFeatureCaches([files[0]!, otherData, files[2]!], place('m.fcache')));
    expect(e.message).toMatch(/its dataset is 'tiny\/D' \(fingerprint D\), not 'tiny\/C'/);
    const [ofTwo] = await shards(data, place('t.fcache'), 2, {}, [1]);
    e = await thrown(mergeFeatureCaches([...files, ofTwo!], place('m.fcache')));
    expect(e.message).toMatch(
      /shard-1-of-2\.fcache belongs to another shard set: its shard count is 2, not 3/,
    );

    // unfinished
    const partial = featureShardFile(place('teacher-train.fcache'), { index: 1, count: 3 });
    const steps = cacheTeacherFeaturesSteps(teacher(), data, partial, {
      batchSize: 4,
      shard: { index: 1, count: 3 },
    });
    await steps.next();
    await steps.next();
    await steps.return(undefined as never);
    e = await thrown(mergeFeatureCaches([files[0]!, partial, files[2]!], place('m.fcache')));
    expect(e.code).toBe('NOT_FOUND');
    expect(e.message).toMatch(/shard-1-of-3\.fcache is unfinished \(4 of 10 rows written/);

    // a whole cache among shards
    const whole = place('whole.fcache');
    await cacheTeacherFeatures(teacher(), data, whole);
    e = await thrown(mergeFeatureCaches([...files, whole], place('m.fcache')));
    expect(e.message).toMatch(/whole\.fcache is a whole feature cache, not a shard/);
    // and a shard is not a teacher
    e = await thrown(CachedTeacher.open(files[0]!, { dataset: data }));
    expect(e.message).toMatch(/this is shard 0 of 3 .*merge the shard set first/);
    // checked against the expected dataset
    e = await thrown(checkFeatureShards(files, { dataset: { name: 'x', fingerprint: 'X', length: 30 } }));
    expect(e.message).toMatch(/its dataset is 'tiny\/C' \(fingerprint C\), not 'x' \(fingerprint X\)/);
  });

  it('reads a shard as float32 rows equal to the whole cache at its dataset indices', async () => {
    const data = dataset(25, 'E');
    const whole = place('w.fcache');
    await cacheTeacherFeatures(teacher(), data, whole, { dtype: 'float16' });
    const files = await shards(data, place('t.fcache'), 4, { dtype: 'float16' });
    const set = await checkFeatureShards(files);
    const cached = await CachedTeacher.open(whole, { dataset: data });
    for (const shard of set.shards) {
      const rows = await readFeatureShard(shard);
      const want = cached.lookup(Array.from({ length: shard.rows }, (_, r) => shard.start + r));
      expect(rows).toEqual(want);
    }
    await cached.dispose();
  });

  it('refuses a cache larger than the free space before any work, naming both numbers', async () => {
    let reads = 0;
    const huge: Dataset = {
      ...dataset(1, 'F'),
      length: 2 ** 40,
      get: () => {
        reads++;
        throw new Error('read');
      },
    };
    const wide = teacher('wide', 2 ** 20);
    const file = place('huge.fcache');
    const plan = planFeatureCache(wide, huge, file, { shard: { index: 0, count: 2 } });
    expect(plan.rows).toBe(2 ** 39);
    expect(plan.bytes).toBeGreaterThan(2 ** 39 * 2 ** 20 * 4);
    const e = await thrown(cacheTeacherFeatures(wide, huge, file, { shard: { index: 0, count: 2 } }));
    expect(e.code).toBe('IO');
    expect(e.message).toMatch(
      new RegExp(
        `huge\\.fcache needs .*\\(${plan.bytes} bytes\\), but its file system has .*\\(\\d+ bytes\\) free`,
      ),
    );
    expect(reads).toBe(0);
  });
});
