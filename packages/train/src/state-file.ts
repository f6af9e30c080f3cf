import { readFile } from 'node:fs/promises';
import {
  CompressError,
  checksumError,
  crc32,
  decodeContainer,
  float32Section,
  ioError,
  isContainer,
  verifySection,
  writeContainer,
} from '@compress/core';

/** The kind and version of the state in the compress container (version 3). */
const KIND = 'compress-trainer-state';
const VERSION = 3;
/** The magic of version 2 (with checksums); version 1 (`CMPRSST1`, none) is still read, unverified. */
const MAGIC = 'CMPRSST2';
const MAGIC_V1 = 'CMPRSST1';
const MAGIC_STEM = 'CMPRSST';

/** What to do with a damaged state file, in every message about one. */
const REMEDY = 'restore it from a copy, use an earlier checkpoint of its run, or train again';

function pad4(n: number): number {
  return (4 - (n % 4)) % 4;
}

/**
 * Writes a JSON-like state that contains Float32Arrays (queues, heads) as one file, written
 * atomically, in the compress container (see `@compress/core`): kind "compress-trainer-state",
 * version 3, the state in the field `state` with every array replaced by `{ "$section": name }`,
 * and one 64-byte-aligned float32 section per array, named by its path in the state
 * (`queues.teacher.values`), with its CRC-32. The "CMPRSST2" (with checksums) and "CMPRSST1"
 * (without) layouts of versions 2 and 1 are still read.
 */
export async function writeStateFile(path: string, state: unknown): Promise<void> {
  const sections: { name: string; data: Float32Array; dtype: 'float32' }[] = [];
  const paths = new WeakMap<object, string>();
  const json = JSON.parse(
    JSON.stringify({ '': state }, function (this: object, key: string, value: unknown) {
      const holder = paths.get(this);
      const at = holder === undefined ? key : holder === '' ? key : `${holder}.${key}`;
      if (value instanceof Float32Array) {
        const used = new Set(sections.map((s) => s.name));
        let name = at === '' ? 'state' : at;
        for (let n = 2; used.has(name); n++) name = `${at}#${n}`;
        sections.push({ name, data: value, dtype: 'float32' });
        return { $section: name };
      }
      if (value !== null && typeof value === 'object')
        paths.set(value, key === '' && holder === undefined ? '' : at);
      return value;
    }),
  ) as { '': unknown };
  await writeContainer(path, KIND, VERSION, { state: json[''] ?? null }, sections);
}

/**
 * Reads a file written by {@link writeStateFile}, checking its checksums (a version-1 file, which
 * has none, is read unverified). Throws CORRUPT_INPUT naming the file and the damaged section
 * (`header`, an array's path in version 3, `data` in version 2) when one does not match, or when
 * the file is cut short.
 */
export async function readStateFile<T>(path: string): Promise<T> {
  let buf: Buffer;
  try {
    buf = await readFile(path);
  } catch (error) {
    throw ioError(error, path, 'read');
  }
  if (isContainer(buf)) {
    const { header, section } = decodeContainer(
      new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength),
      path,
      {
        kind: KIND,
        versions: [VERSION],
        what: 'compress state file',
        reader: '@compress/cli',
        remedy: REMEDY,
      },
    );
    return JSON.parse(JSON.stringify(header.state ?? null), (_key, value) => {
      if (value && typeof value === 'object' && typeof value.$section === 'string') {
        const bytes = section(value.$section);
        if (bytes === undefined) {
          throw new CompressError(
            'CORRUPT_INPUT',
            `${path}: the state names a section '${value.$section}' that the file lacks`,
            {
              input: path,
            },
          );
        }
        return float32Section(bytes);
      }
      return value;
    }) as T;
  }
  return readLegacyStateFile<T>(path, buf);
}

/** Reads the "CMPRSST2" and "CMPRSST1" layouts of versions 2 and 1 (see the package README). */
function readLegacyStateFile<T>(path: string, buf: Buffer): T {
  const magic = buf.length < 12 ? '' : buf.toString('ascii', 0, 8);
  if (magic !== MAGIC && magic !== MAGIC_V1) {
    if (magic.startsWith(MAGIC_STEM) && /^[3-9]$/.test(magic[7]!)) {
      throw new CompressError(
        'UNSUPPORTED',
        `${path}: a compress state file of version ${magic[7]} in the ${MAGIC_STEM}n layout, this version of @compress/train reads versions 1 and 2 of that layout and version ${VERSION} in the compress container`,
        { input: path },
      );
    }
    throw new CompressError('CORRUPT_INPUT', `${path}: not a compress state file (bad magic)`, {
      input: path,
    });
  }
  const verified = magic === MAGIC;
  const cutShort = (where: string) =>
    new CompressError(
      'CORRUPT_INPUT',
      `${path}: the file ends within section '${where}': the file is truncated or damaged; ${REMEDY}`,
      { input: path },
    );
  const headLength = buf.readUInt32LE(8);
  const headEnd = 12 + headLength + pad4(12 + headLength);
  const dataStart = verified ? headEnd + 8 : headEnd;
  if (dataStart > buf.length) throw cutShort('header');
  let dataCrc = 0;
  if (verified) {
    dataCrc = buf.readUInt32LE(headEnd);
    verifySection(path, 'header', buf.subarray(0, headEnd + 4), buf.readUInt32LE(headEnd + 4), REMEDY);
  }
  const data = buf.buffer.slice(buf.byteOffset + dataStart, buf.byteOffset + buf.length);
  const total = data.byteLength / 4;
  let end = 0;
  let state: T;
  try {
    state = JSON.parse(buf.toString('utf8', 12, 12 + headLength), (_key, value) => {
      if (value && typeof value === 'object' && typeof value.$f32 === 'number') {
        if (value.$f32 + value.length > total) throw cutShort('data');
        end = Math.max(end, value.$f32 + value.length);
        return new Float32Array(data, value.$f32 * 4, value.length).slice();
      }
      return value;
    }) as T;
  } catch (error) {
    if (error instanceof CompressError) throw error;
    throw new CompressError('CORRUPT_INPUT', `${path}: the state header is not valid JSON`, {
      input: path,
      cause: error,
    });
  }
  if (verified) {
    if (end * 4 !== data.byteLength) {
      throw new CompressError(
        'CORRUPT_INPUT',
        `${path}: expected ${end * 4} bytes of array data, found ${data.byteLength}: the file is damaged; ${REMEDY}`,
        { input: path },
      );
    }
    const computed = crc32(new Uint8Array(data));
    if (computed !== dataCrc) throw checksumError(path, 'data', dataCrc, computed, REMEDY);
  }
  return state;
}
