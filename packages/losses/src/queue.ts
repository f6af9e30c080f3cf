import {
  CompressError,
  checksumError,
  crc32,
  decodeContainer,
  encodeContainerBytes,
  float32Section,
  isContainer,
  Rng,
  verifySection,
} from '@compress/core';
import { jsStorage, type QueueStorage } from './storage.js';

/** Options of {@link MemoryQueue.create}; give `seed`/`rng` for a fresh queue or `values` to load one. */
export interface MemoryQueueOptions {
  /** K, the number of anchor rows. */
  size: number;
  /** D, the dimension of each row. */
  dim: number;
  /**
   * Seed of the initial values (uniform in [-stdv, stdv], stdv = 1/sqrt(D/3), as the paper's code).
   * @default 0
   */
  seed?: number | string;
  /** A generator to draw the initial values from instead of `seed`. */
  rng?: Rng;
  /** Initial values, K·D row-major (copied), instead of random ones. */
  values?: Float32Array;
  /** Write pointer of `values`. @default 0 */
  pointer?: number;
  /** Where the values live. @default a plain Float32Array */
  storage?: QueueStorage;
}

/** Serialisable state of a {@link MemoryQueue}: its values and write pointer. */
export interface MemoryQueueState {
  kind: 'compress/memory-queue';
  version: 1;
  size: number;
  dim: number;
  pointer: number;
  /** K·D row-major values (a copy). */
  values: Float32Array;
}

/** {@link MemoryQueueState} as JSON: the values as base64 of little-endian float32. */
export interface MemoryQueueJSON extends Omit<MemoryQueueState, 'values'> {
  values: string;
}

const KIND = 'compress/memory-queue';
/** Version of {@link MemoryQueueState} and of its JSON form. */
const VERSION = 1;
const MAGIC = 0x5153_4d43; // "CMSQ" little-endian
/**
 * Version of the binary form ({@link MemoryQueue.serialize}): 3 is the compress container; the
 * "CMSQ" layouts of versions 2 (CRC-32 checksums) and 1 (none, read unverified) are still read.
 */
const BINARY_VERSION = 3;
const LEGACY_VERSION = 2;
const BINARY_VERSION_1 = 1;
/** Largest queue `toJSON` encodes (base64 strings beyond this approach V8's string limit). */
const JSON_MAX_BYTES = 256 * 2 ** 20;

/**
 * The memory queue of CompRess (and MoCo's `_dequeue_and_enqueue`): K rows of dimension D used as
 * anchor points, written as a ring buffer. Each step writes its B rows at the write pointer (wrapping
 * around; K need not be a multiple of B) and advances the pointer by B modulo K, so the oldest rows
 * are overwritten first.
 *
 * @see https://arxiv.org/abs/2010.14713 (CompRess, Abbasi Koohpayegani et al., NeurIPS 2020)
 */
export class MemoryQueue {
  /** K. */
  readonly size: number;
  /** D. */
  readonly dim: number;
  private ptr: number;
  private store: QueueStorage | null;

  private constructor(size: number, dim: number, pointer: number, storage: QueueStorage) {
    this.size = size;
    this.dim = dim;
    this.ptr = pointer;
    this.store = storage;
  }

  /** A queue with random initial values (from `seed` or `rng`) or the given `values`. */
  static create(options: MemoryQueueOptions): MemoryQueue {
    const { size, dim } = options;
    checkSize(size, dim);
    const pointer = options.pointer ?? 0;
    if (!Number.isInteger(pointer) || pointer < 0 || pointer >= size) {
      throw new CompressError(
        'INVALID_ARGUMENT',
        `pointer must be an integer in [0, ${size}), got ${pointer}`,
        {
          input: 'pointer',
        },
      );
    }
    if (options.values !== undefined && options.values.length !== size * dim) {
      throw new CompressError(
        'SHAPE_MISMATCH',
        `values: expected K·D = ${size}·${dim} = ${size * dim} floats, found ${options.values.length}`,
        { input: 'values' },
      );
    }
    const storage = options.storage ?? jsStorage(size * dim, `queue ${size}×${dim}`);
    if (storage.length !== size * dim) {
      throw new CompressError(
        'SHAPE_MISMATCH',
        `storage: expected ${size * dim} floats, found ${storage.length}`,
        { input: 'storage' },
      );
    }
    const queue = new MemoryQueue(size, dim, pointer, storage);
    if (options.values !== undefined) storage.view().set(options.values);
    else {
      const rng = options.rng ?? new Rng(options.seed ?? 0);
      const stdv = 1 / Math.sqrt(dim / 3);
      rng.fillUniform(storage.view(), -stdv, stdv);
    }
    return queue;
  }

