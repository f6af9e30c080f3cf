import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cifar10, cifar10Classes } from './cifar10.js';

const dir = mkdtempSync(join(tmpdir(), 'compress-data-cifar-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** CIFAR-10 binary records: label byte, then the R, G and B 32×32 planes. */
function records(labels: number[], seed: number): Uint8Array {
  const out = new Uint8Array(labels.length * 3073);
  labels.forEach((l, r) => {
    out[r * 3073] = l;
    for (let i = 0; i < 3072; i++) out[r * 3073 + 1 + i] = (i * 7 + r * 31 + seed) % 256;
  });
  return out;
}

function writeSet(root: string, perBatch = 2): void {
  mkdirSync(root, { recursive: true });
  for (let b = 1; b <= 5; b++)
    writeFileSync(join(root, `data_batch_${b}.bin`), records([b, (b + 3) % 10].slice(0, perBatch), b));
  writeFileSync(join(root, 'test_batch.bin'), records([7, 0, 9], 99));
}

describe('cifar10', () => {
  const root = join(dir, 'plain');
  writeSet(root);

  it('reads the five train batches in order and converts planes to HWC', async () => {
    const train = await cifar10({ split: 'train', root });
    expect(train.length).toBe(10);
    expect(train.imageShape).toEqual([32, 32, 3]);
    expect(Array.from(train.labels)).toEqual([1, 4, 2, 5, 3, 6, 4, 7, 5, 8]);
    const s = train.get(3); // batch 2, record 1
    expect(s.label).toBe(5);
    const p = (i: number) => (i * 7 + 31 + 2) % 256;
    // Pixel (y 1, x 2) = plane offset 34: R, G, B at 34, 1024 + 34, 2048 + 34.
    const o = (1 * 32 + 2) * 3;
    expect(Array.from(s.image.data.subarray(o, o + 3))).toEqual([p(34), p(1024 + 34), p(2048 + 34)]);
    expect(train.classes).toEqual(cifar10Classes);
    expect(train.fingerprint).toMatch(/^cifar10\/train:10:32x32x3:sha256-[0-9a-f]{16}$/);
    expect(train.spec).toEqual({ kind: 'cifar10', split: 'train', root });
  });

  it('reads the test batch, the cifar-10-batches-bin folder and batches.meta.txt', async () => {
    const outer = join(dir, 'outer');
    writeSet(join(outer, 'cifar-10-batches-bin'));
    const names = cifar10Classes.map((c) => c.toUpperCase());
    writeFileSync(join(outer, 'cifar-10-batches-bin', 'batches.meta.txt'), `${names.join('\n')}\n\n`);
    const test = await cifar10({ split: 'test', root: outer });
    expect(Array.from(test.labels)).toEqual([7, 0, 9]);
    expect(test.classes).toEqual(names);
    expect(test.fingerprint).toBe((await cifar10({ split: 'test', root })).fingerprint);
  });

  it('needs a root and names the missing file', async () => {
    await expect(cifar10({ split: 'train' })).rejects.toThrow(
      'cifar10: `root` is required: the directory holding data_batch_1.bin … data_batch_5.bin and test_batch.bin',
    );
    const partial = join(dir, 'partial');
    writeSet(partial);
    rmSync(join(partial, 'data_batch_4.bin'));
    await expect(cifar10({ root: partial })).rejects.toThrow(
      `cifar10: cannot find data_batch_4.bin in ${partial} (nor in ${join(partial, 'cifar-10-batches-bin')}); the train split needs data_batch_1.bin, data_batch_2.bin, data_batch_3.bin, data_batch_4.bin, data_batch_5.bin from the CIFAR-10 binary version`,
    );
    await expect(cifar10({ split: 'valid' as never, root })).rejects.toThrow(
      `cifar10: split must be 'train' or 'test', got "valid"`,
    );
  });

  it('rejects truncated files and impossible labels', async () => {
    const bad = join(dir, 'bad');
    writeSet(bad);
    writeFileSync(join(bad, 'test_batch.bin'), records([1, 2], 0).subarray(0, 5000));
    await expect(cifar10({ split: 'test', root: bad })).rejects.toThrow(
      `${join(bad, 'test_batch.bin')}: 5000 bytes is not a whole number of CIFAR-10 records (3073 bytes: 1 label + 3072 pixels); truncated or not the binary version`,
    );
    writeFileSync(join(bad, 'test_batch.bin'), records([1, 42], 0));
    await expect(cifar10({ split: 'test', root: bad })).rejects.toThrow(
      `${join(bad, 'test_batch.bin')}: record 1 has label 42, expected 0…9 (is this CIFAR-100 or the Python version?)`,
    );
  });
});
