import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { CompressError, type Dataset, type ErrorCode, type ImageTransform } from '@compress/core';
import { newBatchArray } from './datasets/jpeg-native.js';
import type { DatasetSpec } from './datasets/spec.js';
import { epochOrder, type LoaderBatch, loadBatch } from './pipeline.js';
import { buildTransform } from './transforms/compose.js';
import { asTransform, type Transform, type TransformSpec } from './transforms/transform.js';
import type { WorkerData, WorkerReply, WorkerRequest } from './worker-protocol.js';

export interface LoaderOptions {
  /** Images per batch. @default 256 — the paper's batch size. */
  batchSize?: number;
  /** Visit the dataset in a fresh random order every epoch. @default true */
  shuffle?: boolean;
  /** Seed of the order and of every augmentation. @default 0 */
  seed?: number;
  /** Leave out the last, smaller batch of an epoch. @default false — as torchvision's DataLoader. */
  dropLast?: boolean;
  /**
   * Per-image transform: one of this package's transforms (or a `compose` of them), a
   * {@link TransformSpec}, or a plain `(image, rng) => image` function (main thread only).
   * Images must all have one size after it.
   * @default null — images as stored.
   */
  transform?: Transform | ImageTransform | TransformSpec | null;
  /**
   * Worker threads that decode and augment (0: on the main thread). Needs a dataset with a `spec`
   * and a transform with a spec; the default falls back to 0 when either is missing.
   * @default min(4, cores − 1), at least 1 — one core stays with the training loop.
   */
  workers?: number;
  /**
   * Batches requested ahead per worker (with 0 workers: batches prepared ahead on the main
   * thread) — torchvision's `prefetch_factor`.
   * @default 2
   */
  prefetch?: number;
  /**
   * Images decoded at once per worker for datasets that decode asynchronously (ImageFolder):
   * sharp decodes on libuv's thread pool, so one worker can keep more than one core busy.
   * @default 2 — measured on 2 cores: 2–4 give the same throughput, more only adds contention.
   */
  concurrency?: number;
  /** Epoch that iterating the loader itself yields. @default 0 */
  epoch?: number;
  /** First step of that epoch (to resume a run). @default 0 */
  startStep?: number;
  /**
   * Visit only these dataset indices (a training subset); every epoch is a permutation of them.
   * Batches keep the dataset's own indices, so feature caches still line up.
   * @default null — the whole dataset
   */
  indices?: ArrayLike<number> | null;
}

export type ResolvedLoaderOptions = Required<Omit<LoaderOptions, 'transform' | 'indices'>> & {
  transform: Transform | TransformSpec | null;
  indices: Int32Array | null;
};

export const defaultLoaderOptions = {
  batchSize: 256,
  shuffle: true,
  seed: 0,
  dropLast: false,
  transform: null,
  prefetch: 2,
  concurrency: 2,
  epoch: 0,
  startStep: 0,
  indices: null,
} as const;

/** Default worker count: every core but one, at most 4, at least 1. */
export function defaultWorkers(): number {
  return Math.max(1, Math.min(4, availableParallelism() - 1));
}

/**
 * Batches of a dataset, epoch by epoch. Each epoch visits every index exactly once in a seeded
 * random order; the augmentation of a sample depends only on `(seed, epoch, index)` (see
 * `augmentationRng`), so the batches are identical for any number of workers and when an epoch
 * starts at a later step. Decoding and augmentation run in worker threads.
 *
 * ```ts
 * const loader = createLoader(dataset, { batchSize: 256, transform, seed: 1 });
 * for (let epoch = 0; epoch < 10; epoch++)
 *   for await (const batch of loader.iterate({ epoch })) train(batch);
 * await loader.close();
 * ```
 */
export class Loader implements AsyncIterable<LoaderBatch> {
  readonly dataset: Dataset;
  readonly options: ResolvedLoaderOptions;
  /** Batches in one epoch. */
  readonly stepsPerEpoch: number;
  private transform: Promise<Transform | null> | undefined;
  private pool: WorkerPool | undefined;
  private closed = false;
  /** Batches this loader yielded and that were not released yet. */
  private readonly yielded = new WeakSet<LoaderBatch>();
  private readonly buffers = new BufferPool();

