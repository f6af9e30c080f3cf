import { mkdtempSync } from 'node:fs';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CompressError,
  collate,
  type Dataset,
  type FeatureMatrix,
  type ImageBatch,
  type ImageTransform,
  type ProgressEvent,
  type RawImage,
  Rng,
  type Sample,
  type Teacher,
} from '@compress/core';
import { describeTeacher } from '@compress/core/testing';
import { describe, expect, it } from 'vitest';
import { cacheTeacherFeatures, cacheTeacherFeaturesSteps } from './cache-features.js';
import { CachedTeacher } from './cached-teacher.js';
import { linearTeacherModel } from './onnx-model.test-util.js';
import { OnnxTeacher } from './onnx-teacher.js';

const dir = mkdtempSync(join(tmpdir(), 'compress-cache-'));
let fileCount = 0;
const tmp = (name: string) => join(dir, `${fileCount++}-${name}`);

/** An in-memory dataset of random 8-bit images. */
function tinyDataset(
  length: number,
  fingerprint: string,
  shape: [number, number, number] = [8, 8, 3],
): Dataset {
  const [h, w, c] = shape;
  const rng = new Rng(fingerprint);
  const images: RawImage[] = Array.from({ length }, () => ({
    data: Uint8Array.from({ length: h * w * c }, () => rng.int(256)),
    height: h,
    width: w,
    channels: c,
  }));
  return {
    name: `tiny/${fingerprint}`,
    length,
    classes: ['a', 'b'],
    imageShape: shape,
    fingerprint,
    get: (index) => ({ index, image: images[index]!, label: index % 2 }),
  };
}

