import { createHash } from 'node:crypto';
import { access } from 'node:fs/promises';
import { CompressError, type Dataset, type RawImage } from '@compress/core';
import type { ResizePlan } from '../transforms/transform.js';
import type { DatasetSpec } from './spec.js';

/** A dataset made by this package: it can be reopened from `spec` (in a worker thread, say). */
export interface SpecDataset extends Dataset {
  /** Plain, structured-clonable description; {@link openDataset} turns it back into the dataset. */
  readonly spec: DatasetSpec;
  /** Label of every sample, in index order. */
  readonly labels: Int32Array;
}

/**
 * A dataset that can decode, crop and resize in one native step (an ImageFolder of JPEG photos):
 * `plan` receives the stored image size and returns the crop and output size.
 */
export interface ResizingDataset extends Dataset {
  getResized(
    index: number,
    plan: (width: number, height: number) => ResizePlan,
  ): Promise<{ index: number; image: RawImage; label: number }>;
  /**
   * As `getResized`, but may write the result as floats (8-bit value ÷ 255) straight into a batch:
   * `slot(height, width, channels)` gives where, and `mirror()` (called once, after `plan`) whether
   * to write it flipped left–right. Returns `image: null` when it wrote the slot, else the image
   * for the caller to copy (mirrored as `mirrored` says).
   */
  getResizedInto?(
    index: number,
    plan: (width: number, height: number) => ResizePlan,
    mirror: () => boolean,
    slot: (height: number, width: number, channels: number) => BatchSlot,
  ): Promise<{ index: number; label: number; image: RawImage | null; mirrored: boolean }>;
}

/** Where a decoder writes one sample of a batch: `height × width × channels` floats of `dest` from `offset`. */
export interface BatchSlot {
  dest: Float32Array;
  offset: number;
}

export function isResizing(dataset: Dataset): dataset is ResizingDataset {
  return typeof (dataset as Partial<ResizingDataset>).getResized === 'function';
}

/**
 * `<name>:<length>:<H>x<W>x<C | var>:sha256-<16 hex>` over the given parts (labels, pixels or file
 * list). Stable across machines and paths; changes when content or order changes.
 */
export function fingerprintOf(
  name: string,
  length: number,
  shape: readonly [number, number, number] | null,
  parts: readonly (Uint8Array | string)[],
): string {
  const hash = createHash('sha256');
  for (const p of parts) hash.update(p);
  const s = shape ? shape.join('x') : 'var';
  return `${name}:${length}:${s}:sha256-${hash.digest('hex').slice(0, 16)}`;
}

export function checkIndex(name: string, length: number, index: number): void {
  if (!Number.isInteger(index) || index < 0 || index >= length) {
    throw new CompressError(
      'INVALID_ARGUMENT',
      `${name}: index ${index} is out of range; expected an integer in 0…${length - 1}`,
      { input: 'index' },
    );
  }
}

export async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

/** A Uint8Array that owns its memory (Node's small Buffers are views into a shared pool). */
export function ownBytes(buf: Uint8Array): Uint8Array {
  return new Uint8Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
}
