import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { crc32 } from './checksum.js';
import {
  CONTAINER_PROGRESS_OFFSET,
  type ContainerExpectation,
  containerBlockCount,
  decodeContainer,
  encodeContainerBytes,
  float32Section,
  layoutBlockedContainer,
  readContainer,
  setContainerProgress,
  writeContainer,
} from './container.js';
import { CompressError } from './errors.js';

const EXPECT: ContainerExpectation = {
  kind: 'compress-test',
  versions: [3],
  what: 'compress test file',
  reader: '@compress/core',
  remedy: 'make it again',
};

function failure(f: () => unknown): CompressError {
  try {
    f();
  } catch (error) {
    expect(error).toBeInstanceOf(CompressError);
    return error as CompressError;
  }
  throw new Error('expected an error');
}

describe('container', () => {
  const a = Float32Array.from({ length: 1001 }, (_, i) => Math.sin(i));
  const b = Int32Array.from([1, -2, 3]);
  const c = new Uint8Array(0);
  const sections = [
    { name: 'a', data: a, dtype: 'float32' as const, shape: [7, 143] },
    { name: 'empty', data: c },
    { name: 'b', data: b, dtype: 'int32' as const },
  ];
  const good = encodeContainerBytes('compress-test', 3, { note: 'hello', n: 5 }, sections);
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'compress-container-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('round-trips the header and the sections, 64-byte aligned, deterministically', () => {
    const got = decodeContainer(good, 'f.bin', EXPECT);
    expect(got.header.note).toBe('hello');
    expect(got.header.n).toBe(5);
    expect(got.sections.map((s) => s.entry.name)).toEqual(['a', 'empty', 'b']);
    expect(float32Section(got.section('a')!)).toEqual(a);
    expect(new Int32Array(got.section('b')!.slice().buffer)).toEqual(b);
    expect(got.section('empty')!.length).toBe(0);
    expect(got.section('none')).toBeUndefined();
    expect(got.header.sections[0]!.shape).toEqual([7, 143]);
    const view = new DataView(good.buffer);
    const dataStart = view.getUint32(12, true);
    expect(new TextDecoder().decode(good.subarray(0, 8))).toBe('COMPRESS');
    expect(dataStart % 64).toBe(0);
    for (const s of got.header.sections) {
      expect((dataStart + s.offset) % 64).toBe(0);
      expect(s.crc).toBe(crc32(good.subarray(dataStart + s.offset, dataStart + s.offset + s.bytes)));
    }
    // no padding after the last section
    const last = got.header.sections.at(-1)!;
    expect(good.length).toBe(dataStart + last.offset + last.bytes);
    expect(encodeContainerBytes('compress-test', 3, { note: 'hello', n: 5 }, sections)).toEqual(good);
    expect(() => encodeContainerBytes('compress-test', 3, {}, [sections[0]!, sections[0]!])).toThrow(
      "two sections are named 'a'",
    );
  });

  it('writes atomically and reads a file back', async () => {
    const file = join(dir, 'w.bin');
    await writeContainer(file, 'compress-test', 3, { note: 'hello', n: 5 }, sections);
    expect(new Uint8Array(await readFile(file))).toEqual(good);
    const got = await readContainer(file, EXPECT);
    expect(float32Section(got.section('a')!)).toEqual(a);
    await expect(readContainer(join(dir, 'missing.bin'), EXPECT)).rejects.toMatchObject({
      code: 'NOT_FOUND',
    });
  });

  it('detects damage in every byte region, naming the file and the section', () => {
    const dataStart = new DataView(good.buffer).getUint32(12, true);
    const entries = decodeContainer(good, 'f.bin', EXPECT).header.sections;
    const flip = (at: number) => {
      const bytes = good.slice();
      bytes[at]! ^= 0x04;
      return failure(() => decodeContainer(bytes, 'f.bin', EXPECT));
    };
    // the prefix's progress and checksum, the JSON, the padding of the header
    for (const at of [25, 33, 45, 61, 70, dataStart - 1]) {
      const e = flip(at);
      expect(e.code).toBe('CORRUPT_INPUT');
      expect(e.input).toBe('f.bin');
      expect(e.message).toMatch(
        /^f\.bin: section 'header' checksum mismatch \(stored 0x[0-9a-f]{8}, computed 0x[0-9a-f]{8}\): the file is damaged; make it again$/,
      );
    }
    for (const s of entries.filter((e) => e.bytes > 0)) {
      for (const at of [0, s.bytes - 1]) {
        const e = flip(dataStart + s.offset + at);
        expect(e.code).toBe('CORRUPT_INPUT');
        expect(e.message).toBe(
          `f.bin: section '${s.name}' checksum mismatch (stored 0x${s.crc!.toString(16).padStart(8, '0')}, computed 0x${crc32(
            (() => {
              const bytes = good.slice(dataStart + s.offset, dataStart + s.offset + s.bytes);
              bytes[at]! ^= 0x04;
              return bytes;
            })(),
          )
            .toString(16)
            .padStart(8, '0')}): the file is damaged; make it again`,
        );
      }
    }
  });

  it('refuses a truncated file naming the section it ends in, and trailing bytes', () => {
    const dataStart = new DataView(good.buffer).getUint32(12, true);
    let e = failure(() => decodeContainer(good.subarray(0, good.length - 1), 'f.bin', EXPECT));
    expect(e.message).toBe(
      "f.bin: the file ends within section 'b': the file is truncated or damaged; make it again",
    );
    e = failure(() => decodeContainer(good.subarray(0, dataStart + 10), 'f.bin', EXPECT));
    expect(e.message).toContain("the file ends within section 'a'");
    e = failure(() => decodeContainer(good.subarray(0, dataStart - 10), 'f.bin', EXPECT));
    expect(e.message).toContain("the file ends within section 'header'");
    e = failure(() => decodeContainer(good.subarray(0, 40), 'f.bin', EXPECT));
    expect(e.message).toContain("the file ends within section 'header'");
    const longer = new Uint8Array(good.length + 3);
    longer.set(good);
    e = failure(() => decodeContainer(longer, 'f.bin', EXPECT));
    expect(e.code).toBe('CORRUPT_INPUT');
    expect(e.message).toContain(`expected ${good.length} bytes, found ${good.length + 3}`);
  });

  it('refuses a bad magic, an unknown container version, another kind and unknown format versions', () => {
    const bad = good.slice();
    bad.set(new TextEncoder().encode('CMPRSXXX'), 0);
    let e = failure(() => decodeContainer(bad, 'f.bin', EXPECT));
    expect(e.code).toBe('CORRUPT_INPUT');
    expect(e.message).toBe(
      'f.bin: not a compress test file (expected the magic "COMPRESS", found "CMPRSXXX")',
    );
    const v2 = good.slice();
    new DataView(v2.buffer).setUint32(8, 2, true);
    e = failure(() => decodeContainer(v2, 'f.bin', EXPECT));
    expect(e.code).toBe('UNSUPPORTED');
    expect(e.message).toBe(
      'f.bin: compress container version 2, this version of @compress/core reads version 1 (or the file is damaged)',
    );
    e = failure(() => decodeContainer(good, 'f.bin', { ...EXPECT, kind: 'compress-other' }));
    expect(e.code).toBe('MISMATCH');
    expect(e.message).toBe('f.bin: expected a compress test file (compress-other), found compress-test');
    e = failure(() => decodeContainer(good, 'f.bin', { ...EXPECT, versions: [1, 2] }));
    expect(e.code).toBe('UNSUPPORTED');
    expect(e.message).toBe(
      'f.bin: a compress test file of version 3, this version of @compress/core reads versions 1, 2',
    );
  });

  it('lays out a blocked section written piece by piece, committing progress with one small write', async () => {
    const rows = Float32Array.from({ length: 10_000 }, (_, i) => i * 0.5);
    const data = new Uint8Array(rows.buffer);
    const blockBytes = 4096;
    const { region, section, fileBytes } = layoutBlockedContainer(
      'compress-test',
      3,
      { note: 'blocked' },
      { name: 'rows', bytes: data.length, blockBytes, dtype: 'float32', shape: [100, 100] },
      4096,
    );
    expect(region.length).toBe(4096);
    const blocks = containerBlockCount(section);
    expect(blocks).toBe(10);
    const file = new Uint8Array(fileBytes);
    file.set(region);
    const table = new Uint32Array(blocks);
    for (let bk = 0; bk < blocks; bk++)
      table[bk] = crc32(data.subarray(bk * blockBytes, (bk + 1) * blockBytes));
    file.set(data, region.length + section.offset);
    file.set(new Uint8Array(table.buffer), region.length + section.table!);
    // unfinished: progress says half
    file.set(
      setContainerProgress(region, {
        bytes: 5 * blockBytes,
        partialCrc: 0,
        tableCrc: crc32(table.subarray(0, 5)),
      }),
      CONTAINER_PROGRESS_OFFSET,
    );
    expect(failure(() => decodeContainer(file, 'c.bin', EXPECT)).message).toContain(
      "section 'rows' is unfinished (20480 of 40000 bytes written)",
    );
    file.set(
      setContainerProgress(region, { bytes: data.length, partialCrc: 0, tableCrc: crc32(table) }),
      CONTAINER_PROGRESS_OFFSET,
    );
    const got = decodeContainer(file, 'c.bin', EXPECT);
    expect(float32Section(got.section('rows')!)).toEqual(rows);
    const damaged = file.slice();
    damaged[region.length + 3 * blockBytes + 7]! ^= 1;
    expect(failure(() => decodeContainer(damaged, 'c.bin', EXPECT)).message).toMatch(
      /^c\.bin: section 'rows block 3' checksum mismatch/,
    );
    const badTable = file.slice();
    badTable[region.length + section.table! + 1]! ^= 1;
    expect(failure(() => decodeContainer(badTable, 'c.bin', EXPECT)).message).toMatch(
      /^c\.bin: section 'rows checksum table' checksum mismatch/,
    );
    await writeFile(join(dir, 'c.bin'), file);
    expect((await readContainer(join(dir, 'c.bin'), EXPECT)).header.note).toBe('blocked');
  });
});