/** A plain-function teacher: per-image channel means and a few pixels, scaled. */
function functionTeacher(fingerprint: string | null = 'fn-v1', poison?: number): Teacher & { calls: number } {
  const t = {
    dim: 5,
    calls: 0,
    ...(fingerprint === null ? {} : { fingerprint }),
    async embed(batch: ImageBatch): Promise<FeatureMatrix> {
      t.calls++;
      const [b, h, w, c] = batch.shape;
      const per = h * w * c;
      const data = new Float32Array(b * 5);
      for (let i = 0; i < b; i++) {
        for (let j = 0; j < 5; j++) data[i * 5 + j] = batch.images[i * per + j * 7]! * (j + 1) - 0.3;
        if (batch.indices[i] === poison) data[i * 5 + 2] = Number.POSITIVE_INFINITY;
      }
      return { rows: b, dim: 5, data };
    },
    dispose() {},
  };
  return t;
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

const quiet = { log: false as const, providers: ['cpu'] as const };

describe('cacheTeacherFeatures + CachedTeacher', () => {
  it('stores every row in dataset order and serves them by index, float32 exactly', async () => {
    const dataset = tinyDataset(37, 'A');
    const teacher = await OnnxTeacher.create(linearTeacherModel({}).bytes, {
      ...quiet,
      normalize: 'imagenet',
    });
    const file = tmp('a.f32');
    const events: ProgressEvent[] = [];
    const summary = await cacheTeacherFeatures(teacher, dataset, file, {
      batchSize: 10,
      onProgress: (e) => events.push(e),
    });
    expect(summary).toEqual({
      file,
      rows: 37,
      dim: 7,
      dtype: 'float32',
      bytes: 4096 + 1088 + 4, // header, rows (37 × 7 × 4 = 1036 bytes, padded to 64), one block's checksum
      resumedFrom: 0,
    });
    expect(events.map((e) => e.done)).toEqual([0, 10, 20, 30, 37]);
    expect(events[1]).toEqual({ phase: 'cache-teacher', done: 10, total: 37, unit: 'images' });

    const all = collate(
      Array.from({ length: 37 }, (_, i) => ({ index: i, image: (dataset.get(i) as Sample).image })),
    );
    const direct = await teacher.embed(all);
    const cached = await CachedTeacher.open(file, { dataset, teacher });
    expect(cached.dim).toBe(7);
    expect(cached.rows).toBe(37);
    expect(cached.fingerprint).toBe(teacher.fingerprint);
    expect(cached.read(0, 37).data).toEqual(direct.data);
    const indices = Int32Array.from([5, 3, 4, 36, 0, 4]);
    const got = await cached.embed({ indices, images: new Float32Array(0), shape: [6, 8, 8, 3] });
    indices.forEach((index, i) => {
      expect(got.data.subarray(i * 7, (i + 1) * 7)).toEqual(direct.data.subarray(index * 7, (index + 1) * 7));
    });
    expect(() => cached.lookup([37])).toThrow(
      `CachedTeacher ${file}: dataset index 37 is outside the cache's rows 0…36`,
    );
    cached.dispose();
    await teacher.dispose();
  });

  it('halves the rows with float16, within float16 precision', async () => {
    const dataset = tinyDataset(40, 'B');
    const teacher = functionTeacher();
    const f32 = tmp('b.f32');
    const f16 = tmp('b.f16');
    await cacheTeacherFeatures(teacher, dataset, f32, { batchSize: 16 });
    await cacheTeacherFeatures(teacher, dataset, f16, { batchSize: 16, dtype: 'float16' });
    // header (4096), rows (then padding to 64 bytes), one block's checksum
    const align = (n: number) => Math.ceil(n / 64) * 64;
    expect((await stat(f32)).size).toBe(4096 + align(40 * teacher.dim * 4) + 4);
    expect((await stat(f16)).size).toBe(4096 + align(40 * teacher.dim * 2) + 4);
    const a = await CachedTeacher.open(f32, { dataset });
    const b = await CachedTeacher.open(f16, { dataset });
    expect(b.dtype).toBe('float16');
    const x = a.read(0, 40).data;
    const y = b.lookup(Array.from({ length: 40 }, (_, i) => i)).data;
    for (let i = 0; i < x.length; i++)
      expect(Math.abs(x[i]! - y[i]!)).toBeLessThanOrEqual(Math.abs(x[i]!) * 2 ** -11 + 1e-7);
    a.dispose();
    b.dispose();
  });

  it('refuses float16 for values beyond its range', async () => {
    const big: Teacher = {
      dim: 1,
      fingerprint: 'big',
      embed: async (b) => ({ rows: b.shape[0], dim: 1, data: new Float32Array(b.shape[0]).fill(1e5) }),
      dispose() {},
    };
    const error = await thrown(
      cacheTeacherFeatures(big, tinyDataset(3, 'C'), tmp('c.f16'), { dtype: 'float16' }),
    );
    expect(error.message).toBe(
      "cacheTeacherFeatures: value 100000 at dataset index 0, column 0 does not fit float16 (|x| ≤ 65504); use dtype 'float32'",
    );
  });

  it('resumes an interrupted run where it stopped and ends byte-identical to an unbroken run', async () => {
    const dataset = tinyDataset(53, 'D');
    const whole = tmp('d-whole');
    await cacheTeacherFeatures(functionTeacher(), dataset, whole, { batchSize: 8, dtype: 'float16' });

    // Stopped between batches (the step form abandoned after 3 batches).
    const stopped = tmp('d-stopped');
    let steps = 0;
    for await (const e of cacheTeacherFeaturesSteps(functionTeacher(), dataset, stopped, {
      batchSize: 8,
      dtype: 'float16',
    })) {
      if (e.done > 0 && ++steps === 3) break;
    }
    await expect(CachedTeacher.open(stopped)).rejects.toThrow(
      `CachedTeacher ${stopped}: the cache is unfinished (24 of 53 rows written); run cacheTeacherFeatures again with the same teacher and dataset to finish it`,
    );
    const resumedTeacher = functionTeacher();
    const summary = await cacheTeacherFeatures(resumedTeacher, dataset, stopped, {
      batchSize: 8,
      dtype: 'float16',
    });
    expect(summary.resumedFrom).toBe(24);
    expect(resumedTeacher.calls).toBe(4); // only the 29 rows left: 8 + 8 + 8 + 5
    expect(await readFile(stopped)).toEqual(await readFile(whole));

    // Killed in the middle of a batch: rows past the marker were half written.
    const killed = tmp('d-killed');
    const crashing = functionTeacher();
    const embed = crashing.embed.bind(crashing);
    crashing.embed = async (b) => {
      if (crashing.calls === 4) throw new Error('killed');
      return embed(b);
    };
    await expect(
      cacheTeacherFeatures(crashing, dataset, killed, { batchSize: 8, dtype: 'float16' }),
    ).rejects.toThrow('killed');
    const bytes = await readFile(killed);
    bytes.fill(0xab, 4096 + 32 * 5 * 2, 4096 + 37 * 5 * 2); // garbage where the next batch was going
    await writeFile(killed, bytes);
    const again = await cacheTeacherFeatures(functionTeacher(), dataset, killed, {
      batchSize: 16,
      dtype: 'float16',
    });
    expect(again.resumedFrom).toBe(32);
    expect(await readFile(killed)).toEqual(await readFile(whole));

    // A finished cache is left as it is.
    const idle = functionTeacher();
    expect(
      (await cacheTeacherFeatures(idle, dataset, whole, { batchSize: 8, dtype: 'float16' })).resumedFrom,
    ).toBe(53);
    expect(idle.calls).toBe(0);
  });

  it('gives each image the same random transform whatever the batching', async () => {
    const dataset = tinyDataset(20, 'E');
    const jitter: ImageTransform = (image, rng) => {
      const data = new Float32Array(image.data.length);
      for (let i = 0; i < data.length; i++) data[i] = image.data[i]! / 255 + rng.uniform(-0.1, 0.1);
      return { data, height: image.height, width: image.width, channels: image.channels };
    };
    const a = tmp('e-a');
    const b = tmp('e-b');
    await cacheTeacherFeatures(functionTeacher(), dataset, a, {
      batchSize: 3,
      transform: jitter,
      transformId: 'jitter',
      seed: 5,
    });
    await cacheTeacherFeatures(functionTeacher(), dataset, b, {
      batchSize: 20,
      transform: jitter,
      transformId: 'jitter',
      seed: 5,
    });
    const e0 = await thrown(
      cacheTeacherFeatures(functionTeacher(), dataset, tmp('e-c'), { transform: jitter }),
    );
    expect(e0.message).toBe(
      'cacheTeacherFeatures: a transform needs a transformId (a name for what it does, e.g. "resize-224"), stored in the file so that a resume with another transform is refused',
    );
    expect(await readFile(a)).toEqual(await readFile(b));
    const cached = await CachedTeacher.open(a);
    expect(cached.transform).toBe('jitter');
    cached.dispose();
    const error = await thrown(cacheTeacherFeatures(functionTeacher(), dataset, a, { batchSize: 3 }));
    expect(error.code).toBe('MISMATCH');
    expect(error.message).toBe(
      `cacheTeacherFeatures: ${a} already holds another cache: it was made with transform 'jitter', not 'none'; delete it or pass overwrite: true`,
    );
  });

  it('refuses a cache of another dataset, teacher or size, naming both', async () => {
    const dataset = tinyDataset(12, 'F');
    const file = tmp('f');
    await cacheTeacherFeatures(functionTeacher('teacher-1'), dataset, file);
    const other = tinyDataset(12, 'G');
    const e1 = await thrown(CachedTeacher.open(file, { dataset: other }));
    expect(e1.code).toBe('MISMATCH');
    expect(e1.message).toBe(
      `CachedTeacher ${file}: the cache was made from dataset 'tiny/F' (fingerprint F, 12 images), not from 'tiny/G' (fingerprint G, 12 images)`,
    );
    const e2 = await thrown(
      CachedTeacher.open(file, { dataset: { ...dataset, name: 'tiny/F', fingerprint: 'F', length: 13 } }),
    );
    expect(e2.message).toBe(
      `CachedTeacher ${file}: the cache has 12 rows, the dataset 'tiny/F' has 13 images`,
    );
    const e3 = await thrown(CachedTeacher.open(file, { dataset, teacher: 'teacher-2' }));
    expect(e3.message).toBe(
      `CachedTeacher ${file}: the features were made by teacher teacher-1, not by teacher-2`,
    );
    const e4 = await thrown(cacheTeacherFeatures(functionTeacher('teacher-2'), dataset, file));
    expect(e4.message).toBe(
      `cacheTeacherFeatures: ${file} already holds another cache: it was made by teacher teacher-1, not teacher-2; delete it or pass overwrite: true`,
    );
    const e5 = await thrown(cacheTeacherFeatures(functionTeacher(), other, file));
    expect(e5.message).toContain(
      "it was made from dataset 'tiny/F' (fingerprint F), not 'tiny/G' (fingerprint G)",
    );
    await cacheTeacherFeatures(functionTeacher('teacher-2'), dataset, file, { overwrite: true });
    const cached = await CachedTeacher.open(file, { dataset, teacher: 'teacher-2' });
    cached.dispose();
  });

  it('refuses files that are not caches or were cut short', async () => {
    const notCache = tmp('not-cache');
    await writeFile(notCache, 'hello, this is not a feature cache at all, not even close to one');
    const e1 = await thrown(CachedTeacher.open(notCache));
    expect(e1.code).toBe('CORRUPT_INPUT');
    expect(e1.message).toBe(
      `${notCache} is not a compress feature cache: expected the magic "COMPRESS" (or "CMPFEATS" of versions 1 and 2), found "hello, t"`,
    );
    const e2 = await thrown(cacheTeacherFeatures(functionTeacher(), tinyDataset(2, 'H'), notCache));
    expect(e2.message).toContain('already holds something else');
    const dataset = tinyDataset(10, 'I');
    const file = tmp('cut');
    await cacheTeacherFeatures(functionTeacher(), dataset, file);
    const bytes = await readFile(file);
    await writeFile(file, bytes.subarray(0, bytes.length - 3));
    const e3 = await thrown(CachedTeacher.open(file));
    expect(e3.message).toBe(
      `CachedTeacher ${file}: the file has ${bytes.length - 3} bytes, its header (10 rows × 5 float32) says ${bytes.length}`,
    );
    const e4 = await thrown(CachedTeacher.open(tmp('missing')));
    expect(e4.code).toBe('NOT_FOUND');
  });

  it('requires a teacher fingerprint and finite features', async () => {
    const dataset = tinyDataset(30, 'J');
    const e1 = await thrown(cacheTeacherFeatures(functionTeacher(null), dataset, tmp('j')));
    expect(e1.message).toContain('cacheTeacherFeatures: the teacher has no fingerprint; give it one');
    await cacheTeacherFeatures(functionTeacher(null), dataset, tmp('j2'), { teacherFingerprint: 'my-fn' });
    const e2 = await thrown(
      cacheTeacherFeatures(functionTeacher('fn', 17), dataset, tmp('j3'), { batchSize: 8 }),
    );
    expect(e2.code).toBe('NON_FINITE');
    expect(e2.message).toContain('found Infinity at dataset index 17, column 2');
  });

  it('checks the images against an ONNX teacher before the first batch', async () => {
    const teacher = await OnnxTeacher.create(linearTeacherModel({ size: 32 }).bytes, quiet);
    const error = await thrown(cacheTeacherFeatures(teacher, tinyDataset(4, 'K'), tmp('k')));
    expect(error.code).toBe('SHAPE_MISMATCH');
    expect(error.message).toContain('the data is NHWC images of 8×8×3: resize or crop the images to 32×32');
    await teacher.dispose();
  });
});

const conformanceFile = tmp('conformance');
describeTeacher(
  'CachedTeacher (float16 cache of an ONNX teacher)',
  async () => {
    const dataset = tinyDataset(16, 'conformance', [16, 16, 3]);
    const onnx = await OnnxTeacher.create(linearTeacherModel({ size: 16 }).bytes, quiet);
    await cacheTeacherFeatures(onnx, dataset, conformanceFile, { dtype: 'float16', batchSize: 5 });
    await onnx.dispose();
    return CachedTeacher.open(conformanceFile, { dataset });
  },
  { imageShape: [16, 16, 3], batchSize: 9, tolerance: 0 },
);
