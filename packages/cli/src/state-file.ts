import { readFile } from 'node:fs/promises';
import { CompressError, ioError, writeFileAtomic } from '@compress/core';

const MAGIC = 'CMPRSST1';

/**
 * Writes a JSON-like state that contains Float32Arrays (queues, heads) as one binary file:
 * magic, u32 header length, a JSON header in which every array is `{ "$f32": offset, "length": n }`,
 * then the arrays' little-endian float32 data. Written atomically.
 */
export async function writeStateFile(path: string, state: unknown): Promise<void> {
  const arrays: Float32Array[] = [];
  let offset = 0;
  const header = JSON.stringify(state, (_key, value) => {
    if (value instanceof Float32Array) {
      arrays.push(value);
      const ref = { $f32: offset, length: value.length };
      offset += value.length;
      return ref;
    }
    return value;
  });
  const head = Buffer.from(header, 'utf8');
  const prefix = Buffer.alloc(12);
  prefix.write(MAGIC, 0, 'ascii');
  prefix.writeUInt32LE(head.length, 8);
  const pad = Buffer.alloc((4 - ((12 + head.length) % 4)) % 4);
  await writeFileAtomic(path, [
    prefix,
    head,
    pad,
    ...arrays.map((a) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength)),
  ]);
}

/** Reads a file written by {@link writeStateFile}. */
export async function readStateFile<T>(path: string): Promise<T> {
  let buf: Buffer;
  try {
    buf = await readFile(path);
  } catch (error) {
    throw ioError(error, path, 'read');
  }
  if (buf.length < 12 || buf.toString('ascii', 0, 8) !== MAGIC) {
    throw new CompressError('CORRUPT_INPUT', `${path}: not a compress state file (bad magic)`, {
      input: path,
    });
  }
  const headLength = buf.readUInt32LE(8);
  const dataStart = 12 + headLength + ((4 - ((12 + headLength) % 4)) % 4);
  if (dataStart > buf.length) {
    throw new CompressError('CORRUPT_INPUT', `${path}: truncated header`, { input: path });
  }
  const data = buf.buffer.slice(buf.byteOffset + dataStart, buf.byteOffset + buf.length);
  const total = data.byteLength / 4;
  return JSON.parse(buf.toString('utf8', 12, 12 + headLength), (_key, value) => {
    if (value && typeof value === 'object' && typeof value.$f32 === 'number') {
      if (value.$f32 + value.length > total) {
        throw new CompressError('CORRUPT_INPUT', `${path}: truncated data (an array ends past the file)`, {
          input: path,
        });
      }
      return new Float32Array(data, value.$f32 * 4, value.length).slice();
    }
    return value;
  }) as T;
}
