import { readFile } from 'node:fs/promises';
import {
  CompressError,
  checksumError,
  crc32,
  decodeContainer,
  ioError,
  isContainer,
  verifySection,
  writeContainer,
} from '@compress/core';
import * as tf from '@tensorflow/tfjs-core';
import { createStudent } from './models/registry.js';
import type { Student, StudentOptions } from './models/student.js';
import type { SGD } from './sgd.js';

/** The magic of versions 1 and 2; version 3 is the compress container (magic "COMPRESS"). */
const MAGIC = 'CMPRSCKP';
const KIND = 'compress-student-checkpoint';
/**
 * Version 3 is the compress container; the "CMPRSCKP" layouts of version 2 (CRC-32 checksums) and
 * version 1 (none, read unverified) are still read.
 */
const VERSION = 3;
const VERSION_2 = 2;
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
 * The file is a compress container (see `@compress/core`): kind "compress-student-checkpoint",
 * version 3, fields `student` and `key` (registry names and options), `optimizer`, `variables` and
 * `meta`, and one 64-byte-aligned float32 section per tensor, named as the tensor
 * (`student.<name>`, `key.<name>`, `variables.<name>`, `momentum.<tensor>`), with its shape and
 * CRC-32. The "CMPRSCKP" layouts of versions 1 and 2 are still read.
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
  const fields = {
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
  };
  await writeContainer(
    path,
    KIND,
    VERSION,
    fields,
    tensors.map(([name, t]) => ({
      name,
      data: t.dataSync() as Float32Array,
      dtype: 'float32' as const,
      shape: t.shape,
    })),
  );
}

/** Reads a version-3 checkpoint (a container) into the header and packed data of the older versions. */
function readContainerCheckpoint(
  path: string,
  buf: Buffer,
): { header: CheckpointHeader; data: Float32Array } {
  const { header: h, sections } = decodeContainer(
    new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength),
    path,
    {
      kind: KIND,
      versions: [VERSION],
      what: 'compress student checkpoint',
      reader: '@compress/students',
      remedy: REMEDY,
    },
  );
  let offset = 0;
  const tensors: TensorEntry[] = sections.map(({ entry }) => {
    const shape = entry.shape ?? [entry.bytes / 4];
    if (entry.dtype !== 'float32' || elements(shape) * 4 !== entry.bytes) {
      throw new CompressError(
        'CORRUPT_INPUT',
        `${path}: section '${entry.name}' is not a float32 tensor of shape [${shape.join(', ')}]`,
        { input: path },
      );
    }
    const e: TensorEntry = { name: entry.name, shape, offset, crc: entry.crc ?? 0 };
    offset += elements(shape);
    return e;
  });
  const data = new Float32Array(offset);
  for (const [i, { bytes }] of sections.entries()) {
    data.set(
      new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)),
      tensors[i]!.offset,
    );
  }
  const header: CheckpointHeader = {
    kind: KIND,
    version: h.version,
    student: h.student as CheckpointHeader['student'],
    key: (h.key ?? null) as CheckpointHeader['key'],
    optimizer: (h.optimizer ?? null) as CheckpointHeader['optimizer'],
    variables: (h.variables ?? []) as string[],
    meta: h.meta ?? null,
    tensors,
  };
  return { header, data };
}

/**
 * Reads a checkpoint's header and data, checking their checksums (a version-1 file, which has
 * none, is read unverified). Throws CORRUPT_INPUT naming the file and the damaged section
 * (`header`, or the tensor: `<name>` in version 3, `tensor <name>` in version 2) when one does not
 * match, or when the file is cut short. The header is given in the shape of versions 1 and 2 (one
 * table of tensors with their offsets in `data`) whatever the version of the file.
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
  if (isContainer(buf)) return readContainerCheckpoint(path, buf);
  return readLegacyCheckpoint(path, buf);
}

/** Reads the "CMPRSCKP" layouts of versions 1 and 2 (see the package README). */
function readLegacyCheckpoint(path: string, buf: Buffer): { header: CheckpointHeader; data: Float32Array } {
  if (buf.length < PREFIX || buf.toString('latin1', 0, MAGIC.length) !== MAGIC) {
    throw new CompressError(
      'CORRUPT_INPUT',
      `${path} is not a compress student checkpoint (expected the magic "COMPRESS", or ${MAGIC} of versions 1 and 2)`,
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
    if (header?.kind === KIND && typeof header.version === 'number' && header.version > VERSION_2) {
      throw new CompressError(
        'UNSUPPORTED',
        `${path}: a ${KIND} version ${header.version} in the ${MAGIC} layout, this version of @compress/students reads versions ${LEGACY_VERSION} and ${VERSION_2} of that layout and version ${VERSION} in the compress container (or the file is damaged)`,
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
  if (header.kind !== KIND || (header.version !== VERSION_2 && !legacy)) {
    throw new CompressError(
      'MISMATCH',
      `${path}: expected a ${KIND} version ${LEGACY_VERSION} or ${VERSION_2}, found ${String(header.kind)} version ${String(header.version)}`,
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
