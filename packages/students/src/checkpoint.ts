import { readFile } from 'node:fs/promises';
import { CompressError, checksumError, crc32, ioError, verifySection, writeFileAtomic } from '@compress/core';
import * as tf from '@tensorflow/tfjs-core';
import { createStudent } from './models/registry.js';
import type { Student, StudentOptions } from './models/student.js';
import type { SGD } from './sgd.js';

const MAGIC = 'CMPRSCKP';
const KIND = 'compress-student-checkpoint';
/** Version 2 adds CRC-32 checksums (of the header and of every tensor); version 1 is still read, unverified. */
const VERSION = 2;
const LEGACY_VERSION = 1;
const PREFIX = MAGIC.length + 4;

/** What to do with a damaged checkpoint, in every message about one. */
const REMEDY = 'restore it from a copy, use an earlier checkpoint of its run, or train again';

/** What a checkpoint holds; everything but `student` is optional. */
export interface CheckpointContents {
  /** The trained student: parameters and BatchNorm running statistics. */
  student: Student;
  /** The momentum variant's key encoder (EMA of the student). */
  key?: Student;
  /** The optimizer: its hyper-parameters and every momentum buffer. */
  optimizer?: SGD;
  /** Other trainable variables by name (e.g. the one-queue head); their momentum buffers too. */
  variables?: Record<string, tf.Variable>;
  /** Any JSON the caller needs to resume (epoch, step, RNG state…). */
  meta?: unknown;
}

interface TensorEntry {
  name: string;
  shape: number[];
  /** Offset in float32 elements from the start of the data section. */
  offset: number;
  /** CRC-32 of the tensor's bytes (from version 2; absent in version-1 files). */
  crc?: number;
}

/** The JSON header of a checkpoint file. */
export interface CheckpointHeader {
  kind: typeof KIND;
  version: number;
  student: { name: string; options: Required<StudentOptions> };
  key: { name: string; options: Required<StudentOptions> } | null;
  optimizer: { lr: number; momentum: number; weightDecay: number } | null;
  variables: string[];
  meta: unknown;
  tensors: TensorEntry[];
}

function studentTensors(prefix: string, s: Student): [string, tf.Variable][] {
  return s.stateDict().map(([n, v]) => [`${prefix}.${n}`, v]);
}

/** Every named tensor of `contents` (and the variable each momentum buffer belongs to). */
function collect(contents: CheckpointContents): [string, tf.Variable][] {
  const out = studentTensors('student', contents.student);
  if (contents.key) out.push(...studentTensors('key', contents.key));
  for (const [name, v] of Object.entries(contents.variables ?? {})) out.push([`variables.${name}`, v]);
  return out;
}

function elements(shape: readonly number[]): number {
  return shape.reduce((p, q) => p * q, 1);
}

/**
 * Writes a checkpoint atomically. Restoring it gives bit-identical weights, BatchNorm statistics
 * and momentum buffers.
 *
 * ```
 * offset  size  field (version 2)
 *      0     8  magic "CMPRSCKP"
 *      8     4  u32 length L of the JSON header (space-padded so that 12 + L is a multiple of 4)
 *     12     L  JSON header: kind, version (2), the students' registry names and options, optimizer,
 *               variables, meta, tensor table (name, shape, offset in floats, crc: CRC-32 of its bytes)
 *   12+L     4  u32 CRC-32 of bytes 0 … 12+L (magic, length and JSON header)
 *   16+L     …  the tensors' little-endian float32 data, one after another
 * ```
 * Version 1 (no CRC word after the header, no `crc` in the table) is still read, unverified.
 */
