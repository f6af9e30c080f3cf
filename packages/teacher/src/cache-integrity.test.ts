import { mkdtempSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CompressError,
  crc32,
  type Dataset,
  type FeatureMatrix,
  type ImageBatch,
  Rng,
  type Teacher,
} from '@compress/core';
import { describe, expect, it } from 'vitest';
import { cacheTeacherFeatures, cacheTeacherFeaturesSteps } from './cache-features.js';
import { CACHE_KIND } from './cache-format.js';
import { CachedTeacher } from './cached-teacher.js';

const dir = mkdtempSync(join(tmpdir(), 'compress-cache-integrity-'));
let fileCount = 0;
const tmp = (name: string) => join(dir, `${fileCount++}-${name}`);

function dataset(length: number, fingerprint = 'ds'): Dataset {
  return {
    name: `tiny/${fingerprint}`,
    length,
    classes: ['a'],
    imageShape: [2, 2, 1],
    fingerprint,
    get: (index) => ({
      index,
      image: { data: Uint8Array.from([index % 256, 1, 2, 3]), height: 2, width: 2, channels: 1 },
      label: 0,
    }),
  };
}

/** Row i is (i, i/2, −i, 1/(i+1), 0.5) scaled: easy to recognise. */
function teacher(): Teacher & { calls: number } {
  const t = {
    dim: 5,
    fingerprint: 'rows-v1',
    calls: 0,
    async embed(batch: ImageBatch): Promise<FeatureMatrix> {
      t.calls++;
      const b = batch.shape[0];
      const data = new Float32Array(b * 5);
      for (let r = 0; r < b; r++) {
        const i = batch.indices[r]!;
        data.set([i / 10, i / 20, -i / 10, 1 / (i + 1), 0.5], r * 5);
      }
      return { rows: b, dim: 5, data };
    },
    dispose() {},
  };
  return t;
}

const HEADER = 4096;
const ROWS = 37;
const BLOCK = 4; // rows per checksum block in these tests: 10 blocks, the last one of 1 row
const remedy = 'delete it and cache the features again (compress-ssl cache-teacher, or cacheTeacherFeatures)';
const mismatch = (file: string, section: string) =>
  new RegExp(
    `^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: section '${section}' checksum mismatch \\(stored 0x[0-9a-f]{8}, computed 0x[0-9a-f]{8}\\): the file is damaged; ${remedy.replace(/[()]/g, '\\$&')}$`,
  );

async function thrown(f: () => unknown): Promise<CompressError> {
  try {
    await f();
  } catch (error) {
    expect(error).toBeInstanceOf(CompressError);
    return error as CompressError;
  }
  throw new Error('expected a CompressError');
}

async function writeCache(dtype: 'float32' | 'float16' = 'float32', batchSize = 6): Promise<string> {
  const file = tmp(`cache.${dtype}`);
  await cacheTeacherFeatures(teacher(), dataset(ROWS), file, { batchSize, dtype, checksumBlockRows: BLOCK });
  return file;
}

async function flip(file: string, offset: number, into?: string): Promise<string> {
  const bytes = await readFile(file);
  bytes[offset] = bytes[offset]! ^ 0x10;
  const out = into ?? tmp('flipped');
  await writeFile(out, bytes);
  return out;
}

const expected = (i: number) => Float32Array.from([i / 10, i / 20, -i / 10, 1 / (i + 1), 0.5]);
const all = Array.from({ length: ROWS }, (_, i) => i);