  /** Restores a queue from {@link MemoryQueue.state} (or its JSON form), exactly. */
  static restore(state: MemoryQueueState | MemoryQueueJSON, storage?: QueueStorage): MemoryQueue {
    checkState(state);
    const values = typeof state.values === 'string' ? fromBase64(state.values) : state.values;
    return MemoryQueue.create({
      size: state.size,
      dim: state.dim,
      pointer: state.pointer,
      values,
      ...(storage === undefined ? {} : { storage }),
    });
  }

  /**
   * Restores a queue from {@link MemoryQueue.serialize}, checking its checksums (bytes of version 1,
   * which have none, are read unverified). `source` names the bytes (their file) in messages; a
   * section whose checksum does not match (`header` or `values`) is a CORRUPT_INPUT error naming it.
   */
  static deserialize(bytes: Uint8Array, storage?: QueueStorage, source?: string): MemoryQueue {
    const name = source ?? 'serialised memory queue';
    if (isContainer(bytes)) {
      const { header, section } = decodeContainer(bytes, name, {
        kind: KIND,
        versions: [BINARY_VERSION],
        what: 'serialised memory queue',
        reader: '@compress/losses',
      });
      const data = section('values');
      const size = header.size as number;
      const dim = header.dim as number;
      if (data === undefined || data.byteLength !== size * dim * 4) {
        throw new CompressError(
          'CORRUPT_INPUT',
          `${name}: not a serialised memory queue: expected a section 'values' of ${size * dim * 4} bytes`,
          { input: source ?? 'bytes' },
        );
      }
      return MemoryQueue.restore(
        {
          kind: KIND,
          version: VERSION,
          size,
          dim,
          pointer: header.pointer as number,
          values: float32Section(data),
        },
        storage,
      );
    }
    return MemoryQueue.deserializeLegacy(bytes, storage, source);
  }