export async function saveCheckpoint(path: string, contents: CheckpointContents): Promise<void> {
  const named = collect(contents);
  const tensors: [string, tf.Tensor][] = [...named];
  if (contents.optimizer) {
    for (const [name, v] of named) {
      const buf = contents.optimizer.buffers.get(v);
      if (buf) tensors.push([`momentum.${name}`, buf]);
    }
  }
  let offset = 0;
  const table: TensorEntry[] = tensors.map(([name, t]) => {
    const e: TensorEntry = { name, shape: t.shape.slice(), offset, crc: 0 };
    offset += t.size;
    return e;
  });
  const data = new Float32Array(offset);
  for (const [i, [, t]] of tensors.entries()) {
    const e = table[i]!;
    data.set(t.dataSync() as Float32Array, e.offset);
    e.crc = crc32(data.subarray(e.offset, e.offset + t.size));
  }
  const header: CheckpointHeader = {
    kind: KIND,
    version: VERSION,
    student: { name: contents.student.spec.name, options: contents.student.options },
    key: contents.key ? { name: contents.key.spec.name, options: contents.key.options } : null,
    optimizer: contents.optimizer
      ? {
          lr: contents.optimizer.lr,
          momentum: contents.optimizer.momentum,
          weightDecay: contents.optimizer.weightDecay,
        }
      : null,
    variables: Object.keys(contents.variables ?? {}),
    meta: contents.meta ?? null,
    tensors: table,
  };
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  // pad the header so the data starts 4-byte aligned
  const pad = (4 - ((PREFIX + json.length) % 4)) % 4;
  if (pad) json = Buffer.concat([json, Buffer.from(' '.repeat(pad))]);
  const prefix = Buffer.alloc(PREFIX);
  prefix.write(MAGIC, 0, 'latin1');
  prefix.writeUInt32LE(json.length, MAGIC.length);
  const headerCrc = Buffer.alloc(4);
  headerCrc.writeUInt32LE(crc32(json, crc32(prefix)));
  await writeFileAtomic(path, [prefix, json, headerCrc, new Uint8Array(data.buffer)]);
}

/**
 * Reads a checkpoint's header and data, checking their checksums (a version-1 file, which has
 * none, is read unverified). Throws CORRUPT_INPUT naming the file and the damaged section
 * (`header` or `tensor <name>`) when one does not match, or when the file is cut short.
 */
export async function readCheckpoint(
  path: string,
): Promise<{ header: CheckpointHeader; data: Float32Array }> {
  let buf: Buffer;
  try {
    buf = await readFile(path);
  } catch (error) {
    throw ioError(error, path, 'read checkpoint');
  }
  if (buf.length < PREFIX || buf.toString('latin1', 0, MAGIC.length) !== MAGIC) {
    throw new CompressError(
      'CORRUPT_INPUT',
      `${path} is not a compress student checkpoint (expected magic ${MAGIC})`,
      { input: path },
    );
  }
  const len = buf.readUInt32LE(MAGIC.length);
  const end = PREFIX + len;
  if (end > buf.length) {
    throw new CompressError(
      'CORRUPT_INPUT',
      `${path}: section 'header' is cut short (${len} bytes announced, ${buf.length - PREFIX} present): the file is truncated or damaged; ${REMEDY}`,
      { input: path },
    );
  }
  const computed = crc32(buf.subarray(0, end));
  const stored = end + 4 <= buf.length ? buf.readUInt32LE(end) : undefined;
  const verified = stored === computed;
  let header: CheckpointHeader | undefined;
  let parseError: unknown;
  try {
    header = JSON.parse(buf.toString('utf8', PREFIX, end)) as CheckpointHeader;
  } catch (error) {
    parseError = error;
  }
  // A version-1 file has no checksum word: the four bytes after its header are tensor data.
  const legacy = !verified && header?.kind === KIND && header.version === LEGACY_VERSION;
  if (!verified && !legacy) {
    if (header?.kind === KIND && typeof header.version === 'number' && header.version > VERSION) {
      throw new CompressError(
        'UNSUPPORTED',
        `${path}: a ${KIND} version ${header.version}, this version of @compress/students reads versions ${LEGACY_VERSION} and ${VERSION} (or the file is damaged)`,
        { input: path },
      );
    }
    if (stored !== undefined) throw checksumError(path, 'header', stored, computed, REMEDY);
    if (header?.kind === KIND) {
      throw new CompressError(
        'CORRUPT_INPUT',
        `${path}: the file ends before the checksum of section 'header': the file is truncated or damaged; ${REMEDY}`,
        { input: path },
      );
    }
  }
  if (header === undefined) {
    throw new CompressError('CORRUPT_INPUT', `${path}: the checkpoint header is not valid JSON`, {
      input: path,
      cause: parseError,
    });
  }
  if (header.kind !== KIND || (header.version !== VERSION && !legacy)) {
    throw new CompressError(
      'MISMATCH',
      `${path}: expected a ${KIND} version ${LEGACY_VERSION} or ${VERSION}, found ${String(header.kind)} version ${String(header.version)}`,
      { input: path },
    );
  }
  const bytes = buf.subarray(legacy ? end : end + 4);
  const want = header.tensors.reduce((a, t) => a + elements(t.shape), 0);
  if (bytes.length !== want * 4) {
    throw new CompressError(
      'CORRUPT_INPUT',
      `${path}: expected ${want * 4} bytes of tensor data, found ${bytes.length} (truncated?)`,
      {
        input: path,
      },
    );
  }
  if (!legacy) {
    for (const t of header.tensors) {
      const from = t.offset * 4;
      verifySection(
        path,
        `tensor ${t.name}`,
        bytes.subarray(from, from + elements(t.shape) * 4),
        typeof t.crc === 'number' ? t.crc : Number.NaN,
        REMEDY,
      );
    }
  }
  // copy out of Node's buffer pool into an aligned array
  const data = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  return { header, data };
}

