import { Worker } from 'node:worker_threads';
import { CompressError, formatBytes } from '@compress/core';
import { resolveThreads } from '@compress/onnx';
import { clusterWasm } from './cluster-wasm.js';

/**
 * The compute engine of @compress/cluster: the WebAssembly SIMD kernels of `cluster.c`, one shared
 * memory per operation (a {@link Workspace}), and a pool of worker threads that run kernel calls
 * on that memory in parallel. The main thread only copies rows in and results out.
 */

// The WebAssembly global: its types live in the DOM lib, which this package does not load.
interface WasmMemory {
  readonly buffer: SharedArrayBuffer;
  grow(pages: number): number;
}
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: unknown };
  Memory: new (descriptor: { initial: number; maximum: number; shared: boolean }) => WasmMemory;
}
const WA = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

/** The kernels' exports; pointers are byte offsets into the workspace memory. */
export interface Kernels {
  normalize_rows(x: number, r0: number, r1: number, d: number): void;
  pack_panels(src: number, n: number, d: number, dst: number, norms: number, p0: number, p1: number): void;
  knn_search(
    q: number,
    q0: number,
    q1: number,
    d: number,
    panels: number,
    norms: number,
    p0: number,
    p1: number,
    nb: number,
    idx0: number,
    k: number,
    hs: number,
    hi: number,
    block: number,
    l2: number,
  ): void;
  heap_init(hs: number, hi: number, count: number): void;
  kmeans_accumulate(
    x: number,
    r0: number,
    r1: number,
    d: number,
    c: number,
    assign: number,
    prev: number,
    sums: number,
    counts: number,
    dist: number,
    out: number,
  ): void;
  min_sqdist(x: number, r0: number, r1: number, d: number, c: number, mind: number, out: number): number;
  cumsum_find(w: number, r0: number, r1: number, target: number): number;
}

/** One kernel call: the export's name and its arguments. */
export type Call = { [K in keyof Kernels]: [K, ...Parameters<Kernels[K]>] }[keyof Kernels];

const PAGE = 65536;
const MAX_PAGES = 65536; // 4 GiB: the wasm32 limit
/** The linker reserves the first pages for a C stack the kernels never use; allocations start above. */
const HEAP_BASE = 2 * PAGE;
/** Work (multiply-adds) below which a call batch runs on the calling thread: a worker round trip costs more. */
const INLINE_WORK = 4e6;

let compiled: object | null = null;
function wasmModule(): object {
  compiled ??= new WA.Module(Buffer.from(clusterWasm, 'base64'));
  return compiled;
}

/** `threads` when an operation does not say: 0, one per core (as faiss, which uses every core). */
export function defaultThreads(): number {
  return 0;
}

/** `threads` as a count (0 = one per core, as everywhere in compress), or INVALID_ARGUMENT. */
export function checkThreads(threads: number, fn: string): number {
  return resolveThreads(threads, `${fn}: options.threads`);
}

let nextWorkspaceId = 1;
/** Bytes held by the most recently opened workspace at its largest (for tests and progress events). */
let lastPeakBytes = 0;

/**
 * The memory of one operation (a k-NN search, a k-means run): a shared WebAssembly memory with a
 * bump allocator, the kernels instantiated on it for the calling thread, and the worker pool that
 * runs call batches on it. `close()` releases it everywhere.
 */
export class Workspace {
  readonly id = nextWorkspaceId++;
  readonly memory: WasmMemory;
  readonly kernels: Kernels;
  readonly threads: number;
  private top = HEAP_BASE;

  constructor(bytes: number, threads: number) {
    const pages = Math.ceil((HEAP_BASE + bytes) / PAGE);
    if (pages > MAX_PAGES) {
      throw new CompressError(
        'OUT_OF_MEMORY',
        `cluster engine: an operation needs ${formatBytes(bytes)} of working memory, more than the 4 GiB a WebAssembly memory can hold; lower options.blockBytes`,
        { input: 'blockBytes' },
      );
    }
    try {
      this.memory = new WA.Memory({ initial: pages, maximum: MAX_PAGES, shared: true });
    } catch (cause) {
      throw new CompressError(
        'OUT_OF_MEMORY',
        `cluster engine: cannot allocate ${formatBytes(pages * PAGE)} of working memory (${String(cause)}); lower options.blockBytes`,
        { input: 'blockBytes', cause },
      );
    }
    this.kernels = new WA.Instance(wasmModule(), { env: { memory: this.memory } }).exports as Kernels;
    this.threads = threads;
    lastPeakBytes = pages * PAGE;
  }

