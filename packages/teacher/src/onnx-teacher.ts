import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import {
  assertFinite,
  CompressError,
  type FeatureMatrix,
  featureMatrix,
  type ImageBatch,
  ioError,
  type Teacher,
} from '@compress/core';
import {
  type OrtApi,
  type OrtSession,
  type OrtTensor,
  type Provider,
  readOnnxMetadata,
  requireOnnxRuntime,
} from '@compress/onnx';
import { type InputLayout, type InputPlan, isIdentity, makePlan, toModelInput } from './layout.js';
import { featureDim, inferLayout, type ModelInfo, modelInfo } from './model-info.js';
import { checkNormalization } from './normalization-check.js';
import { openSession } from './onnx-session.js';
import {
  defaultOnnxTeacherOptions,
  type OnnxTeacherOptions,
  type ResolvedOnnxTeacherOptions,
  validateOptions,
} from './onnx-teacher-options.js';

export { inferLayout } from './model-info.js';
export {
  type ChannelMode,
  defaultOnnxTeacherOptions,
  type OnnxTeacherOptions,
} from './onnx-teacher-options.js';

type Dim = number | string;

/**
 * A teacher backed by an ONNX model on onnxruntime-node: NHWC [0, 1] batches in, features out.
 * It converts the layout and normalises in one pass, splits large batches, squeezes [B, D, 1, 1]
 * outputs to [B, D], checks the data's shape against the model's input before running, and
 * refuses non-finite outputs, naming the dataset indices.
 *
 * ```ts
 * const teacher = await OnnxTeacher.create('moco_v2_800ep.onnx', { normalize: 'imagenet' });
 * const features = await teacher.embed(batch); // batch.shape: [B, 224, 224, 3]
 * ```
 */
export class OnnxTeacher implements Teacher {
  /** Feature dimension D. */
  readonly dim: number;
  /** A digest of the model's bytes and of the options that change its output. */
  readonly fingerprint: string;
  /** The execution provider in use. */
  readonly provider: Provider;
  /** Why that provider was chosen. */
  readonly providerReason: string;
  /** The model file (or `<bytes>` for a model given as bytes). */
  readonly source: string;
  readonly inputName: string;
  readonly outputName: string;
  /** The model input's shape as declared (symbolic dimensions are strings). */
  readonly modelInputShape: readonly Dim[];
  readonly inputLayout: InputLayout;
  /** `[H, W, C]` the model takes (null where the model leaves it free). */
  readonly modelImageShape: readonly [number | null, number | null, number | null];
  readonly options: Readonly<ResolvedOnnxTeacherOptions>;
  /** The model's `metadata_props` (key → value), empty when it has none. */
  readonly metadata: Readonly<Record<string, string>>;

  readonly #ort: OrtApi;
  #session: OrtSession | undefined;
  #plans = new Map<number, InputPlan>();
  #scratch: Float32Array | undefined;
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(
    ort: OrtApi,
    session: OrtSession,
    info: ModelInfo,
    dim: number,
    layout: InputLayout,
    provider: Provider,
    providerReason: string,
    fingerprint: string,
    source: string,
    options: ResolvedOnnxTeacherOptions,
    metadata: Record<string, string>,
  ) {
    this.#ort = ort;
    this.#session = session;
    this.inputName = info.inputName;
    this.outputName = info.outputName;
    this.modelInputShape = info.inputShape;
    this.inputLayout = layout;
    const s = info.inputShape;
    const num = (d: Dim | undefined) => (typeof d === 'number' && d > 0 ? d : null);
    this.modelImageShape =
      layout === 'NCHW' ? [num(s[2]), num(s[3]), num(s[1])] : [num(s[1]), num(s[2]), num(s[3])];
    this.dim = dim;
    this.provider = provider;
    this.providerReason = providerReason;
    this.fingerprint = fingerprint;
    this.source = source;
    this.options = options;
    this.metadata = Object.freeze({ ...metadata });
  }