describe('feature cache checksums', () => {
  it('round-trips rows through checksummed blocks (float32 and float16)', async () => {
    for (const dtype of ['float32', 'float16'] as const) {
      const file = await writeCache(dtype);
      const bytes = await readFile(file);
      const rowBytes = dtype === 'float32' ? 20 : 10;
      expect(bytes.length).toBe(HEADER + Math.ceil((ROWS * rowBytes) / 64) * 64 + 10 * 4);
      expect(new TextDecoder().decode(bytes.subarray(0, 8))).toBe('COMPRESS');
      const cached = await CachedTeacher.open(file, { dataset: dataset(ROWS) });
      const shuffled = [...all].sort((a, b) => ((a * 7919) % 37) - ((b * 7919) % 37));
      for (const indices of [[5, 3, 4, 36, 0, 4], shuffled, all]) {
        const got = cached.lookup(indices);
        indices.forEach((index, r) => {
          const row = got.data.subarray(r * 5, (r + 1) * 5);
          if (dtype === 'float32') expect(row).toEqual(expected(index));
          else for (let j = 0; j < 5; j++) expect(row[j]).toBeCloseTo(expected(index)[j]!, 2);
        });
      }
      for (const [first, count] of [
        [0, 37],
        [3, 6],
        [36, 1],
        [8, 0],
      ] as const) {
        const got = cached.read(first, count);
        expect(got.rows).toBe(count);
        expect(got.data.length).toBe(count * 5);
        if (dtype === 'float32')
          for (let r = 0; r < count; r++)
            expect(got.data.subarray(r * 5, r * 5 + 5)).toEqual(expected(first + r));
      }
      cached.dispose();
    }
  });

  it('refuses a flipped byte in the header (fixed fields, metadata, padding, marker), naming the section', async () => {
    const file = await writeCache();
    // dtype, dim, rows, block rows, done rows, the running checksums, the metadata, its padding
    for (const offset of [16, 20, 24, 36, 40, 48, 52, 60, 70, HEADER - 1]) {
      const bad = await flip(file, offset);
      const error = await thrown(() => CachedTeacher.open(bad));
      expect(error.code, `offset ${offset}`).toBe('CORRUPT_INPUT');
      expect(error.input).toBe(bad);
      expect(error.message, `offset ${offset}`).toMatch(mismatch(bad, 'header'));
      // the writer refuses to resume it too, saying so
      const e2 = await thrown(() =>
        cacheTeacherFeatures(teacher(), dataset(ROWS), bad, { checksumBlockRows: BLOCK }),
      );
      expect(e2.message).toMatch(
        /^cacheTeacherFeatures: .*section 'header' checksum mismatch .* \(or pass overwrite: true\)$/,
      );
    }
    const size = await flip(file, 12); // the header size itself
    expect((await thrown(() => CachedTeacher.open(size))).message).toContain(
      `${size}: section 'header' is damaged`,
    );
  });

  it('refuses a flipped byte in the checksum table when opening, naming the table', async () => {
    const file = await writeCache();
    const bytes = await readFile(file);
    for (const offset of [bytes.length - 40, bytes.length - 1]) {
      const bad = await flip(file, offset);
      const error = await thrown(() => CachedTeacher.open(bad));
      expect(error.code).toBe('CORRUPT_INPUT');
      expect(error.message).toMatch(mismatch(bad, 'checksum table'));
    }
  });

  it('refuses a flipped byte in any block of rows when the block is read, naming its rows', async () => {
    const file = await writeCache();
    for (let block = 0; block < 10; block++) {
      const bad = await flip(file, HEADER + block * BLOCK * 20 + 7);
      const cached = await CachedTeacher.open(bad); // the rows are checked when read
      const first = block * BLOCK;
      const last = Math.min(ROWS, first + BLOCK) - 1;
      const others = all.filter((i) => i < first || i > last);
      expect(cached.lookup(others).rows).toBe(others.length); // the sound blocks read fine
      const section = `rows ${first}–${last}`;
      expect((await thrown(() => cached.lookup([last]))).message).toMatch(mismatch(bad, section));
      expect((await thrown(() => cached.read(0, ROWS))).message).toMatch(mismatch(bad, section));
      cached.dispose();
      // with verify: false the file is trusted
      const trusting = await CachedTeacher.open(bad, { verify: false });
      expect(trusting.read(0, ROWS).rows).toBe(ROWS);
      trusting.dispose();
    }
  });

  it('refuses random finite values written over the rows', async () => {
    for (const dtype of ['float32', 'float16'] as const) {
      const file = await writeCache(dtype);
      const bytes = await readFile(file);
      const rng = new Rng(3);
      const noise = new Float32Array(6);
      rng.fillUniform(noise, -1, 1); // plausible features: finite, small
      const at = HEADER + 13 * (dtype === 'float32' ? 20 : 10);
      bytes.set(new Uint8Array(noise.buffer), at);
      const bad = tmp('noise');
      await writeFile(bad, bytes);
      const cached = await CachedTeacher.open(bad);
      const error = await thrown(() =>
        cached.embed({
          indices: Int32Array.from([20, 13, 2]),
          images: new Float32Array(0),
          shape: [3, 2, 2, 1],
        }),
      );
      expect(error.code).toBe('CORRUPT_INPUT');
      expect(error.message).toMatch(mismatch(bad, 'rows 12–15'));
      cached.dispose();
    }
  });

  it('resumes across block boundaries, checksums included, byte-identical to an unbroken run', async () => {
    const whole = await writeCache('float16', 5);
    // stopped after 2 batches of 3 rows: block 1 (rows 4–7) is half done
    const stopped = tmp('stopped');
    let steps = 0;
    for await (const e of cacheTeacherFeaturesSteps(teacher(), dataset(ROWS), stopped, {
      batchSize: 3,
      dtype: 'float16',
      checksumBlockRows: BLOCK,
    })) {
      if (e.done > 0 && ++steps === 2) break;
    }
    const resumed = teacher();
    const summary = await cacheTeacherFeatures(resumed, dataset(ROWS), stopped, {
      batchSize: 7,
      dtype: 'float16',
      checksumBlockRows: 99, // a resumed file keeps its own blocks
    });
    expect(summary.resumedFrom).toBe(6);
    expect(await readFile(stopped)).toEqual(await readFile(whole));

    // killed in the middle of a batch, with garbage past the marker
    const killed = tmp('killed');
    const crashing = teacher();
    const embed = crashing.embed.bind(crashing);
    crashing.embed = async (b) => {
      if (crashing.calls === 3) throw new Error('killed');
      return embed(b);
    };
    await expect(
      cacheTeacherFeatures(crashing, dataset(ROWS), killed, {
        batchSize: 5,
        dtype: 'float16',
        checksumBlockRows: BLOCK,
      }),
    ).rejects.toThrow('killed');
    const bytes = await readFile(killed);
    bytes.fill(0xab, HEADER + 15 * 10, HEADER + 20 * 10);
    await writeFile(killed, bytes);
    expect(
      (await cacheTeacherFeatures(teacher(), dataset(ROWS), killed, { batchSize: 4, dtype: 'float16' }))
        .resumedFrom,
    ).toBe(15);
    expect(await readFile(killed)).toEqual(await readFile(whole));

    // a damaged row before the marker in the unfinished block is found before resuming
    const damaged = tmp('damaged');
    steps = 0;
    for await (const e of cacheTeacherFeaturesSteps(teacher(), dataset(ROWS), damaged, {
      batchSize: 3,
      dtype: 'float16',
      checksumBlockRows: BLOCK,
    })) {
      if (e.done > 0 && ++steps === 2) break;
    }
    await flip(damaged, HEADER + 5 * 10 + 1, damaged);
    const error = await thrown(() =>
      cacheTeacherFeatures(teacher(), dataset(ROWS), damaged, { dtype: 'float16' }),
    );
    expect(error.message).toMatch(
      /^cacheTeacherFeatures: .*: section 'rows 4–5' checksum mismatch .*\(or pass overwrite: true\)$/,
    );
    await cacheTeacherFeatures(teacher(), dataset(ROWS), damaged, {
      dtype: 'float16',
      batchSize: 5,
      checksumBlockRows: BLOCK,
      overwrite: true,
    });
    expect(await readFile(damaged)).toEqual(await readFile(whole));
  });

  it('reads a version-1 cache (no checksums) with a one-line warning; the writer will not extend it', async () => {
    // version 1: 48-byte fixed header (done rows at 32, metadata length at 40), rows, nothing after
    const meta = {
      kind: CACHE_KIND,
      dataset: { name: 'tiny/ds', fingerprint: 'ds', length: ROWS },
      teacher: { fingerprint: 'rows-v1' },
      transform: 'none',
    };
    const json = new TextEncoder().encode(JSON.stringify(meta));
    const bytes = new Uint8Array(HEADER + ROWS * 20);
    const view = new DataView(bytes.buffer);
    bytes.set(new TextEncoder().encode('CMPFEATS'), 0);
    view.setUint32(8, 1, true);
    view.setUint32(12, HEADER, true);
    view.setUint32(16, 1, true);
    view.setUint32(20, 5, true);
    view.setBigUint64(24, BigInt(ROWS), true);
    view.setBigUint64(32, BigInt(ROWS), true);
    view.setUint32(40, json.length, true);
    bytes.set(json, 48);
    for (let i = 0; i < ROWS; i++) bytes.set(new Uint8Array(expected(i).buffer), HEADER + i * 20);
    const file = tmp('v1');
    await writeFile(file, bytes);
    const warnings: string[] = [];
    const cached = await CachedTeacher.open(file, {
      dataset: dataset(ROWS),
      onWarning: (m) => warnings.push(m),
    });
    expect(warnings).toEqual([
      `CachedTeacher ${file}: a version-1 feature cache carries no checksums, its rows are read unchecked; cache the features again (with overwrite) to add them`,
    ]);
    expect(cached.lookup([36, 2]).data).toEqual(Float32Array.from([...expected(36), ...expected(2)]));
    cached.dispose();
    const error = await thrown(() => cacheTeacherFeatures(teacher(), dataset(ROWS), file));
    expect(error.code).toBe('MISMATCH');
    expect(error.message).toBe(
      `cacheTeacherFeatures: ${file} already holds another cache: it was written in version 1 of the cache format, which carries no checksums; delete it or pass overwrite: true`,
    );
    await cacheTeacherFeatures(teacher(), dataset(ROWS), file, {
      overwrite: true,
      checksumBlockRows: BLOCK,
      batchSize: 6,
    });
    expect(await readFile(file)).toEqual(await readFile(await writeCache()));
  });

  it('reads a version-2 cache ("CMPFEATS" with checksums), checking its header, table and blocks', async () => {
    const file = tmp('v2');
    const good = encodeV2(ROWS, BLOCK, ROWS);
    await writeFile(file, good);
    const warnings: string[] = [];
    const cached = await CachedTeacher.open(file, {
      dataset: dataset(ROWS),
      onWarning: (m) => warnings.push(m),
    });
    expect(warnings).toEqual([]);
    expect(cached.read(0, ROWS).data).toEqual(Float32Array.from(all.flatMap((i) => [...expected(i)])));
    cached.dispose();
    // a flipped byte in the header (its checksums), in the table, in a block
    const header = await flip(file, 52);
    expect((await thrown(() => CachedTeacher.open(header))).message).toMatch(mismatch(header, 'header'));
    const table = await flip(file, good.length - 1);
    expect((await thrown(() => CachedTeacher.open(table))).message).toMatch(
      mismatch(table, 'checksum table'),
    );
    const rows = await flip(file, HEADER + 13 * 20);
    const damaged = await CachedTeacher.open(rows);
    expect((await thrown(() => damaged.lookup([13]))).message).toMatch(mismatch(rows, 'rows 12–15'));
    damaged.dispose();
    // a finished version-2 cache of the same teacher and dataset is left as it is
    const summary = await cacheTeacherFeatures(teacher(), dataset(ROWS), file, { checksumBlockRows: BLOCK });
    expect(summary.resumedFrom).toBe(ROWS);
    expect(new Uint8Array(await readFile(file))).toEqual(good);
    // an unfinished one is not extended: it is made again with overwrite, in version 3
    const unfinished = tmp('v2-unfinished');
    await writeFile(unfinished, encodeV2(ROWS, BLOCK, 8));
    const error = await thrown(() => cacheTeacherFeatures(teacher(), dataset(ROWS), unfinished));
    expect(error.code).toBe('MISMATCH');
    expect(error.message).toContain(
      'it is an unfinished cache in version 2 of the cache format, which this version reads but does not extend',
    );
    await cacheTeacherFeatures(teacher(), dataset(ROWS), unfinished, {
      overwrite: true,
      checksumBlockRows: BLOCK,
      batchSize: 6,
    });
    expect(await readFile(unfinished)).toEqual(await readFile(await writeCache()));
  });
});

