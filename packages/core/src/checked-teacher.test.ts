import { describe, expect, it } from 'vitest';
import { checkedTeacher } from './checked-teacher.js';
import { randomImageBatch } from './testing.js';
import type { FeatureMatrix, ImageBatch, Teacher } from './types.js';

function teacher(embed: (b: ImageBatch) => Promise<FeatureMatrix>, dim = 4): Teacher {
  return { dim, embed, dispose: () => {} };
}
const batch = randomImageBatch(3, [4, 4, 1], 1, 10);
const ones = (rows: number, dim: number): FeatureMatrix => ({
  rows,
  dim,
  data: new Float32Array(rows * dim).fill(1),
});

describe('checkedTeacher', () => {
  it('passes a well-formed answer through unchanged', async () => {
    const answer = ones(3, 4);
    const t = checkedTeacher(
      teacher(async () => answer),
      'mine.mjs',
    );
    expect(t.dim).toBe(4);
    expect(await t.embed(batch)).toBe(answer);
  });

  it('wraps a throwing teacher into an EXTERNAL error naming it and the batch', async () => {
    const t = checkedTeacher(
      teacher(async () => {
        throw new Error('remote service down');
      }),
      'mine.mjs',
    );
    const err = await t.embed(batch).catch((e) => e);
    expect(err.code).toBe('EXTERNAL');
    expect(err.message).toBe(
      'teacher mine.mjs failed on batch 1 (3 images from dataset index 10): remote service down',
    );
  });

  it('refuses a wrong row count or dim, and NaN naming the dataset index', async () => {
    const wrongDim = checkedTeacher(
      teacher(async () => ones(3, 2)),
      'mine.mjs',
    );
    await expect(wrongDim.embed(batch)).rejects.toThrow(
      'teacher mine.mjs on batch 1 (3 images from dataset index 10): expected 3×4 features (batch size × its dim), found 3×2 with 6 values',
    );
    const wrongRows = checkedTeacher(
      teacher(async () => ones(2, 4)),
      'mine.mjs',
    );
    await expect(wrongRows.embed(batch)).rejects.toMatchObject({ code: 'SHAPE_MISMATCH' });
    let calls = 0;
    const nan = checkedTeacher(
      teacher(async () => {
        const m = ones(3, 4);
        if (++calls === 2) m.data[6] = Number.NaN;
        return m;
      }),
      'mine.mjs',
    );
    await nan.embed(batch);
    const err = await nan.embed(batch).catch((e) => e);
    expect(err.code).toBe('NON_FINITE');
    expect(err.message).toContain('teacher mine.mjs on batch 2');
    expect(err.message).toContain('found NaN at row 1 (dataset index 11), column 2');
  });

  it('refuses what is not a teacher at once', () => {
    expect(() => checkedTeacher({ dim: 0, embed: async () => ones(1, 1), dispose() {} }, 'x.mjs')).toThrow(
      'teacher x.mjs: dim must be a positive integer, found 0',
    );
    expect(() => checkedTeacher(null as unknown as Teacher, 'x.mjs')).toThrow(/found null/);
  });
});

describe('checkedTeacher with a code of its own', () => {
  it('reports every broken contract with that code', async () => {
    const nan = checkedTeacher(
      teacher(async () => ({ rows: 3, dim: 4, data: new Float32Array(12).fill(Number.NaN) })),
      'feats.fcache',
      { code: 'CORRUPT_INPUT' },
    );
    await expect(nan.embed(batch)).rejects.toMatchObject({ code: 'CORRUPT_INPUT' });
    const short = checkedTeacher(
      teacher(async () => ones(3, 3)),
      'mine.mjs',
      { code: 'EXTERNAL' },
    );
    await expect(short.embed(batch)).rejects.toMatchObject({ code: 'EXTERNAL' });
  });
});

describe('checkedTeacher zeroRows', () => {
  const zeroSecond = teacher(async (b) => {
    const out = ones(b.shape[0], 4);
    out.data.fill(0, 4, 8);
    return out;
  });
  it("allows an all-zero row by default and refuses it with 'refuse', naming the row and the image", async () => {
    await expect(checkedTeacher(zeroSecond, 't.mjs').embed(batch)).resolves.toMatchObject({ rows: 3 });
    await expect(checkedTeacher(zeroSecond, 't.mjs', { zeroRows: 'refuse' }).embed(batch)).rejects.toThrow(
      /teacher t\.mjs on batch 1 \(3 images from dataset index 10\): row 1 \(dataset index 11\) is all zeros/,
    );
  });
});

describe('checkedTeacher of a checked teacher', () => {
  it('checks the inner teacher once, with the new options over the old', async () => {
    const inner = teacher(async (b) => ones(b.shape[0], 4));
    const first = checkedTeacher(inner, 'mine.mjs', { code: 'EXTERNAL' });
    const again = checkedTeacher(first, 'mine.mjs', { zeroRows: 'refuse' });
    expect(again.inner).toBe(inner);
    expect([again.code, again.zeroRows]).toEqual(['EXTERNAL', 'refuse']);
    await expect(again.embed(batch)).resolves.toMatchObject({ rows: 3, dim: 4 });
  });
});
