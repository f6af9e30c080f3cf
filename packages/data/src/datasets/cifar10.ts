import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CompressError, ioError, type Sample } from '@compress/core';
import { checkIndex, exists, fingerprintOf, type SpecDataset } from './common.js';

/** CIFAR-10's classes in label order (`batches.meta.txt`). */
export const cifar10Classes: readonly string[] = [
  'airplane',
  'automobile',
  'bird',
  'cat',
  'deer',
  'dog',
  'frog',
  'horse',
  'ship',
  'truck',
];

const RECORD = 1 + 3072;

export interface Cifar10Options {
  /** `train` (`data_batch_1…5.bin`, 50 000 images) or `test` (`test_batch.bin`, 10 000). @default 'train' */
  split?: 'train' | 'test';
  /**
   * Directory of the binary version (`cifar-10-binary.tar.gz` unpacked: the `.bin` files, or the
   * `cifar-10-batches-bin` folder holding them). Required: no system package ships CIFAR-10.
   */
  root?: string;
}

/**
 * CIFAR-10 (Krizhevsky 2009), binary version: records of one label byte then 3072 pixel bytes,
 * the red, green and blue 32×32 planes in turn. `get(i)` returns an RGB HWC image.
 */
export class Cifar10 implements SpecDataset {
  readonly name: string;
  readonly length: number;
  readonly classes: readonly string[];
  readonly imageShape = [32, 32, 3] as const;
  readonly spec: { kind: 'cifar10'; split: 'train' | 'test'; root: string };
  readonly labels: Int32Array;
  private readonly records: Uint8Array;
  private fp: string | undefined;

  private constructor(
    split: 'train' | 'test',
    root: string,
    records: Uint8Array,
    classes: readonly string[],
  ) {
    this.name = `cifar10/${split}`;
    this.length = records.length / RECORD;
    this.spec = { kind: 'cifar10', split, root };
    this.records = records;
    this.classes = classes;
    this.labels = new Int32Array(this.length);
    for (let i = 0; i < this.length; i++) this.labels[i] = records[i * RECORD]!;
  }

  static async open(options: Cifar10Options = {}): Promise<Cifar10> {
    const split = options.split ?? 'train';
    const root = options.root;
    if (split !== 'train' && split !== 'test') {
      throw new CompressError(
        'INVALID_ARGUMENT',
        `cifar10: split must be 'train' or 'test', got ${JSON.stringify(split)}`,
        {
          input: 'split',
        },
      );
    }
    if (typeof root !== 'string' || root === '') {
      throw new CompressError(
        'INVALID_ARGUMENT',
        'cifar10: `root` is required: the directory holding data_batch_1.bin … data_batch_5.bin and test_batch.bin (https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz, unpacked)',
        { input: 'root' },
      );
    }
    const names = split === 'train' ? [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`) : ['test_batch.bin'];
    const dir = (await exists(join(root, names[0]!))) ? root : join(root, 'cifar-10-batches-bin');
    const parts: Uint8Array[] = [];
    for (const name of names) {
      const path = join(dir, name);
      if (!(await exists(path))) {
        throw new CompressError(
          'NOT_FOUND',
          `cifar10: cannot find ${name} in ${root} (nor in ${join(root, 'cifar-10-batches-bin')}); the ${split} split needs ${names.join(', ')} from the CIFAR-10 binary version`,
          { input: path },
        );
      }
      let bytes: Uint8Array;
      try {
        bytes = await readFile(path);
      } catch (error) {
        throw ioError(error, path, 'read');
      }
      if (bytes.length === 0 || bytes.length % RECORD !== 0) {
        throw new CompressError(
          'CORRUPT_INPUT',
          `${path}: ${bytes.length} bytes is not a whole number of CIFAR-10 records (${RECORD} bytes: 1 label + 3072 pixels); truncated or not the binary version`,
          { input: path },
        );
      }
      for (let r = 0; r < bytes.length; r += RECORD) {
        if (bytes[r]! > 9) {
          throw new CompressError(
            'CORRUPT_INPUT',
            `${path}: record ${r / RECORD} has label ${bytes[r]}, expected 0…9 (is this CIFAR-100 or the Python version?)`,
            { input: path },
          );
        }
      }
      parts.push(bytes);
    }
    const records = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let o = 0;
    for (const p of parts) {
      records.set(p, o);
      o += p.length;
    }
    return new Cifar10(split, root, records, await readClasses(dir));
  }

  /** Digest of the records (labels and pixels, computed on first use). */
  get fingerprint(): string {
    this.fp ??= fingerprintOf(this.name, this.length, this.imageShape, [this.records]);
    return this.fp;
  }

  get(index: number): Sample {
    checkIndex(this.name, this.length, index);
    const o = index * RECORD + 1;
    const data = new Uint8Array(3072);
    for (let p = 0; p < 1024; p++) {
      data[p * 3] = this.records[o + p]!;
      data[p * 3 + 1] = this.records[o + 1024 + p]!;
      data[p * 3 + 2] = this.records[o + 2048 + p]!;
    }
    return { index, image: { data, height: 32, width: 32, channels: 3 }, label: this.labels[index]! };
  }
}

async function readClasses(dir: string): Promise<readonly string[]> {
  const path = join(dir, 'batches.meta.txt');
  if (!(await exists(path))) return cifar10Classes;
  const names = (await readFile(path, 'utf8'))
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
  return names.length === 10 ? names : cifar10Classes;
}

/** Opens CIFAR-10 (see {@link Cifar10Options}). */
export function cifar10(options: Cifar10Options): Promise<Cifar10> {
  return Cifar10.open(options);
}