/** Today's version-2 "CMPFEATS" layout of the rows `expected(i)` (float32, dim 5), as version 2 wrote it. */
function encodeV2(rows: number, blockRows: number, done: number): Uint8Array {
  const meta = {
    kind: CACHE_KIND,
    dataset: { name: 'tiny/ds', fingerprint: 'ds', length: rows },
    teacher: { fingerprint: 'rows-v1' },
    transform: 'none',
  };
  const json = new TextEncoder().encode(JSON.stringify(meta));
  const blocks = Math.ceil(rows / blockRows);
  const bytes = new Uint8Array(HEADER + rows * 20 + 4 * blocks);
  const view = new DataView(bytes.buffer);
  bytes.set(new TextEncoder().encode('CMPFEATS'), 0);
  view.setUint32(8, 2, true);
  view.setUint32(12, HEADER, true);
  view.setUint32(16, 1, true);
  view.setUint32(20, 5, true);
  view.setBigUint64(24, BigInt(rows), true);
  view.setUint32(32, json.length, true);
  view.setUint32(36, blockRows, true);
  bytes.set(json, 64);
  for (let i = 0; i < done; i++) bytes.set(new Uint8Array(expected(i).buffer), HEADER + i * 20);
  const finished = done === rows ? blocks : Math.floor(done / blockRows);
  for (let b = 0; b < finished; b++) {
    const from = HEADER + b * blockRows * 20;
    view.setUint32(
      HEADER + rows * 20 + 4 * b,
      crc32(bytes.subarray(from, Math.min(HEADER + rows * 20, from + blockRows * 20))),
      true,
    );
  }
  const partialFrom = HEADER + finished * blockRows * 20;
  const partial =
    done === rows || done % blockRows === 0 ? 0 : crc32(bytes.subarray(partialFrom, HEADER + done * 20));
  view.setBigUint64(40, BigInt(done), true);
  view.setUint32(48, partial, true);
  view.setUint32(52, crc32(bytes.subarray(HEADER + rows * 20, HEADER + rows * 20 + 4 * finished)), true);
  view.setUint32(60, crc32(bytes.subarray(64, HEADER), crc32(bytes.subarray(0, 60))), true);
  return bytes;
}