  constructor(dataset: Dataset, options: LoaderOptions = {}) {
    if (!dataset || typeof dataset.get !== 'function' || !Number.isInteger(dataset.length)) {
      throw new CompressError(
        'INVALID_ARGUMENT',
        'createLoader: expected a Dataset (an object with length and get(index))',
        {
          input: 'dataset',
        },
      );
    }
    const given = Object.fromEntries(
      Object.entries(options).filter(([, v]) => v !== undefined),
    ) as LoaderOptions;
    const raw = given.transform ?? null;
    const transform =
      raw === null ? null : typeof raw === 'function' ? asTransform(raw) : (raw as TransformSpec);
    const transformSpec =
      transform === null ? null : typeof transform === 'function' ? transform.spec : transform;
    const spec = (dataset as { spec?: DatasetSpec }).spec;
    const canUseWorkers = spec !== undefined && (transform === null || transformSpec !== null);
    const workers = given.workers ?? (canUseWorkers ? defaultWorkers() : 0);
    const indices = given.indices == null ? null : Int32Array.from(given.indices);
    const o: ResolvedLoaderOptions = { ...defaultLoaderOptions, ...given, workers, transform, indices };
    if (indices !== null) {
      const bad = indices.findIndex((i) => i < 0 || i >= dataset.length);
      if (bad >= 0 || indices.length === 0) {
        throw new CompressError(
          'INVALID_ARGUMENT',
          indices.length === 0
            ? 'createLoader: indices is empty; expected at least one dataset index'
            : `createLoader: indices[${bad}] = ${indices[bad]} is outside dataset ${dataset.name} (0…${dataset.length - 1})`,
          { input: 'indices' },
        );
      }
    }
    positiveInt(o.batchSize, 'batchSize');
    positiveInt(o.prefetch, 'prefetch');
    positiveInt(o.concurrency, 'concurrency');
    nonNegativeInt(o.workers, 'workers');
    nonNegativeInt(o.epoch, 'epoch');
    if (!Number.isFinite(o.seed)) {
      throw new CompressError(
        'INVALID_ARGUMENT',
        `createLoader: seed must be a finite number, got ${o.seed}`,
        { input: 'seed' },
      );
    }
    if (dataset.length === 0) {
      throw new CompressError('INVALID_ARGUMENT', `createLoader: dataset ${dataset.name} is empty`, {
        input: 'dataset',
      });
    }
    const visited = indices?.length ?? dataset.length;
    this.stepsPerEpoch = o.dropLast ? Math.floor(visited / o.batchSize) : Math.ceil(visited / o.batchSize);
    if (this.stepsPerEpoch === 0) {
      throw new CompressError(
        'INVALID_ARGUMENT',
        `createLoader: dataset ${dataset.name} has ${visited} samples${indices ? ' in indices' : ''}, fewer than batchSize ${o.batchSize} with dropLast: an epoch would have no batches`,
        { input: 'batchSize' },
      );
    }
    checkStartStep(o.startStep, this.stepsPerEpoch);
    if (o.workers > 0 && spec === undefined) {
      throw new CompressError(
        'INVALID_ARGUMENT',
        `createLoader: workers: ${o.workers} needs a dataset that worker threads can reopen, but ${dataset.name} has no \`spec\`; open it with moduleDataset(url, exportName, options), or use workers: 0`,
        { input: 'workers' },
      );
    }
    if (o.workers > 0 && transform !== null && transformSpec === null) {
      throw new CompressError(
        'INVALID_ARGUMENT',
        `createLoader: workers: ${o.workers} needs a transform that worker threads can rebuild, but the transform (or a part of it) is a plain function; build it from this package's transforms and moduleTransform(url, exportName, options), or use workers: 0`,
        { input: 'transform' },
      );
    }
    this.dataset = dataset;
    this.options = o;
  }

  /** Iterates epoch `options.epoch` from `options.startStep`. */
  [Symbol.asyncIterator](): AsyncIterator<LoaderBatch> {
    return this.iterate()[Symbol.asyncIterator]();
  }

  /** The batches of one epoch, from `startStep` on, in step order. */
  async *iterate(at: { epoch?: number; startStep?: number } = {}): AsyncGenerator<LoaderBatch> {
    if (this.closed) {
      throw new CompressError('INVALID_ARGUMENT', 'Loader: iterate() after close()', { input: 'loader' });
    }
    const epoch = at.epoch ?? this.options.epoch;
    const startStep = at.startStep ?? (at.epoch === undefined ? this.options.startStep : 0);
    nonNegativeInt(epoch, 'epoch');
    checkStartStep(startStep, this.stepsPerEpoch);
    const { batchSize, seed, shuffle, workers, prefetch } = this.options;
    const subset = this.options.indices;
    const permutation = epochOrder(subset?.length ?? this.dataset.length, seed, epoch, shuffle);
    const order = subset ? permutation.map((i) => subset[i]!) : permutation;
    const request = this.requester();
    const window = Math.max(1, workers) * prefetch;
    const pending = new Map<number, Promise<LoaderBatch>>();
    let ahead = startStep;
    try {
      for (let step = startStep; step < this.stepsPerEpoch; step++) {
        for (; ahead < this.stepsPerEpoch && ahead - step < window; ahead++) {
          const indices = order.slice(ahead * batchSize, Math.min((ahead + 1) * batchSize, order.length));
          const p = request(epoch, ahead, indices);
          p.catch(() => {}); // awaited in turn below; abandoned ones must not warn
          pending.set(ahead, p);
        }
        const batch = await pending.get(step)!;
        pending.delete(step);
        this.yielded.add(batch);
        yield batch;
      }
    } finally {
      pending.clear();
    }
  }