  /** Bytes of memory held now. */
  get bytes(): number {
    return this.memory.buffer.byteLength;
  }

  /** Reserves `bytes` (64-byte aligned, zero on first use), growing the memory when needed; returns the offset. */
  alloc(bytes: number): number {
    const at = this.top;
    const end = at + Math.ceil(bytes / 64) * 64;
    if (end > this.memory.buffer.byteLength) {
      const need = Math.ceil((end - this.memory.buffer.byteLength) / PAGE);
      if (this.memory.buffer.byteLength / PAGE + need > MAX_PAGES) {
        throw new CompressError(
          'OUT_OF_MEMORY',
          `cluster engine: working memory would exceed 4 GiB (${formatBytes(end)}); lower options.blockBytes`,
          { input: 'blockBytes' },
        );
      }
      this.memory.grow(need);
      lastPeakBytes = Math.max(lastPeakBytes, this.memory.buffer.byteLength);
    }
    this.top = end;
    return at;
  }

  f32(ptr: number, length: number): Float32Array {
    return new Float32Array(this.memory.buffer, ptr, length);
  }
  i32(ptr: number, length: number): Int32Array {
    return new Int32Array(this.memory.buffer, ptr, length);
  }
  f64(ptr: number, length: number): Float64Array {
    return new Float64Array(this.memory.buffer, ptr, length);
  }

  /**
   * Runs every batch (calls executed in order by one thread) and returns each batch's results.
   * Batches are independent and may run in any order, in parallel on the worker pool when there is
   * more than one thread and enough `work` (multiply-adds in all) to pay for the round trips; on the
   * calling thread otherwise.
   */
  async run(batches: Call[][], work: number): Promise<number[][]> {
    if (this.threads === 1 || batches.length === 1 || work < INLINE_WORK) {
      return batches.map((calls) => this.runHere(calls));
    }
    return pool(this.threads).run(this, batches);
  }

  /** Runs calls on the calling thread. */
  runHere(calls: Call[]): number[] {
    const k = this.kernels as unknown as Record<string, (...args: number[]) => number | undefined>;
    return calls.map(([fn, ...args]) => k[fn]!(...args) ?? 0);
  }

  close(): void {
    pools.get(this.threads)?.forget(this.id);
  }
}

/** The largest working memory (bytes) of the most recent operation, for tests of the memory bound. */
export function lastWorkspacePeakBytes(): number {
  return lastPeakBytes;
}

// ---------------------------------------------------------------------------------------------
// Worker pool

// The worker: instantiates the module on each workspace's memory once, then runs call batches.
const workerSource = `
const { parentPort, workerData } = require('node:worker_threads');
const instances = new Map();
parentPort.on('message', (msg) => {
  if (msg.forget !== undefined) { instances.delete(msg.forget); return; }
  let k = instances.get(msg.ws);
  if (k === undefined) {
    k = new WebAssembly.Instance(workerData.module, { env: { memory: msg.memory } }).exports;
    instances.set(msg.ws, k);
  }
  try {
    const results = msg.calls.map(([fn, ...args]) => k[fn](...args) ?? 0);
    parentPort.postMessage({ id: msg.id, results });
  } catch (error) {
    parentPort.postMessage({ id: msg.id, error: String((error && error.stack) || error) });
  }
});
`;

interface Pending {
  resolve: (results: number[]) => void;
  reject: (error: Error) => void;
}

class WorkerSlot {
  readonly worker: Worker;
  readonly known = new Set<number>();
  readonly pending = new Map<number, Pending>();
  private nextId = 1;
  dead: Error | null = null;

