import { readFile } from 'node:fs/promises';
import { CompressError, ioError, writeFileAtomic } from '@compress/core';
import * as tf from '@tensorflow/tfjs-core';
import { createStudent } from './models/registry.js';
import type { Student, StudentOptions } from './models/student.js';
import type { SGD } from './sgd.js';

const MAGIC = 'CMPRSCKP';
const KIND = 'compress-student-checkpoint';
const VERSION = 1;

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

/**
 * Writes a checkpoint atomically: 8-byte magic, u32 header length, JSON header (kind, version,
 * the students' registry names and options, tensor table), then raw little-endian float32 data.
 * Restoring it gives bit-identical weights, BatchNorm statistics and momentum buffers.
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
    const e = { name, shape: t.shape.slice(), offset };
    offset += t.size;
    return e;
  });
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
  const pad = (4 - ((MAGIC.length + 4 + json.length) % 4)) % 4;
  if (pad) json = Buffer.concat([json, Buffer.from(' '.repeat(pad))]);
  const prefix = Buffer.alloc(MAGIC.length + 4);
  prefix.write(MAGIC, 0, 'latin1');
  prefix.writeUInt32LE(json.length, MAGIC.length);
  const data = new Float32Array(offset);
  for (const [i, [, t]] of tensors.entries()) data.set(t.dataSync() as Float32Array, table[i]!.offset);
  await writeFileAtomic(path, [prefix, json, new Uint8Array(data.buffer)]);
}

/** Reads and checks a checkpoint's header and data. */
export async function readCheckpoint(
  path: string,
): Promise<{ header: CheckpointHeader; data: Float32Array }> {
  let buf: Buffer;
  try {
    buf = await readFile(path);
  } catch (error) {
    throw ioError(error, path, 'read checkpoint');
  }
  if (buf.length < MAGIC.length + 4 || buf.toString('latin1', 0, MAGIC.length) !== MAGIC) {
    throw new CompressError(
      'CORRUPT_INPUT',
      `${path} is not a compress student checkpoint (expected magic ${MAGIC})`,
      { input: path },
    );
  }
  const len = buf.readUInt32LE(MAGIC.length);
  const start = MAGIC.length + 4 + len;
  let header: CheckpointHeader;
  try {
    header = JSON.parse(buf.toString('utf8', MAGIC.length + 4, start)) as CheckpointHeader;
  } catch (error) {
    throw new CompressError('CORRUPT_INPUT', `${path}: the checkpoint header is not valid JSON`, {
      input: path,
      cause: error,
    });
  }
  if (header.kind !== KIND || header.version !== VERSION) {
    throw new CompressError(
      'MISMATCH',
      `${path}: expected a ${KIND} version ${VERSION}, found ${String(header.kind)} version ${String(header.version)}`,
      { input: path },
    );
  }
  const bytes = buf.subarray(start);
  const want = header.tensors.reduce((a, t) => a + t.shape.reduce((p, q) => p * q, 1), 0);
  if (bytes.length !== want * 4) {
    throw new CompressError(
      'CORRUPT_INPUT',
      `${path}: expected ${want * 4} bytes of tensor data, found ${bytes.length} (truncated?)`,
      {
        input: path,
      },
    );
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
  const { header, data } = await readCheckpoint(path);
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
  const { header } = await readCheckpoint(path);
  const student = createStudent(header.student.name, header.student.options, { initialize: false });
  await restoreCheckpoint(path, { student });
  return student;
}