  /**
   * Hands a batch's image array back for a later batch to be written into, once the batch is no
   * longer needed (e.g. after it was copied into a tensor). A batch of 256 RGB images at 224×224 is
   * 154 MB; writing into memory the process already touched saves the page faults of fresh memory
   * (one per 4 KiB, or per 2 MiB where huge pages are advised), which cost more than decoding the
   * images on a virtual machine. Afterwards `batch.images` is detached (length 0),
   * so a stray later read finds nothing instead of another batch's pixels. Optional: a batch that
   * is never released is simply garbage collected.
   */
  release(batch: LoaderBatch): void {
    if (!this.yielded.has(batch)) {
      throw new CompressError(
        'INVALID_ARGUMENT',
        `Loader.release: the batch (epoch ${batch?.epoch}, step ${batch?.step}) was not yielded by this loader, or was released already`,
        { input: 'batch' },
      );
    }
    this.yielded.delete(batch);
    this.buffers.give(batch);
  }

  /** Stops the worker threads. The loader cannot be iterated afterwards. */
  async close(): Promise<void> {
    this.closed = true;
    this.buffers.clear();
    await this.pool?.close();
    this.pool = undefined;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  private requester(): (epoch: number, step: number, indices: Int32Array) => Promise<LoaderBatch> {
    const { seed, workers, concurrency } = this.options;
    const buffers = this.buffers;
    if (workers === 0) {
      this.transform ??= resolveTransform(this.options.transform);
      return async (epoch, step, indices) =>
        loadBatch(this.dataset, await this.transform!, seed, epoch, step, indices, concurrency, (length) => {
          const spare = buffers.take(indices.length);
          if (spare !== null && spare.byteLength === length * 4) return new Float32Array(spare);
          if (spare !== null) buffers.keep(spare);
          return newBatchArray(length);
        });
    }
    const t = this.options.transform;
    this.pool ??= new WorkerPool(workers, {
      dataset: (this.dataset as unknown as { spec: DatasetSpec }).spec,
      transform: t === null ? null : typeof t === 'function' ? t.spec : t,
      concurrency,
    });
    const pool = this.pool;
    return (epoch, step, indices) =>
      pool.run({ seed, epoch, step, indices, spare: buffers.take(indices.length) }, buffers);
  }
}

async function resolveTransform(t: Transform | TransformSpec | null): Promise<Transform | null> {
  if (t === null) return null;
  return typeof t === 'function' ? t : buildTransform(t);
}

/** Creates a {@link Loader} (see {@link LoaderOptions}). */
export function createLoader(dataset: Dataset, options: LoaderOptions = {}): Loader {
  return new Loader(dataset, options);
}

function positiveInt(v: number, name: string): void {
  if (!Number.isInteger(v) || v < 1) {
    throw new CompressError(
      'INVALID_ARGUMENT',
      `createLoader: ${name} must be a positive integer, got ${v}`,
      { input: name },
    );
  }
}

function nonNegativeInt(v: number, name: string): void {
  if (!Number.isInteger(v) || v < 0) {
    throw new CompressError('INVALID_ARGUMENT', `createLoader: ${name} must be an integer ≥ 0, got ${v}`, {
      input: name,
    });
  }
}

function checkStartStep(startStep: number, steps: number): void {
  if (!Number.isInteger(startStep) || startStep < 0 || startStep > steps) {
    throw new CompressError(
      'INVALID_ARGUMENT',
      `createLoader: startStep must be an integer in 0…${steps} (steps per epoch), got ${startStep}`,
      { input: 'startStep' },
    );
  }
}

/** Where the compiled worker script is: beside this module in dist, or dist/ when running from src. */
function workerUrl(): URL {
  const here = new URL('./worker.js', import.meta.url);
  if (existsSync(fileURLToPath(here))) return here;
  const built = new URL('../dist/worker.js', import.meta.url);
  if (existsSync(fileURLToPath(built))) return built;
  throw new CompressError(
    'BACKEND_UNAVAILABLE',
    `createLoader: the worker script ${fileURLToPath(here)} is missing; build @compress/data (pnpm --filter @compress/data build) or use workers: 0`,
    { input: 'workers' },
  );
}

/**
 * Image buffers of released batches, most recent first, for the next batches to be written into
 * (each moved out of the released batch's array, so the array cannot see later pixels).
 */
class BufferPool {
  private readonly free: ArrayBuffer[] = [];
  /** Bytes of one sample's images, learnt from released batches (0: not yet known). */
  private bytesPerSample = 0;