  constructor(onDeath: (slot: WorkerSlot) => void) {
    this.worker = new Worker(workerSource, { eval: true, workerData: { module: wasmModule() } });
    this.worker.unref();
    this.worker.on('message', (msg: { id: number; results?: number[]; error?: string }) => {
      const p = this.pending.get(msg.id);
      if (p === undefined) return;
      this.pending.delete(msg.id);
      if (this.pending.size === 0) this.worker.unref();
      if (msg.error !== undefined) {
        p.reject(
          new CompressError(
            'BACKEND_UNAVAILABLE',
            `cluster engine: a kernel failed in a worker: ${msg.error}`,
          ),
        );
      } else p.resolve(msg.results ?? []);
    });
    const die = (error: Error) => {
      this.dead = error;
      for (const p of this.pending.values()) p.reject(error);
      this.pending.clear();
      onDeath(this);
    };
    this.worker.on('error', (cause) =>
      die(
        new CompressError('BACKEND_UNAVAILABLE', `cluster engine: a worker thread failed: ${String(cause)}`, {
          cause,
        }),
      ),
    );
    this.worker.on('exit', (code) => {
      if (this.dead === null)
        die(
          new CompressError('BACKEND_UNAVAILABLE', `cluster engine: a worker thread exited (code ${code})`),
        );
    });
  }

  call(ws: Workspace, calls: Call[]): Promise<number[]> {
    if (this.dead !== null) return Promise.reject(this.dead);
    const id = this.nextId++;
    const first = !this.known.has(ws.id);
    this.known.add(ws.id);
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      // A pending call keeps the process alive; an idle pool does not.
      this.worker.ref();
      this.worker.postMessage(first ? { id, ws: ws.id, memory: ws.memory, calls } : { id, ws: ws.id, calls });
    });
  }
}

class Pool {
  private slots: WorkerSlot[] = [];

  constructor(readonly size: number) {}

  private slot(i: number): WorkerSlot {
    let s = this.slots[i];
    if (s === undefined || s.dead !== null) {
      s = new WorkerSlot((dead) => {
        const at = this.slots.indexOf(dead);
        if (at >= 0) this.slots[at] = undefined as unknown as WorkerSlot;
      });
      this.slots[i] = s;
    }
    return s;
  }

  /** Runs the batches over the workers, each taking the next batch when it finishes one. */
  async run(ws: Workspace, batches: Call[][]): Promise<number[][]> {
    const results: number[][] = new Array(batches.length);
    let next = 0;
    const lanes: Promise<void>[] = [];
    for (let w = 0; w < Math.min(this.size, batches.length); w++) {
      const slot = this.slot(w);
      lanes.push(
        (async () => {
          for (;;) {
            const b = next++;
            if (b >= batches.length) return;
            results[b] = await slot.call(ws, batches[b]!);
          }
        })(),
      );
    }
    await Promise.all(lanes);
    return results;
  }

  forget(ws: number): void {
    for (const s of this.slots) {
      if (s !== undefined && s.dead === null && s.known.delete(ws)) s.worker.postMessage({ forget: ws });
    }
  }
}

const pools = new Map<number, Pool>();
function pool(threads: number): Pool {
  let p = pools.get(threads);
  if (p === undefined) {
    p = new Pool(threads);
    pools.set(threads, p);
  }
  return p;
}

/**
 * Splits a…b into consecutive pieces of `step` (a multiple of `align`). Kernel calls are kept short
 * (a few milliseconds) by issuing one call per piece: V8 first runs WebAssembly with its baseline
 * compiler and switches a function to optimised code only for calls that start after the switch,
 * so a single long first call would run 4–5× slower from start to end.
 */
export function chunks(a: number, b: number, step: number, align = 1): [number, number][] {
  const s = Math.max(align, Math.floor(step / align) * align);
  const out: [number, number][] = [];
  for (let x = a; x < b; x += s) out.push([x, Math.min(b, x + s)]);
  return out;
}

/** Multiply-adds per kernel call aimed at by {@link chunks}: a few milliseconds of work. */
export const CALL_WORK = 6e7;

/** Splits 0…n into about `parts` contiguous ranges whose bounds are multiples of `align`. */
export function splitRange(n: number, parts: number, align = 1): [number, number][] {
  const out: [number, number][] = [];
  const units = Math.ceil(n / align);
  const count = Math.max(1, Math.min(parts, units));
  for (let i = 0; i < count; i++) {
    const a = Math.min(n, Math.floor((units * i) / count) * align);
    const b = Math.min(n, Math.floor((units * (i + 1)) / count) * align);
    if (b > a) out.push([a, b]);
  }
  return out;
}