function sameStudent(
  path: string,
  role: string,
  saved: { name: string; options: unknown } | null,
  s: Student | undefined,
): void {
  if (s === undefined) return;
  if (saved === null) {
    throw new CompressError('MISMATCH', `${path} holds no ${role}, but one was given to restore`, {
      input: path,
    });
  }
  if (saved.name !== s.spec.name || JSON.stringify(saved.options) !== JSON.stringify(s.options)) {
    throw new CompressError(
      'MISMATCH',
      `${path}: the ${role} is ${saved.name} ${JSON.stringify(saved.options)}, the model given is ${s.spec.name} ${JSON.stringify(s.options)}`,
      { input: path },
    );
  }
}

/**
 * Restores a checkpoint into existing objects (same architectures and options, else a MISMATCH
 * error naming both), replacing the optimizer's momentum buffers. Returns the saved `meta`.
 */
export async function restoreCheckpoint(path: string, contents: CheckpointContents): Promise<unknown> {
  return restoreFrom(path, await readCheckpoint(path), contents);
}

function restoreFrom(
  path: string,
  { header, data }: { header: CheckpointHeader; data: Float32Array },
  contents: CheckpointContents,
): unknown {
  sameStudent(path, 'student', header.student, contents.student);
  sameStudent(path, 'key encoder', header.key, contents.key);
  const byName = new Map(header.tensors.map((t) => [t.name, t]));
  const read = (name: string, shape: readonly number[]): tf.Tensor => {
    const e = byName.get(name);
    if (e === undefined)
      throw new CompressError('MISMATCH', `${path} has no tensor ${name}`, { input: path });
    if (e.shape.join() !== shape.join()) {
      throw new CompressError(
        'MISMATCH',
        `${path}: ${name} is [${e.shape.join(', ')}], expected [${shape.join(', ')}]`,
        { input: path },
      );
    }
    const n = e.shape.reduce((p, q) => p * q, 1);
    return tf.tensor(data.slice(e.offset, e.offset + n), e.shape, 'float32');
  };
  const named = collect(contents);
  // read everything first, so a mismatch leaves the objects untouched
  const values = named.map(([name, v]) => read(name, v.shape));
  const momentum = contents.optimizer
    ? named.map(([name, v]) =>
        byName.has(`momentum.${name}`) ? read(`momentum.${name}`, v.shape) : undefined,
      )
    : [];
  named.forEach(([, v], i) => {
    v.assign(values[i]!);
  });
  if (contents.optimizer) {
    const opt = contents.optimizer;
    if (header.optimizer) opt.lr = header.optimizer.lr;
    named.forEach(([, v], i) => {
      const m = momentum[i];
      opt.buffers.get(v)?.dispose();
      opt.buffers.delete(v);
      if (m) opt.buffers.set(v, tf.variable(m, false));
    });
  }
  tf.dispose(values);
  tf.dispose(momentum.filter((m): m is tf.Tensor => m !== undefined));
  return header.meta;
}

/** Creates the checkpoint's student from its registry name and options and restores it. */
export async function loadStudent(path: string): Promise<Student> {
  const checkpoint = await readCheckpoint(path);
  const { header } = checkpoint;
  const student = createStudent(header.student.name, header.student.options, { initialize: false });
  try {
    restoreFrom(path, checkpoint, { student });
  } catch (error) {
    student.dispose();
    throw error;
  }
  return student;
}
