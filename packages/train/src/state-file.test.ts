import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CompressError, crc32, crc32Of, decodeContainer, encodeContainerBytes } from '@compress/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readStateFile, writeStateFile } from './state-file.js';

describe('state files: the compress container (version 3)', () => {
  let dir: string;
  const state = {
    kind: 'compress/objective',
    step: 12345,
    queues: [
      { values: Float32Array.from({ length: 1000 }, (_, i) => Math.sin(i)), pointer: 7 },
      { values: Float32Array.from([1, 2]), pointer: 0 },
    ],
    head: Float32Array.from([0.5, -0.25, 3]),
    nested: { values: new Float32Array(0) },
    nothing: null,
  };
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'compress-state3-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('writes one aligned, checksummed section per array, named by its path, and reads it back exactly', async () => {
    const file = join(dir, 'state.bin');
    await writeStateFile(file, state);
    const bytes = await readFile(file);
    expect(bytes.toString('latin1', 0, 8)).toBe('COMPRESS');
    const { header } = decodeContainer(new Uint8Array(bytes), file, {
      kind: 'compress-trainer-state',
      versions: [3],
      what: 'state',
    });
    expect(header.sections.map((s) => s.name)).toEqual([
      'queues.0.values',
      'queues.1.values',
      'head',
      'nested.values',
    ]);
    expect(await readStateFile<typeof state>(file)).toEqual(state);
    await writeStateFile(join(dir, 'again.bin'), state);
    expect((await readFile(join(dir, 'again.bin'))).equals(bytes)).toBe(true);
    // a top-level array, and arrays in arrays
    await writeStateFile(join(dir, 'top.bin'), Float32Array.from([4, 5]));
    expect(await readStateFile(join(dir, 'top.bin'))).toEqual(Float32Array.from([4, 5]));
    await writeStateFile(join(dir, 'list.bin'), [Float32Array.from([4]), [Float32Array.from([5])]]);
    expect(await readStateFile(join(dir, 'list.bin'))).toEqual([
      Float32Array.from([4]),
      [Float32Array.from([5])],
    ]);
  });

  it('names the damaged section and the file, and refuses a state file of another kind', async () => {
    const file = join(dir, 'state.bin');
    await writeStateFile(file, state);
    const bytes = await readFile(file);
    const dataStart = bytes.readUInt32LE(12);
    bytes[dataStart + 5]! ^= 0x01;
    await writeFile(join(dir, 'bad.bin'), bytes);
    await expect(readStateFile(join(dir, 'bad.bin'))).rejects.toThrow(
      new RegExp(
        `^${join(dir, 'bad.bin').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: section 'queues\\.0\\.values' checksum mismatch \\(stored 0x[0-9a-f]{8}, computed 0x[0-9a-f]{8}\\): the file is damaged; restore it from a copy, use an earlier checkpoint of its run, or train again$`,
      ),
    );
    await writeFile(join(dir, 'cut.bin'), bytes.subarray(0, bytes.length - 3));
    await expect(readStateFile(join(dir, 'cut.bin'))).rejects.toMatchObject({ code: 'CORRUPT_INPUT' });
    await writeFile(join(dir, 'queue.bin'), encodeContainerBytes('compress/memory-queue', 3, {}, []));
    await expect(readStateFile(join(dir, 'queue.bin'))).rejects.toMatchObject({ code: 'MISMATCH' });
  });
});