  /** Loads an ONNX model (a file path or its bytes) and prepares a session. */
  static async create(model: string | Uint8Array, options: OnnxTeacherOptions = {}): Promise<OnnxTeacher> {
    const opts = { ...defaultOnnxTeacherOptions, ...options };
    for (const [key, value] of Object.entries(options)) {
      if (value === undefined)
        (opts as Record<string, unknown>)[key] = (defaultOnnxTeacherOptions as Record<string, unknown>)[key];
    }
    validateOptions(opts);
    const source = typeof model === 'string' ? model : '<bytes>';
    let bytes: Uint8Array;
    if (typeof model === 'string') {
      try {
        bytes = await readFile(model);
      } catch (error) {
        const e = ioError(error, model, 'read the ONNX model');
        throw new CompressError(e.code, `OnnxTeacher: ${e.message}`, { input: model, cause: error });
      }
    } else {
      bytes = model;
    }

    const ort = await requireOnnxRuntime('OnnxTeacher');
    const { session, provider, reason } = await openSession(bytes, source, opts);
    try {
      const info = modelInfo(session, source, options.outputName, opts.batchSize);
      const metadata = readOnnxMetadata(bytes);
      checkNormalization(metadata, source, opts, options.normalize !== undefined);
      const layout = options.inputLayout ?? inferLayout(info.inputShape);
      const dim = await featureDim(ort, session, info, layout, source);
      const fingerprint = fingerprintOf(bytes, {
        layout,
        normalize: opts.normalize,
        channels: opts.channels,
        output: info.outputName,
      });
      const teacher = new OnnxTeacher(
        ort,
        session,
        info,
        dim,
        layout,
        provider,
        reason,
        fingerprint,
        source,
        opts,
        metadata,
      );
      const modelChannels = teacher.modelImageShape[2];
      if (modelChannels !== null) makePlan(layout, modelChannels, modelChannels, opts.normalize); // checks normalize
      if (opts.log) opts.log(`OnnxTeacher ${source}: ${provider.toUpperCase()} (${reason})`);
      return teacher;
    } catch (error) {
      await session.release();
      throw error;
    }
  }

  /**
   * Checks that images of shape `[H, W, C]` can be fed to the model (after the channel mode);
   * throws SHAPE_MISMATCH naming both shapes otherwise. `embed` calls it for every batch; call it
   * yourself to fail before any work.
   */
  checkImageShape(shape: readonly [number, number, number]): void {
    const [h, w, c] = shape;
    const [mh, mw, mc] = this.modelImageShape;
    const channelsOk =
      mc === null || c === mc || (this.options.channels === 'gray-to-rgb' && c === 1 && mc === 3);
    if (channelsOk && (mh === null || mh === h) && (mw === null || mw === w)) return;
    const model = this.modelInputShape.join(', ');
    const hints: string[] = [];
    if ((mh !== null && mh !== h) || (mw !== null && mw !== w))
      hints.push(`resize or crop the images to ${mh ?? h}×${mw ?? w}`);
    if (!channelsOk) {
      hints.push(
        c === 1 && mc === 3
          ? "pass channels: 'gray-to-rgb' to repeat the gray channel"
          : `the model takes ${mc} channel(s), the data has ${c}`,
      );
    }
    throw new CompressError(
      'SHAPE_MISMATCH',
      `OnnxTeacher ${this.source}: the model's input '${this.inputName}' is ${this.inputLayout} [${model}] ` +
        `(H×W×C ${mh ?? '?'}×${mw ?? '?'}×${mc ?? '?'}), the data is NHWC images of ${h}×${w}×${c}: ${hints.join('; ')}`,
      { input: this.source },
    );
  }

  /** Embeds a batch: B × dim features, row i for `batch.indices[i]`. */
  embed(batch: ImageBatch): Promise<FeatureMatrix> {
    // One batch at a time: the input buffer is shared, and onnxruntime runs on the main thread anyway.
    const run = this.#queue.then(() => this.#embed(batch));
    this.#queue = run.catch(() => {});
    return run;
  }

