import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CompressError } from './errors.js';
import { assertFinite, featureMatrix, l2NormalizeRows } from './features.js';
import { writeFileAtomic } from './fs.js';

describe('featureMatrix', () => {
  it('checks that rows × dim matches the data', () => {
    expect(featureMatrix(2, 3).data.length).toBe(6);
    expect(() => featureMatrix(2, 3, new Float32Array(5), 'teacher output')).toThrow(
      'teacher output: expected 2×3 = 6 values, found 5',
    );
  });

  it('names the first non-finite row', () => {
    const m = featureMatrix(3, 2, new Float32Array([0, 1, 2, Number.NaN, 4, 5]));
    let error: unknown;
    try {
      assertFinite(m, 'features', (r) => `dataset index ${100 + r}`);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(CompressError);
    expect((error as CompressError).code).toBe('NON_FINITE');
    expect((error as Error).message).toMatch(/NaN at dataset index 101, column 1/);
  });

  it('L2-normalises rows', () => {
    const m = l2NormalizeRows(featureMatrix(2, 2, new Float32Array([3, 4, 0, 0])));
    expect(Array.from(m.data)).toEqual([0.6000000238418579, 0.800000011920929, 0, 0]);
  });
});

describe('writeFileAtomic', () => {
  it('replaces a file whole and leaves no temporary files', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'atomic-'));
    const file = join(dir, 'sub', 'a.bin');
    await writeFileAtomic(file, 'first');
    await writeFileAtomic(file, [new Uint8Array([115]), new Uint8Array([101])]);
    expect(await readFile(file, 'utf8')).toBe('se');
    expect(await readdir(join(dir, 'sub'))).toEqual(['a.bin']);
  });

  it('keeps the previous file when the target cannot be written', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'atomic-'));
    const blocker = join(dir, 'file');
    await writeFile(blocker, 'x');
    await expect(writeFileAtomic(join(blocker, 'child.json'), '{}')).rejects.toThrow(
      /cannot create directory .*file/,
    );
  });
});
