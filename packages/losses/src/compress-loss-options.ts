import { CompressError } from '@compress/core';
import { resolveThreads } from '@compress/onnx';
import { type LossVariant, variantSpec } from './variants/spec.js';

/**
 * Options of {@link CompressLoss}. Defaults are the paper's
 * ([CompRess](https://arxiv.org/abs/2010.14713), Abbasi Koohpayegani, Tejankar, Pirsiavash, NeurIPS 2020).
 */
export interface CompressLossOptions {
  /**
   * Which CompRess variant.
   * @default 'momentum' — the paper's main method ("Ours-2q"), the best in its Table 1.
   */
  variant?: LossVariant;
  /** Dt, the teacher's feature dimension (2048 for a ResNet-50 teacher). */
  teacherDim: number;
  /** Ds, the student's feature dimension (its output, before any one-queue head). */
  studentDim: number;
  /**
   * K, the number of anchors in each queue.
   * @default 128000 — the paper's; its ablation shows nearest-neighbour accuracy rising with K up to there.
   */
  queueSize?: number;
  /**
   * T, the softmax temperature of both similarity distributions.
   * @default 0.04 — the best of {0.02, 0.04, 0.07, 0.1, 1.0} in the paper's ablation.
   */
  temperature?: number;
  /** Seed of the initial queues and head (`number | string`). @default 0 */
  seed?: number | string;
  /**
   * Largest batch B: the per-step memory is reserved for it up front, so a run that cannot fit fails
   * before training. Larger batches later reserve more.
   * @default 256 — the paper's batch size.
   */
  batchSize?: number;
  /**
   * N, the number of training images, when known: K ≥ N is refused and K > N/2 warned about
   * (see `checkQueueSize`). @default undefined (not checked)
   */
  datasetSize?: number;
  /**
   * `onnxruntime` runs the whole loss step as one native graph on onnxruntime-node (an optional
   * peer dependency; several times faster than the others); `wasm` reads queues in place on the
   * tfjs wasm backend; `tfjs` uses tfjs ops on any backend.
   * @default 'auto' — `onnxruntime` when onnxruntime-node is installed, else `wasm` when the active
   * backend is wasm, else `tfjs`.
   */
  engine?: 'auto' | 'wasm' | 'tfjs' | 'onnxruntime';
  /**
   * Intra-op threads of the `onnxruntime` engine: 0 = one per core (`os.availableParallelism()`),
   * as everywhere in compress.
   * @default 0
   */
  threads?: number;
  /** Receives warnings (e.g. about the queue size). @default console.warn */
  onWarning?: (message: string) => void;
  /** Start from given values instead of random ones (all optional; K·D row-major, W: Ds×Dt). */
  initial?: {
    teacherQueue?: Float32Array;
    studentQueue?: Float32Array;
    pointer?: number;
    headWeight?: Float32Array;
    headBias?: Float32Array;
  };
}

/** The defaults of {@link CompressLossOptions}. */
export const defaultCompressLossOptions = {
  variant: 'momentum',
  queueSize: 128000,
  temperature: 0.04,
  seed: 0,
  batchSize: 256,
  engine: 'auto',
  threads: 0,
} as const satisfies Partial<CompressLossOptions>;

export type Resolved = Required<Omit<CompressLossOptions, 'datasetSize' | 'initial' | 'onWarning'>> &
  Pick<CompressLossOptions, 'datasetSize'>;

/** The options with their defaults, validated. */
export function resolve(options: CompressLossOptions): Resolved {
  if (options === null || typeof options !== 'object') {
    throw new CompressError('INVALID_ARGUMENT', 'CompressLoss needs an options object', { input: 'options' });
  }
  const o: Resolved = {
    variant: options.variant ?? defaultCompressLossOptions.variant,
    teacherDim: options.teacherDim,
    studentDim: options.studentDim,
    queueSize: options.queueSize ?? defaultCompressLossOptions.queueSize,
    temperature: options.temperature ?? defaultCompressLossOptions.temperature,
    seed: options.seed ?? defaultCompressLossOptions.seed,
    batchSize: options.batchSize ?? defaultCompressLossOptions.batchSize,
    engine: options.engine ?? defaultCompressLossOptions.engine,
    threads: options.threads ?? defaultCompressLossOptions.threads,
    datasetSize: options.datasetSize,
  };
  variantSpec(o.variant);
  for (const k of ['teacherDim', 'studentDim', 'queueSize', 'batchSize'] as const) {
    if (!Number.isInteger(o[k]) || o[k] < 1) {
      throw new CompressError(
        'INVALID_ARGUMENT',
        `CompressLoss: ${k} must be a positive integer, got ${o[k]}`,
        {
          input: k,
        },
      );
    }
  }
  if (!(o.temperature > 0) || !Number.isFinite(o.temperature)) {
    throw new CompressError(
      'INVALID_ARGUMENT',
      `CompressLoss: temperature must be a positive number, got ${o.temperature}`,
      {
        input: 'temperature',
      },
    );
  }
  resolveThreads(o.threads, 'CompressLoss: threads');
  if (!['auto', 'wasm', 'tfjs', 'onnxruntime'].includes(o.engine)) {
    throw new CompressError(
      'INVALID_ARGUMENT',
      `CompressLoss: engine must be 'auto', 'onnxruntime', 'wasm' or 'tfjs', got ${JSON.stringify(o.engine)}`,
      {
        input: 'engine',
      },
    );
  }
  return o;
}
