import { CompressError, crc32, decodeContainer, encodeContainerBytes, Rng } from '@compress/core';
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
      /^serialised memory queue: the file ends within section 'values': the file is truncated or damaged/,
    );
    const wrong = bytes.slice();
    wrong[0] = 0;
    expect(() => MemoryQueue.deserialize(wrong)).toThrow(/wrong magic number/);
  });

  describe('the binary form (version 3, the compress container)', () => {
    const q = MemoryQueue.create({ size: 50, dim: 16, seed: 11, pointer: 7 });
    const good = q.serialize();
    const file = '/runs/a/queue.bin';
    const fail = (bytes: Uint8Array): CompressError => {
      try {
        MemoryQueue.deserialize(bytes, undefined, file);
      } catch (error) {
        expect(error).toBeInstanceOf(CompressError);
        return error as CompressError;
      }
      throw new Error('the bytes were accepted');
    };

    it('writes a container with the values in one aligned, checksummed section', () => {
      expect(new TextDecoder().decode(good.subarray(0, 8))).toBe('COMPRESS');
      const { header, section } = decodeContainer(good, file, {
        kind: 'compress/memory-queue',
        versions: [3],
        what: 'queue',
      });
      expect(header).toMatchObject({ version: 3, size: 50, dim: 16, pointer: 7 });
      expect(new Float32Array(section('values')!.slice().buffer)).toEqual(q.values());
      const back = MemoryQueue.deserialize(good, undefined, file);
      expect(back.values()).toEqual(q.values());
      expect(back.pointer).toBe(7);
      expect(back.state().version).toBe(1);
      expect(q.serialize()).toEqual(good);
    });

    it('names the damaged section, and refuses truncation and other kinds', () => {
      const values = good.slice();
      values[good.length - 3]! ^= 0x10;
      const e = fail(values);
      expect(e.code).toBe('CORRUPT_INPUT');
      expect(e.message).toMatch(
        /^\/runs\/a\/queue\.bin: section 'values' checksum mismatch \(stored 0x[0-9a-f]{8}, computed 0x[0-9a-f]{8}\): the file is damaged; /,
      );
      const header = good.slice();
      header[70]! ^= 0x10;
      expect(fail(header).message).toContain(`${file}: section 'header' checksum mismatch`);
      expect(fail(good.subarray(0, good.length - 8)).message).toContain(
        "the file ends within section 'values'",
      );
      const other = encodeContainerBytes('compress-trainer-state', 3, {}, []);
      expect(fail(other).code).toBe('MISMATCH');
    });
  });

  describe('the binary form of version 2 ("CMSQ" with checksums), still read', () => {
    const q = MemoryQueue.create({ size: 50, dim: 16, seed: 11, pointer: 7 });
    const good = serializeV2(q);
    const dv = new DataView(good.buffer);
    const headerLength = dv.getUint32(4, true);
    const headEnd = (8 + headerLength + 3) & ~3;
    const dataStart = headEnd + 8;
    const file = '/runs/a/queue.bin';

    /** The error that deserialising `good` changed by `change` gives. */
    function damaged(change: (bytes: Uint8Array) => Uint8Array | undefined, source?: string): CompressError {
      const bytes = good.slice();
      try {
        MemoryQueue.deserialize(change(bytes) ?? bytes, undefined, source);
      } catch (error) {
        expect(error).toBeInstanceOf(CompressError);
        expect((error as CompressError).code).toBe('CORRUPT_INPUT');
        return error as CompressError;
      }
      throw new Error('the damaged bytes were accepted');
    }

    it('reads version 2 with the CRC-32 of the values and of the header', () => {
      expect(JSON.parse(new TextDecoder().decode(good.subarray(8, 8 + headerLength)))).toEqual({
        kind: 'compress/memory-queue',
        version: 2,
        size: 50,
        dim: 16,
        pointer: 7,
      });
      expect(good.length).toBe(dataStart + 50 * 16 * 4);
      expect(dv.getUint32(headEnd, true)).toBe(crc32(good.subarray(dataStart)));
      expect(dv.getUint32(headEnd + 4, true)).toBe(crc32(good.subarray(0, headEnd + 4)));
      const back = MemoryQueue.deserialize(good, undefined, file);
      expect(back.values()).toEqual(q.values());
      expect(back.pointer).toBe(7);
      // the state keeps its own version
      expect(back.state().version).toBe(1);
    });

    it('refuses flipped bytes in the header, naming the file and the section', () => {
      const at = headerLength + 8 - 2; // the pointer's digit: 7 → 3, still valid JSON
      expect(String.fromCharCode(good[at]!)).toBe('7');
      let e = damaged((b) => {
        b[at] = '3'.charCodeAt(0);
        return undefined;
      }, file);
      expect(e.message).toMatch(
        /^\/runs\/a\/queue\.bin: section 'header' checksum mismatch \(stored 0x[0-9a-f]{8}, computed 0x[0-9a-f]{8}\): the file is damaged; /,
      );
      expect(e.input).toBe(file);
      e = damaged((b) => {
        for (let i = 9; i < 30; i += 4) b[i]! ^= 0x33;
        return undefined;
      }, file);
      expect(e.message).toContain(`${file}: section 'header' checksum mismatch`);
      for (const at of [headEnd, headEnd + 5]) {
        e = damaged((b) => {
          b[at]! ^= 0x08;
          return undefined;
        }, file);
        expect(e.message).toContain(`${file}: section 'header' checksum mismatch`);
      }
      // without a source the message names the bytes as what they are
      e = damaged((b) => {
        b[at] = '3'.charCodeAt(0);
        return undefined;
      });
      expect(e.message).toMatch(/^serialised memory queue: section 'header' checksum mismatch/);
    });

    it('refuses flipped bytes in the values, naming the file and the section', () => {
      for (const at of [dataStart, dataStart + 1234, good.length - 1]) {
        const e = damaged((b) => {
          b[at]! ^= 0x40;
          return undefined;
        }, file);
        expect(e.message).toMatch(
          new RegExp(
            `^/runs/a/queue\\.bin: section 'values' checksum mismatch \\(stored 0x${dv.getUint32(headEnd, true).toString(16).padStart(8, '0')}, computed 0x[0-9a-f]{8}\\)`,
          ),
        );
      }
    });

    it('refuses truncated bytes', () => {
      let e = damaged((b) => b.subarray(0, b.length - 64), file);
      expect(e.message).toBe(
        `${file}: not a serialised memory queue: expected 3200 bytes of values after the header, found 3136`,
      );
      e = damaged((b) => b.subarray(0, headEnd + 6), file);
      expect(e.message).toContain('truncated header');
      e = damaged((b) => b.subarray(0, 20), file);
      expect(e.message).toContain('truncated header');
    });

    it('still reads version 1 (no checksums), unverified', () => {
      // the version-1 layout: magic, u32 header length, JSON header, zero padding to 4 bytes, values
      const json = new TextEncoder().encode(
        JSON.stringify({ kind: 'compress/memory-queue', version: 1, size: 50, dim: 16, pointer: 7 }),
      );
      const start = (8 + json.length + 3) & ~3;
      const old = new Uint8Array(start + 50 * 16 * 4);
      const view = new DataView(old.buffer);
      view.setUint32(0, 0x5153_4d43, true);
      view.setUint32(4, json.length, true);
      old.set(json, 8);
      old.set(good.subarray(dataStart), start);
      expect(new TextDecoder().decode(old.subarray(0, 4))).toBe('CMSQ');
      const back = MemoryQueue.deserialize(old, undefined, file);
      expect(back.values()).toEqual(q.values());
      expect(back.pointer).toBe(7);
      // a later version is refused as such
      const v3 = new TextEncoder().encode(JSON.stringify({ kind: 'compress/memory-queue', version: 3 }));
      const newer = new Uint8Array(8 + v3.length);
      new DataView(newer.buffer).setUint32(0, 0x5153_4d43, true);
      new DataView(newer.buffer).setUint32(4, v3.length, true);
      newer.set(v3, 8);
      expect(() => MemoryQueue.deserialize(newer, undefined, file)).toThrow(
        `${file}: a serialised memory queue of version 3 in the "CMSQ" layout, this version of @compress/losses reads versions 1 and 2 of that layout and version 3 in the compress container`,
      );
    });
  });

  it('says when it was disposed', () => {
    const q = MemoryQueue.create({ size: 3, dim: 2 });
    q.dispose();
    expect(() => q.values()).toThrow(/was disposed/);
  });
});

/** Today's version-2 "CMSQ" layout, as version 2 of @compress/losses wrote it. */
function serializeV2(q: MemoryQueue): Uint8Array {
  const header = new TextEncoder().encode(
    JSON.stringify({
      kind: 'compress/memory-queue',
      version: 2,
      size: q.size,
      dim: q.dim,
      pointer: q.pointer,
    }),
  );
  const headEnd = (8 + header.length + 3) & ~3;
  const dataStart = headEnd + 8;
  const out = new Uint8Array(dataStart + q.size * q.dim * 4);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, 0x5153_4d43, true);
  dv.setUint32(4, header.length, true);
  out.set(header, 8);
  const v = q.values();
  const data = new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  out.set(data, dataStart);
  dv.setUint32(headEnd, crc32(data), true);
  dv.setUint32(headEnd + 4, crc32(out.subarray(0, headEnd + 4)), true);
  return out;
}