describe('state files of version 2 ("CMPRSST2", with checksums), still read', () => {
  let dir: string;
  let file: string;
  let good: Buffer;
  /** Where the JSON header (and its padding) ends, and where the array data starts. */
  let headEnd: number;
  let dataStart: number;
  const state = {
    kind: 'compress/objective',
    step: 12345,
    queue: { values: Float32Array.from({ length: 1000 }, (_, i) => Math.sin(i)), pointer: 7 },
    head: Float32Array.from([0.5, -0.25, 3]),
    nothing: null,
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'compress-state-'));
    file = join(dir, 'state.bin');
    good = writeStateV2(state);
    await writeFile(file, good);
    const length = good.readUInt32LE(8);
    headEnd = 12 + length + ((4 - ((12 + length) % 4)) % 4);
    dataStart = headEnd + 8;
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** Writes `good` with `change` applied under a new name and returns the error reading it gives. */
  async function damaged(
    name: string,
    change: (bytes: Buffer) => Buffer | undefined,
  ): Promise<CompressError> {
    const bytes = Buffer.from(good);
    const path = join(dir, name);
    await writeFile(path, change(bytes) ?? bytes);
    const error = await readStateFile(path).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(CompressError);
    expect((error as CompressError).code).toBe('CORRUPT_INPUT');
    expect((error as CompressError).input).toBe(path);
    expect((error as Error).message.startsWith(`${path}: `)).toBe(true);
    return error as CompressError;
  }

  it('reads version 2 (magic CMPRSST2) with the CRC-32 of the data and of the header exactly', async () => {
    expect(good.toString('ascii', 0, 8)).toBe('CMPRSST2');
    expect(dataStart % 4).toBe(0);
    expect(good.length - dataStart).toBe(1003 * 4);
    expect(good.readUInt32LE(headEnd)).toBe(crc32(good.subarray(dataStart)));
    expect(good.readUInt32LE(headEnd + 4)).toBe(crc32(good.subarray(0, headEnd + 4)));
    const back = await readStateFile<typeof state>(file);
    expect(back).toEqual(state);
  });

  it('refuses flipped bytes in the header, naming the file and the section', async () => {
    const at = good.indexOf('12345', 12);
    expect(at).toBeGreaterThan(12);
    // still valid JSON (step 12345 → 12335): only the checksum can tell
    let e = await damaged('h1.bin', (b) => {
      b[at + 3] = '3'.charCodeAt(0);
      return undefined;
    });
    expect(e.message).toMatch(
      /: section 'header' checksum mismatch \(stored 0x[0-9a-f]{8}, computed 0x[0-9a-f]{8}\): the file is damaged; /,
    );
    // an array's offset
    e = await damaged('h2.bin', (b) => {
      b[b.indexOf('"$f32":0', 12) + 7] = '1'.charCodeAt(0);
      return undefined;
    });
    expect(e.message).toContain(`${join(dir, 'h2.bin')}: section 'header' checksum mismatch`);
    // the data's checksum word, and the header's own
    for (const [name, offset] of [
      ['h3.bin', headEnd],
      ['h4.bin', headEnd + 6],
    ] as const) {
      e = await damaged(name, (b) => {
        b[offset]! ^= 0x20;
        return undefined;
      });
      expect(e.message).toContain(`${join(dir, name)}: section 'header' checksum mismatch`);
    }
  });

  it('refuses flipped bytes in the array data, naming the file and the section', async () => {
    for (const [name, offset] of [
      ['d1.bin', dataStart],
      ['d2.bin', dataStart + 2001],
      ['d3.bin', good.length - 1],
    ] as const) {
      const e = await damaged(name, (b) => {
        b[offset]! ^= 0x01;
        return undefined;
      });
      expect(e.message).toMatch(
        new RegExp(
          `: section 'data' checksum mismatch \\(stored 0x${good.readUInt32LE(headEnd).toString(16).padStart(8, '0')}, computed 0x[0-9a-f]{8}\\)`,
        ),
      );
    }
  });

  it('refuses a truncated file', async () => {
    let e = await damaged('t1.bin', (b) => b.subarray(0, b.length - 4));
    expect(e.message).toContain("the file ends within section 'data': the file is truncated or damaged");
    e = await damaged('t2.bin', (b) => b.subarray(0, headEnd + 4));
    expect(e.message).toContain("the file ends within section 'header': the file is truncated or damaged");
    e = await damaged('t3.bin', (b) => b.subarray(0, 20));
    expect(e.message).toContain("the file ends within section 'header'");
    e = await damaged('t4.bin', (b) => b.subarray(0, 5));
    expect(e.message).toContain('not a compress state file (bad magic)');
  });

  it('still reads a version-1 file (magic CMPRSST1, no checksums), unverified', async () => {
    // the version-1 layout: magic, u32 header length, JSON header, zero padding to 4 bytes, data
    const json = Buffer.from(
      JSON.stringify({
        ...state,
        queue: { ...state.queue, values: { $f32: 0, length: 1000 } },
        head: { $f32: 1000, length: 3 },
      }),
    );
    const prefix = Buffer.alloc(12);
    prefix.write('CMPRSST1', 0, 'ascii');
    prefix.writeUInt32LE(json.length, 8);
    const pad = Buffer.alloc((4 - ((12 + json.length) % 4)) % 4);
    const old = join(dir, 'v1.bin');
    await writeFile(old, Buffer.concat([prefix, json, pad, good.subarray(dataStart)]));
    expect(await readStateFile<typeof state>(old)).toEqual(state);
    // a later version is refused as such
    await writeFile(join(dir, 'v3.bin'), Buffer.concat([Buffer.from('CMPRSST3'), good.subarray(8)]));
    await expect(readStateFile(join(dir, 'v3.bin'))).rejects.toThrow(
      'a compress state file of version 3 in the CMPRSSTn layout, this version of @compress/train reads versions 1 and 2 of that layout and version 3 in the compress container',
    );
  });
});

/** Today's version-2 "CMPRSST2" layout, as version 2 of @compress/cli wrote it. */
function writeStateV2(state: unknown): Buffer {
  const arrays: Uint8Array[] = [];
  let offset = 0;
  const header = JSON.stringify(state, (_key, value) => {
    if (value instanceof Float32Array) {
      arrays.push(new Uint8Array(value.buffer, value.byteOffset, value.byteLength));
      const ref = { $f32: offset, length: value.length };
      offset += value.length;
      return ref;
    }
    return value;
  });
  const head = Buffer.from(header, 'utf8');
  const prefix = Buffer.alloc(12);
  prefix.write('CMPRSST2', 0, 'ascii');
  prefix.writeUInt32LE(head.length, 8);
  const pad = Buffer.alloc((4 - ((12 + head.length) % 4)) % 4);
  const checksums = Buffer.alloc(8);
  checksums.writeUInt32LE(crc32Of(arrays), 0);
  checksums.writeUInt32LE(crc32Of([prefix, head, pad, checksums.subarray(0, 4)]), 4);
  return Buffer.concat([prefix, head, pad, checksums, ...arrays]);
}