  /** Reads the "CMSQ" layouts of versions 1 and 2 (see the package README). */
  private static deserializeLegacy(bytes: Uint8Array, storage?: QueueStorage, source?: string): MemoryQueue {
    const name = source ?? 'serialised memory queue';
    const input = source ?? 'bytes';
    const prefix = source === undefined ? '' : `${source}: `;
    const fail = (why: string): never => {
      throw new CompressError('CORRUPT_INPUT', `${prefix}not a serialised memory queue: ${why}`, { input });
    };
    if (bytes.byteLength < 8) fail(`only ${bytes.byteLength} bytes`);
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (dv.getUint32(0, true) !== MAGIC) fail('wrong magic number');
    const headerLength = dv.getUint32(4, true);
    const headEnd = align4(8 + headerLength);
    if (headEnd > bytes.byteLength) fail('truncated header');
    // version 2: the checksum of the values, then that of everything before it
    const stored = headEnd + 8 <= bytes.byteLength ? dv.getUint32(headEnd + 4, true) : undefined;
    const computed = stored === undefined ? 0 : crc32(bytes.subarray(0, headEnd + 4));
    const verified = stored === computed;
    let header: Omit<MemoryQueueJSON, 'values'> | undefined;
    let parseError: unknown;
    try {
      header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength)));
    } catch (cause) {
      parseError = cause;
    }
    // Version 1 has no checksum words: the bytes after its header are values.
    const legacy = !verified && header?.kind === KIND && (header.version as number) === BINARY_VERSION_1;
    if (!verified && !legacy) {
      const version = header?.kind === KIND ? (header.version as number) : undefined;
      if (typeof version === 'number' && version > LEGACY_VERSION) {
        throw new CompressError(
          'UNSUPPORTED',
          `${prefix}a serialised memory queue of version ${version} in the "CMSQ" layout, this version of @compress/losses reads versions ${BINARY_VERSION_1} and ${LEGACY_VERSION} of that layout and version ${BINARY_VERSION} in the compress container (or the bytes are damaged)`,
          { input },
        );
      }
      if (stored !== undefined) throw checksumError(name, 'header', stored, computed);
      if (header?.kind === KIND)
        fail("truncated header (the bytes end before the checksum of section 'header')");
    }
    if (header === undefined) {
      throw new CompressError('CORRUPT_INPUT', `${prefix}not a serialised memory queue: unreadable header`, {
        input,
        cause: parseError,
      });
    }
    if (!legacy && (header.version as number) !== LEGACY_VERSION) {
      throw new CompressError(
        'MISMATCH',
        `${prefix}serialised memory queue version ${header.version} is not supported (expected ${BINARY_VERSION_1} or ${LEGACY_VERSION})`,
        { input },
      );
    }
    const dataStart = legacy ? headEnd : headEnd + 8;
    const n = header.size * header.dim;
    if (bytes.byteLength - dataStart !== n * 4) {
      fail(`expected ${n * 4} bytes of values after the header, found ${bytes.byteLength - dataStart}`);
    }
    const data = bytes.subarray(dataStart, dataStart + n * 4);
    if (!legacy) verifySection(name, 'values', data, dv.getUint32(headEnd, true));
    const values = new Float32Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
    return MemoryQueue.restore({ ...header, version: VERSION, values } as MemoryQueueState, storage);
  }

  /**
   * Loads a {@link MemoryQueue.state} (or its JSON form) into this queue, values and pointer, in
   * place; the state must have this queue's K and D.
   */
  load(state: MemoryQueueState | MemoryQueueJSON): void {
    checkState(state);
    if (state.size !== this.size || state.dim !== this.dim) {
      throw new CompressError(
        'MISMATCH',
        `memory queue state is ${state.size}×${state.dim}, this queue is ${this.size}×${this.dim}`,
        { input: 'state' },
      );
    }
    const values = typeof state.values === 'string' ? fromBase64(state.values) : state.values;
    if (!(values instanceof Float32Array) || values.length !== this.size * this.dim) {
      throw new CompressError(
        'SHAPE_MISMATCH',
        `memory queue state: expected ${this.size * this.dim} float32 values, found ${values?.length}`,
        { input: 'state.values' },
      );
    }
    if (!Number.isInteger(state.pointer) || state.pointer < 0 || state.pointer >= this.size) {
      throw new CompressError(
        'CORRUPT_INPUT',
        `memory queue state: pointer must be an integer in [0, ${this.size}), found ${state.pointer}`,
        { input: 'state.pointer' },
      );
    }
    this.values().set(values);
    this.ptr = state.pointer;
  }

  /** The write pointer: the row the next enqueue writes first. */
  get pointer(): number {
    return this.ptr;
  }

  /** Where the values live. */
  get storage(): QueueStorage {
    return this.live();
  }

  /**
   * A live row-major view of the K·D values. For wasm storage it is invalidated when the heap
   * grows: use it at once, never keep it.
   */
  values(): Float32Array {
    return this.live().view();
  }

  /** Row `k` (a copy). */
  row(k: number): Float32Array {
    if (!Number.isInteger(k) || k < 0 || k >= this.size) {
      throw new CompressError('INVALID_ARGUMENT', `row must be an integer in [0, ${this.size}), got ${k}`, {
        input: 'row',
      });
    }
    return this.values().slice(k * this.dim, (k + 1) * this.dim);
  }

  /**
   * The paper's `dequeue_and_enqueue`: writes the B rows of `rows` (B·D row-major) at rows
   * `(pointer + j) mod K`, advances the pointer by B modulo K, and returns the rows written. Rows are
   * stored as given (CompRess enqueues L2-normalised features). Non-finite values are refused before
   * anything is written.
   */
  enqueue(rows: Float32Array): Int32Array {
    const { size, dim } = this;
    if (rows.length % dim !== 0 || rows.length === 0) {
      throw new CompressError(
        'SHAPE_MISMATCH',
        `enqueue: expected B·${dim} floats (B ≥ 1 rows of the queue's dimension ${dim}), found ${rows.length}`,
        { input: 'rows' },
      );
    }
    const b = rows.length / dim;
    if (b > size) {
      throw new CompressError(
        'INVALID_ARGUMENT',
        `enqueue: a batch of ${b} rows is larger than the queue (K = ${size}); use a queue of at least ${b} rows`,
        { input: 'rows' },
      );
    }
    for (let i = 0; i < rows.length; i++) {
      const v = rows[i]!;
      if (v - v !== 0) {
        throw new CompressError(
          'NON_FINITE',
          `enqueue: row ${Math.floor(i / dim)} has ${v} at column ${i % dim}; expected finite numbers (the queue was not changed)`,
          { input: 'rows' },
        );
      }
    }
    const written = new Int32Array(b);
    const view = this.values();
    const first = Math.min(b, size - this.ptr); // rows before the wrap
    view.set(rows.subarray(0, first * dim), this.ptr * dim);
    if (first < b) view.set(rows.subarray(first * dim), 0);
    for (let j = 0; j < b; j++) written[j] = (this.ptr + j) % size;
    this.ptr = (this.ptr + b) % size;
    return written;
  }

  /** Values (a copy) and pointer, for checkpoints; {@link MemoryQueue.restore} brings it back exactly. */
  state(): MemoryQueueState {
    return {
      kind: KIND,
      version: VERSION,
      size: this.size,
      dim: this.dim,
      pointer: this.ptr,
      values: this.values().slice(),
    };
  }

  /** The state as JSON (values in base64). For queues up to 256 MiB; larger ones use {@link serialize}. */
  toJSON(): MemoryQueueJSON {
    const bytes = this.size * this.dim * 4;
    if (bytes > JSON_MAX_BYTES) {
      throw new CompressError(
        'UNSUPPORTED',
        `toJSON: a ${this.size}×${this.dim} queue (${bytes} bytes) is too large for a JSON string (at most ${JSON_MAX_BYTES} bytes); use serialize() or state()`,
        { input: 'queue' },
      );
    }
    const { values, ...rest } = this.state();
    return { ...rest, values: toBase64(values) };
  }

  /**
   * A self-describing binary form in the compress container (see `@compress/core`), which
   * {@link MemoryQueue.deserialize} reads back exactly: kind "compress/memory-queue", version 3,
   * fields size K, dim D and pointer, and one section 'values' (float32 [K, D], row-major) with its
   * CRC-32. The "CMSQ" layouts of versions 1 and 2 are still read.
   */
  serialize(): Uint8Array {
    return encodeContainerBytes(KIND, BINARY_VERSION, { size: this.size, dim: this.dim, pointer: this.ptr }, [
      { name: 'values', data: this.values(), dtype: 'float32', shape: [this.size, this.dim] },
    ]);
  }

  /** Frees the values (wasm heap memory included). */
  dispose(): void {
    this.store?.dispose();
    this.store = null;
  }

  private live(): QueueStorage {
    if (this.store === null) {
      throw new CompressError('INVALID_ARGUMENT', `this ${this.size}×${this.dim} queue was disposed`, {
        input: 'queue',
      });
    }
    return this.store;
  }
}

