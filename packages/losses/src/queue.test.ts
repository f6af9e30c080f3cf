import { CompressError, Rng } from '@compress/core';
import { describe, expect, it } from 'vitest';
import { MemoryQueue } from './queue.js';

const rows = (b: number, d: number, start = 1) => Float32Array.from({ length: b * d }, (_, i) => start + i);

describe('MemoryQueue', () => {
  it('starts uniform in [-stdv, stdv], stdv = 1/sqrt(D/3), reproducibly from the seed', () => {
    const q = MemoryQueue.create({ size: 500, dim: 12, seed: 7 });
    const stdv = 1 / Math.sqrt(12 / 3);
    const v = q.values();
    let min = Infinity;
    let max = -Infinity;
    for (const x of v) {
      min = Math.min(min, x);
      max = Math.max(max, x);
    }
    expect(min).toBeGreaterThanOrEqual(-stdv);
    expect(max).toBeLessThanOrEqual(stdv);
    expect(min).toBeLessThan(-0.95 * stdv);
    expect(max).toBeGreaterThan(0.95 * stdv);
    expect(q.pointer).toBe(0);
    expect(MemoryQueue.create({ size: 500, dim: 12, seed: 7 }).values()).toEqual(v);
    expect(MemoryQueue.create({ size: 500, dim: 12, seed: 8 }).values()).not.toEqual(v);
    expect(MemoryQueue.create({ size: 500, dim: 12, rng: new Rng(7) }).values()).toEqual(v);
  });

  it('takes given values and pointer (copied)', () => {
    const values = rows(3, 2);
    const q = MemoryQueue.create({ size: 3, dim: 2, values, pointer: 2 });
    values[0] = 99;
    expect(Array.from(q.values())).toEqual([1, 2, 3, 4, 5, 6]);
    expect(q.pointer).toBe(2);
    expect(Array.from(q.row(1))).toEqual([3, 4]);
  });

  it('writes B rows at the pointer and wraps around when K is not a multiple of B', () => {
    const q = MemoryQueue.create({ size: 5, dim: 2, values: new Float32Array(10) });
    expect(Array.from(q.enqueue(rows(2, 2, 1)))).toEqual([0, 1]);
    expect(q.pointer).toBe(2);
    expect(Array.from(q.enqueue(rows(2, 2, 10)))).toEqual([2, 3]);
    // third batch: rows 4, 0 (wrap); the oldest row (0) is overwritten first
    expect(Array.from(q.enqueue(rows(2, 2, 20)))).toEqual([4, 0]);
    expect(q.pointer).toBe(1);
    expect(Array.from(q.values())).toEqual([22, 23, 3, 4, 10, 11, 12, 13, 20, 21]);
    // a batch as large as the queue fills it exactly
    expect(Array.from(q.enqueue(rows(5, 2, 100)))).toEqual([1, 2, 3, 4, 0]);
    expect(q.pointer).toBe(1);
    expect(Array.from(q.row(1))).toEqual([100, 101]);
    expect(Array.from(q.row(0))).toEqual([108, 109]);
  });

  it('refuses wrong shapes, oversized batches and non-finite rows without changing anything', () => {
    const q = MemoryQueue.create({ size: 4, dim: 3, seed: 1 });
    const before = q.values().slice();
    expect(() => q.enqueue(new Float32Array(4))).toThrow(/expected B·3 floats .* found 4/);
    expect(() => q.enqueue(new Float32Array(15))).toThrow(
      /a batch of 5 rows is larger than the queue \(K = 4\)/,
    );
    const bad = rows(2, 3);
    bad[4] = Number.NaN;
    expect(() => q.enqueue(bad)).toThrow(
      /row 1 has NaN at column 1; expected finite numbers \(the queue was not changed\)/,
    );
    bad[4] = Number.POSITIVE_INFINITY;
    expect(() => q.enqueue(bad)).toThrow(CompressError);
    expect(q.values()).toEqual(before);
    expect(q.pointer).toBe(0);
    expect(() => MemoryQueue.create({ size: 0, dim: 3 })).toThrow(/K must be a positive integer, got 0/);
    expect(() => MemoryQueue.create({ size: 2, dim: 3, values: new Float32Array(5) })).toThrow(
      /expected K·D = 2·3 = 6 floats, found 5/,
    );
    expect(() => MemoryQueue.create({ size: 2, dim: 3, pointer: 2 })).toThrow(
      /pointer must be an integer in \[0, 2\), got 2/,
    );
  });

  it('round-trips exactly through state, JSON and bytes', () => {
    const q = MemoryQueue.create({ size: 7, dim: 5, seed: 3 });
    q.enqueue(rows(3, 5, 0.125));
    const s = q.state();
    expect(s).toMatchObject({ kind: 'compress/memory-queue', version: 1, size: 7, dim: 5, pointer: 3 });
    for (const r of [
      MemoryQueue.restore(s),
      MemoryQueue.restore(JSON.parse(JSON.stringify(q))),
      MemoryQueue.deserialize(q.serialize()),
    ]) {
      expect(r.values()).toEqual(q.values());
      expect(r.pointer).toBe(3);
      // and continues identically
      expect(Array.from(r.enqueue(rows(6, 5)))).toEqual([3, 4, 5, 6, 0, 1]);
    }
    // the state is a copy
    s.values[0] = 42;
    expect(q.values()[0]).not.toBe(42);
    const other = MemoryQueue.create({ size: 7, dim: 5, seed: 9 });
    other.load(q.state());
    expect(other.values()).toEqual(q.values());
    expect(other.pointer).toBe(3);
  });

  it('refuses states of something else, another version, another shape or corrupt bytes', () => {
    const q = MemoryQueue.create({ size: 3, dim: 2, seed: 3 });
    const s = q.state();
    expect(() => MemoryQueue.restore({ ...s, kind: 'other' } as never)).toThrow(
      /expected kind 'compress\/memory-queue', found "other"/,
    );
    expect(() => MemoryQueue.restore({ ...s, version: 2 } as never)).toThrow(
      /version 2 is not supported \(expected 1\)/,
    );
    expect(() => MemoryQueue.create({ size: 4, dim: 2 }).load(s)).toThrow(/state is 3×2, this queue is 4×2/);
    const bytes = q.serialize();
    expect(() => MemoryQueue.deserialize(bytes.subarray(0, bytes.length - 4))).toThrow(
      /expected 24 bytes of values after the header, found 20/,
    );
    const wrong = bytes.slice();
    wrong[0] = 0;
    expect(() => MemoryQueue.deserialize(wrong)).toThrow(/wrong magic number/);
  });

  it('says when it was disposed', () => {
    const q = MemoryQueue.create({ size: 3, dim: 2 });
    q.dispose();
    expect(() => q.values()).toThrow(/was disposed/);
  });
});