  async #embed(batch: ImageBatch): Promise<FeatureMatrix> {
    const session = this.#session;
    if (session === undefined)
      throw new CompressError('INVALID_ARGUMENT', `OnnxTeacher ${this.source}: embed after dispose`);
    const [b, h, w, c] = checkBatch(batch, this.source);
    this.checkImageShape([h, w, c]);
    const plan = this.#plan(c);
    const pixels = h * w;
    const perIn = pixels * c;
    const perOut = pixels * plan.modelChannels;
    const identity = isIdentity(plan);
    const out = new Float32Array(b * this.dim);
    const chunk = this.options.batchSize;
    for (let first = 0; first < b; first += chunk) {
      const n = Math.min(chunk, b - first);
      let input: Float32Array;
      if (identity) {
        input = batch.images.subarray(first * perIn, (first + n) * perIn);
      } else {
        if (this.#scratch === undefined || this.#scratch.length < Math.min(chunk, b) * perOut) {
          this.#scratch = new Float32Array(Math.min(chunk, b) * perOut);
        }
        input = this.#scratch.subarray(0, n * perOut);
        toModelInput(batch.images, first, n, pixels, plan, input);
      }
      const dims =
        this.inputLayout === 'NCHW' ? [n, plan.modelChannels, h, w] : [n, h, w, plan.modelChannels];
      const tensor = new this.#ort.Tensor('float32', input, dims);
      let result: Record<string, OrtTensor>;
      try {
        result = await session.run({ [this.inputName]: tensor }, [this.outputName]);
      } catch (error) {
        throw this.#runError(error, dims);
      }
      const output = result[this.outputName]!;
      const data = checkOutput(output, n, this.dim, this.outputName, this.source);
      out.set(data, first * this.dim);
      output.dispose?.();
    }
    const features = featureMatrix(b, this.dim, out, `OnnxTeacher ${this.source} output`);
    assertFinite(
      features,
      `OnnxTeacher ${this.source} output`,
      (row) => `dataset index ${batch.indices[row]}`,
    );
    return features;
  }

  /** An onnxruntime failure as a CompressError naming the model and the batch it ran on. */
  #runError(error: unknown, dims: readonly number[]): CompressError {
    const raw = String((error as Error)?.message ?? error);
    // onnxruntime's message, first line, without its "[ErrorCode:…]" prefix
    // and without the location in onnxruntime's sources ("/onnxruntime_src/…:91 onnxruntime::F(…) x was false.")
    const message =
      raw
        .split('\n')[0]!
        .replace(/^\s*\[[^\]]*\]\s*:?\s*/, '')
        .replace(/\s*\/\S*onnxruntime_src\/\S+:\d+\s.*?\bwas false\.\s*/, ' ')
        .trim() || raw;
    const code = /alloc|out of memory/i.test(message)
      ? 'OUT_OF_MEMORY'
      : /dimension|shape|reshape/i.test(message)
        ? 'SHAPE_MISMATCH'
        : 'UNSUPPORTED';
    return new CompressError(
      code,
      `OnnxTeacher ${this.source}: onnxruntime could not run the model on ${this.inputLayout} [${dims.join(', ')}] ` +
        `(input '${this.inputName}' declared [${this.modelInputShape.join(', ')}], output '${this.outputName}'): ${message}`,
      { input: this.source, cause: error },
    );
  }

  #plan(dataChannels: number): InputPlan {
    let plan = this.#plans.get(dataChannels);
    if (plan === undefined) {
      const modelChannels = this.modelImageShape[2] ?? dataChannels;
      plan = makePlan(this.inputLayout, dataChannels, modelChannels, this.options.normalize);
      this.#plans.set(dataChannels, plan);
    }
    return plan;
  }

  /** Releases the onnxruntime session. */
  async dispose(): Promise<void> {
    const session = this.#session;
    this.#session = undefined;
    this.#scratch = undefined;
    await this.#queue;
    await session?.release();
  }
}

function checkBatch(batch: ImageBatch, source: string): [number, number, number, number] {
  const { shape, images, indices } = batch;
  if (!Array.isArray(shape) || shape.length !== 4 || !shape.every((d) => Number.isInteger(d) && d > 0)) {
    throw new CompressError(
      'INVALID_ARGUMENT',
      `OnnxTeacher ${source}: batch.shape must be [B, H, W, C] of positive integers, got ${JSON.stringify(shape)}`,
      { input: 'batch.shape' },
    );
  }
  const [b, h, w, c] = shape;
  if (!(images instanceof Float32Array) || images.length !== b * h * w * c) {
    throw new CompressError(
      'SHAPE_MISMATCH',
      `OnnxTeacher ${source}: batch.images must be a Float32Array of B·H·W·C = ${b * h * w * c} values for shape [${shape.join(', ')}], found ${images instanceof Float32Array ? images.length : typeof images}`,
      { input: 'batch.images' },
    );
  }
  if (indices.length !== b) {
    throw new CompressError(
      'SHAPE_MISMATCH',
      `OnnxTeacher ${source}: batch.indices has ${indices.length} entries, expected B = ${b}`,
      { input: 'batch.indices' },
    );
  }
  return [b, h, w, c];
}

function checkOutput(output: OrtTensor, n: number, dim: number, name: string, source: string): Float32Array {
  const d = output.dims;
  if (d[0] !== n || d[1] !== dim || d.slice(2).some((x) => x !== 1) || output.type !== 'float32') {
    throw new CompressError(
      'SHAPE_MISMATCH',
      `OnnxTeacher ${source}: output '${name}' is ${output.type} [${d.join(', ')}] for ${n} images, expected float32 [${n}, ${dim}] or [${n}, ${dim}, 1, 1]`,
      { input: source },
    );
  }
  return output.data as Float32Array;
}

function fingerprintOf(bytes: Uint8Array, settings: Record<string, unknown>): string {
  const hash = createHash('sha256');
  hash.update(bytes);
  hash.update('\0');
  hash.update(JSON.stringify(settings));
  return `onnx-sha256:${hash.digest('hex').slice(0, 32)}`;
}