function checkSize(size: number, dim: number): void {
  if (!Number.isInteger(size) || size < 1) {
    throw new CompressError('INVALID_ARGUMENT', `queue size K must be a positive integer, got ${size}`, {
      input: 'size',
    });
  }
  if (!Number.isInteger(dim) || dim < 1) {
    throw new CompressError('INVALID_ARGUMENT', `queue dim D must be a positive integer, got ${dim}`, {
      input: 'dim',
    });
  }
}

function checkState(state: MemoryQueueState | MemoryQueueJSON): void {
  if (state === null || typeof state !== 'object' || state.kind !== KIND) {
    throw new CompressError(
      'MISMATCH',
      `not a memory queue state: expected kind '${KIND}', found ${JSON.stringify((state as { kind?: unknown } | null)?.kind)}`,
      { input: 'state' },
    );
  }
  if (state.version !== VERSION) {
    throw new CompressError(
      'MISMATCH',
      `memory queue state version ${state.version} is not supported (expected ${VERSION})`,
      { input: 'state' },
    );
  }
  checkSize(state.size, state.dim);
}

function align4(n: number): number {
  return (n + 3) & ~3;
}

function toBase64(values: Float32Array): string {
  return Buffer.from(values.buffer, values.byteOffset, values.byteLength).toString('base64');
}

function fromBase64(text: string): Float32Array {
  const buf = Buffer.from(text, 'base64');
  return new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
}
