import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CompressError, crc32 } from '@compress/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readStateFile, writeStateFile } from './state-file.js';

describe('state files: checksums', () => {
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
    await writeStateFile(file, state);
    good = await readFile(file);
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

  it('writes version 2 (magic CMPRSST2) with the CRC-32 of the data and of the header, and reads it back exactly', async () => {
    expect(good.toString('ascii', 0, 8)).toBe('CMPRSST2');
    expect(dataStart % 4).toBe(0);
    expect(good.length - dataStart).toBe(1003 * 4);
    expect(good.readUInt32LE(headEnd)).toBe(crc32(good.subarray(dataStart)));
    expect(good.readUInt32LE(headEnd + 4)).toBe(crc32(good.subarray(0, headEnd + 4)));
    const back = await readStateFile<typeof state>(file);
    expect(back).toEqual(state);
    // the same state gives the same bytes (resumed runs compare checkpoints byte for byte)
    await writeStateFile(join(dir, 'again.bin'), state);
    expect((await readFile(join(dir, 'again.bin'))).equals(good)).toBe(true);
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
      'a compress state file of version 3, this version of @compress/train reads versions 1 and 2',
    );
  });
});