  /** Keeps `batch.images`' buffer; `batch.images` is detached. */
  give(batch: LoaderBatch): void {
    const buffer = batch.images.buffer as ArrayBuffer;
    if (buffer.byteLength === 0) return; // detached already
    this.bytesPerSample = buffer.byteLength / batch.shape[0];
    this.keep(structuredClone(buffer, { transfer: [buffer] }));
  }

  /**
   * A kept buffer for a batch of `samples` samples: one of exactly the right size when the sample
   * size is known, else the most recent one; null if none.
   */
  take(samples: number): ArrayBuffer | null {
    const bytes = this.bytesPerSample * samples;
    for (let i = this.free.length - 1; i >= 0; i--) {
      if (bytes === 0 || this.free[i]!.byteLength === bytes) return this.free.splice(i, 1)[0]!;
    }
    return null;
  }

  /** Keeps a buffer (a released batch's, or one a worker did not use), at most 8. */
  keep(buffer: ArrayBuffer): void {
    this.free.push(buffer);
    if (this.free.length > 8) this.free.shift();
  }

  /** Lets every kept buffer go (the loader closes). */
  clear(): void {
    this.free.length = 0;
  }
}

interface Slot {
  worker: Worker;
  inflight: Map<
    number,
    { resolve: (b: LoaderBatch) => void; reject: (e: unknown) => void; buffers: BufferPool }
  >;
}

/** A fixed set of loader worker threads; each request goes to the least busy one. */
class WorkerPool {
  private readonly slots: Slot[];
  private nextId = 0;
  private failure: Error | null = null;

  constructor(size: number, data: WorkerData) {
    const url = workerUrl();
    this.slots = Array.from({ length: size }, () => {
      const worker = new Worker(url, { workerData: data });
      const slot: Slot = { worker, inflight: new Map() };
      worker.unref(); // only in-flight requests keep the process alive
      worker.on('message', (reply: WorkerReply) => {
        const task = slot.inflight.get(reply.id);
        if (!task) return;
        slot.inflight.delete(reply.id);
        if (slot.inflight.size === 0) worker.unref();
        if (reply.spare) task.buffers.keep(reply.spare);
        if (reply.type === 'batch') task.resolve(reply.batch);
        else {
          const e = new CompressError(
            (reply.error.code as ErrorCode | undefined) ?? 'IO',
            reply.error.message,
            {
              ...(reply.error.input === undefined ? {} : { input: reply.error.input }),
            },
          );
          if (reply.error.stack) e.stack = `${e.stack}\n    --- in loader worker ---\n${reply.error.stack}`;
          task.reject(e);
        }
      });
      const fail = (error: Error) => {
        this.failure ??= error;
        for (const t of slot.inflight.values()) t.reject(error);
        slot.inflight.clear();
      };
      worker.on('error', (e) =>
        fail(new CompressError('IO', `loader worker failed: ${e.message}`, { input: 'workers', cause: e })),
      );
      worker.on('exit', (code) => {
        if (code !== 0 || slot.inflight.size > 0)
          fail(new CompressError('IO', `loader worker exited with code ${code}`, { input: 'workers' }));
      });
      return slot;
    });
  }

  run(task: Omit<WorkerRequest, 'id'>, buffers: BufferPool): Promise<LoaderBatch> {
    if (this.failure) {
      if (task.spare) buffers.keep(task.spare);
      return Promise.reject(this.failure);
    }
    let slot = this.slots[0]!;
    for (const s of this.slots) if (s.inflight.size < slot.inflight.size) slot = s;
    const id = this.nextId++;
    return new Promise<LoaderBatch>((resolve, reject) => {
      slot.inflight.set(id, { resolve, reject, buffers });
      slot.worker.ref();
      slot.worker.postMessage({ ...task, id } satisfies WorkerRequest, task.spare ? [task.spare] : []);
    });
  }

  async close(): Promise<void> {
    // Node does not keep the event loop alive for a terminating worker: a caller awaiting
    // close() (e.g. in a finally, on its way out with an error) would be left unsettled when the
    // loop empties, and Node exits with code 13 printing nothing. A timer holds the loop open
    // until every worker has exited.
    const keepAlive = setInterval(() => {}, 60_000);
    try {
      await Promise.all(this.slots.map((s) => s.worker.terminate()));
    } finally {
      clearInterval(keepAlive);
    }
  }
}
