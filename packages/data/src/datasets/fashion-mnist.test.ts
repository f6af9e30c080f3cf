import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FashionMnist, fashionMnist, fashionMnistClasses } from './fashion-mnist.js';

/** An IDX file: magic 0x0000 08 <ndim>, sizes, bytes. */
function idx(dims: number[], data: Uint8Array): Uint8Array {
  const header = new DataView(new ArrayBuffer(4 + 4 * dims.length));
  header.setUint32(0, 0x800 | dims.length);
  for (const [i, d] of dims.entries()) header.setUint32(4 + 4 * i, d);
  const out = new Uint8Array(header.byteLength + data.length);
  out.set(new Uint8Array(header.buffer));
  out.set(data, header.byteLength);
  return out;
}

const dir = mkdtempSync(join(tmpdir(), 'compress-data-fmnist-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function writeTiny(
  root: string,
  split: 'train' | 't10k',
  n: number,
  gz: boolean,
  labels?: Uint8Array,
): Uint8Array {
  mkdirSync(root, { recursive: true });
  const pixels = new Uint8Array(n * 784).map((_, i) => (i * 5) % 256);
  const l = labels ?? Uint8Array.from({ length: n }, (_, i) => i % 10);
  const write = (name: string, bytes: Uint8Array) =>
    writeFileSync(join(root, gz ? `${name}.gz` : name), gz ? gzipSync(bytes) : bytes);
  write(`${split}-images-idx3-ubyte`, idx([n, 28, 28], pixels));
  write(`${split}-labels-idx1-ubyte`, idx([n], l));
  return pixels;
}

describe('fashionMnist (Debian dataset-fashion-mnist)', () => {
  let train: FashionMnist;
  let test: FashionMnist;
  beforeAll(async () => {
    [train, test] = await Promise.all([fashionMnist({ split: 'train' }), fashionMnist({ split: 'test' })]);
  });

  it('has 60000 train and 10000 test images of 28×28×1', () => {
    expect(train.length).toBe(60000);
    expect(test.length).toBe(10000);
    expect(train.imageShape).toEqual([28, 28, 1]);
    const s = train.get(59999);
    expect([s.image.height, s.image.width, s.image.channels, s.image.data.length]).toEqual([28, 28, 1, 784]);
  });

  it('has 6000 images of each class in train, in the official class order', () => {
    const counts = new Array(10).fill(0);
    for (const l of train.labels) counts[l]++;
    expect(counts).toEqual(new Array(10).fill(6000));
    // torchvision's class list, read from torchvision itself (the labels index it)
    const python = process.env.COMPRESS_PYTHON ?? '/usr/bin/python3';
    const torchvision = JSON.parse(
      execFileSync(
        python,
        ['-c', 'import json, torchvision; print(json.dumps(torchvision.datasets.FashionMNIST.classes))'],
        {
          encoding: 'utf8',
        },
      ),
    ) as string[];
    expect(train.classes).toEqual(torchvision);
    expect(test.classes).toEqual(torchvision);
  });

  it('returns the known labels and pixels in file order', () => {
    expect(Array.from({ length: 10 }, (_, i) => train.get(i).label)).toEqual([9, 0, 0, 3, 0, 2, 7, 2, 5, 5]);
    expect(Array.from(test.labels.subarray(0, 10))).toEqual([9, 2, 1, 1, 6, 1, 4, 6, 5, 7]);
    // Pixel sums of the first two training images (from the IDX file with Python).
    const sum = (i: number) => train.get(i).image.data.reduce((a, b) => a + b, 0);
    expect([sum(0), sum(1)]).toEqual([76247, 84598]);
    expect(train.get(3).index).toBe(3);
  });

  it('has a stable fingerprint and a spec that reopens it', () => {
    expect(train.fingerprint).toMatch(/^fashion-mnist\/train:60000:28x28x1:sha256-[0-9a-f]{16}$/);
    expect(test.fingerprint).not.toBe(train.fingerprint);
    expect(train.spec).toEqual({
      kind: 'fashion-mnist',
      split: 'train',
      root: '/usr/share/datasets/fashion-mnist',
    });
  });

  it('rejects indices out of range', () => {
    expect(() => test.get(10000)).toThrow(
      'fashion-mnist/test: index 10000 is out of range; expected an integer in 0…9999',
    );
    expect(() => test.get(1.5)).toThrow('fashion-mnist/test: index 1.5 is out of range');
  });
});

describe('fashionMnist files', () => {
  it('reads plain and gzipped IDX files, and torchvision’s FashionMNIST/raw layout', async () => {
    const plain = join(dir, 'plain');
    const pixels = writeTiny(plain, 't10k', 3, false);
    const a = await fashionMnist({ split: 'test', root: plain });
    expect(a.length).toBe(3);
    expect(a.get(2).image.data).toEqual(pixels.subarray(2 * 784, 3 * 784));
    const tv = join(dir, 'tv');
    writeTiny(join(tv, 'FashionMNIST', 'raw'), 't10k', 3, true);
    const b = await fashionMnist({ split: 'test', root: tv });
    expect(b.get(2).image.data).toEqual(a.get(2).image.data);
    expect(b.fingerprint).toBe(a.fingerprint); // content, not location
  });

  it('names the missing path and the Debian package', async () => {
    const root = join(dir, 'nowhere');
    await expect(fashionMnist({ root })).rejects.toThrow(
      `fashionMnist: cannot find train-images-idx3-ubyte or train-images-idx3-ubyte.gz in ${root}; install the Debian package dataset-fashion-mnist (apt-get install dataset-fashion-mnist), or pass { root } naming the directory that holds the Fashion-MNIST IDX files`,
    );
  });

  it('rejects a bad split', async () => {
    await expect(fashionMnist({ split: 'val' as never })).rejects.toThrow(
      `fashionMnist: split must be 'train' or 'test', got "val"`,
    );
  });

  it('says what is wrong with a damaged file', async () => {
    const root = join(dir, 'bad-magic');
    writeTiny(root, 'train', 2, false);
    writeFileSync(join(root, 'train-labels-idx1-ubyte'), idx([2, 1], new Uint8Array(2)));
    await expect(fashionMnist({ root })).rejects.toThrow(
      `${join(root, 'train-labels-idx1-ubyte')}: not an IDX file of unsigned bytes with 1 dimensions: magic 0x00000802, expected 0x00000801`,
    );

    const trunc = join(dir, 'truncated');
    writeTiny(trunc, 'train', 2, false);
    const full = idx([2, 28, 28], new Uint8Array(2 * 784));
    writeFileSync(join(trunc, 'train-images-idx3-ubyte'), full.subarray(0, full.length - 10));
    await expect(fashionMnist({ root: trunc })).rejects.toThrow(
      `${join(trunc, 'train-images-idx3-ubyte')}: the header promises 2×28×28 = 1568 bytes of data, found 1558 (truncated or not IDX)`,
    );

    const count = join(dir, 'count');
    writeTiny(count, 'train', 2, false);
    writeFileSync(join(count, 'train-labels-idx1-ubyte'), idx([3], new Uint8Array(3)));
    await expect(fashionMnist({ root: count })).rejects.toThrow(
      `${join(count, 'train-labels-idx1-ubyte')}: 3 labels for 2 images in ${join(count, 'train-images-idx3-ubyte')}; expected one label per image`,
    );

    const label = join(dir, 'label');
    writeTiny(label, 'train', 2, true, Uint8Array.from([3, 12]));
    await expect(fashionMnist({ root: label })).rejects.toThrow(
      `${join(label, 'train-labels-idx1-ubyte.gz')}: label 12 at index 1, expected 0…9`,
    );

    const gz = join(dir, 'gz');
    writeTiny(gz, 'train', 2, true);
    writeFileSync(join(gz, 'train-images-idx3-ubyte.gz'), Uint8Array.from([0x1f, 0x8b, 1, 2, 3]));
    await expect(fashionMnist({ root: gz })).rejects.toThrow(
      `${join(gz, 'train-images-idx3-ubyte.gz')}: not a valid gzip file`,
    );

    const size = join(dir, 'size');
    mkdirSync(size);
    writeFileSync(join(size, 'train-images-idx3-ubyte'), idx([1, 32, 32], new Uint8Array(1024)));
    writeFileSync(join(size, 'train-labels-idx1-ubyte'), idx([1], new Uint8Array(1)));
    await expect(fashionMnist({ root: size })).rejects.toThrow(
      `${join(size, 'train-images-idx3-ubyte')}: images are 32×32, expected 28×28 (Fashion-MNIST)`,
    );
  });

  it('exposes the class list as a constant', () => {
    expect(fashionMnistClasses).toHaveLength(10);
  });
});
