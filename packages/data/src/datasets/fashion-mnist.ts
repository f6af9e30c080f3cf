import { join } from 'node:path';
import { CompressError, type RawImage, type Sample } from '@compress/core';
import { checkIndex, exists, fingerprintOf, type SpecDataset } from './common.js';
import { readIdx } from './idx.js';

/** Fashion-MNIST's classes in label order (Zalando's README). */
export const fashionMnistClasses: readonly string[] = [
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
];

export interface FashionMnistOptions {
  /** `train` (60 000 images) or `test` (10 000). @default 'train' */
  split?: 'train' | 'test';
  /**
   * Directory holding the four IDX files (`train-images-idx3-ubyte[.gz]`, …), gzipped or not.
   * torchvision's layout (`<root>/FashionMNIST/raw`) is found too.
   * @default '/usr/share/datasets/fashion-mnist' — where Debian's `dataset-fashion-mnist` puts them.
   */
  root?: string;
}

export const defaultFashionMnistOptions: Required<FashionMnistOptions> = {
  split: 'train',
  root: '/usr/share/datasets/fashion-mnist',
};

/**
 * Fashion-MNIST (Xiao et al. 2017): 28×28 grey images of 10 clothing classes, read from the IDX
 * files into memory. `get(i)` returns image `i` of the file (1 channel, a view: do not modify).
 */
export class FashionMnist implements SpecDataset {
  readonly name: string;
  readonly length: number;
  readonly classes = fashionMnistClasses;
  readonly imageShape = [28, 28, 1] as const;
  readonly spec: { kind: 'fashion-mnist'; split: 'train' | 'test'; root: string };
  readonly labels: Int32Array;
  private readonly images: Uint8Array;
  private readonly rawLabels: Uint8Array;
  private fp: string | undefined;

  private constructor(split: 'train' | 'test', root: string, images: Uint8Array, labels: Uint8Array) {
    this.name = `fashion-mnist/${split}`;
    this.length = labels.length;
    this.spec = { kind: 'fashion-mnist', split, root };
    this.images = images;
    this.rawLabels = labels;
    this.labels = Int32Array.from(labels);
  }

  static async open(options: FashionMnistOptions = {}): Promise<FashionMnist> {
    const { split, root } = { ...defaultFashionMnistOptions, ...options };
    if (split !== 'train' && split !== 'test') {
      throw new CompressError(
        'INVALID_ARGUMENT',
        `fashionMnist: split must be 'train' or 'test', got ${JSON.stringify(split)}`,
        {
          input: 'split',
        },
      );
    }
    const prefix = split === 'train' ? 'train' : 't10k';
    const imagesPath = await findIdx(root, `${prefix}-images-idx3-ubyte`);
    const labelsPath = await findIdx(root, `${prefix}-labels-idx1-ubyte`);
    const [images, labels] = await Promise.all([readIdx(imagesPath, 3), readIdx(labelsPath, 1)]);
    const [n, h, w] = images.dims as [number, number, number];
    if (h !== 28 || w !== 28) {
      throw new CompressError(
        'CORRUPT_INPUT',
        `${imagesPath}: images are ${h}×${w}, expected 28×28 (Fashion-MNIST)`,
        {
          input: imagesPath,
        },
      );
    }
    if (labels.dims[0] !== n) {
      throw new CompressError(
        'CORRUPT_INPUT',
        `${labelsPath}: ${labels.dims[0]} labels for ${n} images in ${imagesPath}; expected one label per image`,
        { input: labelsPath },
      );
    }
    const bad = labels.data.findIndex((l) => l > 9);
    if (bad >= 0) {
      throw new CompressError(
        'CORRUPT_INPUT',
        `${labelsPath}: label ${labels.data[bad]} at index ${bad}, expected 0…9`,
        {
          input: labelsPath,
        },
      );
    }
    return new FashionMnist(split, root, images.data, labels.data);
  }

  /** Digest of the labels and pixels (computed on first use). */
  get fingerprint(): string {
    this.fp ??= fingerprintOf(this.name, this.length, this.imageShape, [this.rawLabels, this.images]);
    return this.fp;
  }

  get(index: number): Sample {
    checkIndex(this.name, this.length, index);
    const image: RawImage = {
      data: this.images.subarray(index * 784, (index + 1) * 784),
      height: 28,
      width: 28,
      channels: 1,
    };
    return { index, image, label: this.rawLabels[index]! };
  }
}

async function findIdx(root: string, base: string): Promise<string> {
  for (const dir of [root, join(root, 'FashionMNIST', 'raw')]) {
    for (const name of [base, `${base}.gz`]) {
      const path = join(dir, name);
      if (await exists(path)) return path;
    }
  }
  throw new CompressError(
    'NOT_FOUND',
    `fashionMnist: cannot find ${base} or ${base}.gz in ${root}; install the Debian package dataset-fashion-mnist (apt-get install dataset-fashion-mnist), or pass { root } naming the directory that holds the Fashion-MNIST IDX files`,
    { input: root },
  );
}

/** Opens Fashion-MNIST (see {@link FashionMnistOptions}). */
export function fashionMnist(options: FashionMnistOptions = {}): Promise<FashionMnist> {
  return FashionMnist.open(options);
}
