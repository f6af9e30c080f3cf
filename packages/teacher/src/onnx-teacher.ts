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
import ort from 'onnxruntime-node';
import {
  IMAGENET,
  type InputLayout,
  type InputPlan,
  isIdentity,
  makePlan,
  type Normalization,
  toModelInput,
} from './layout.js';
import { readOnnxMetadata } from './onnx-metadata.js';
import { cudaInstallHint, isCudaInstalled, type Provider } from './providers.js';

/** How the data's channels meet the model's. */
export type ChannelMode = 'strict' | 'gray-to-rgb';

export interface OnnxTeacherOptions {
  /**
   * Execution providers in order of preference. `'auto'` uses CUDA where onnxruntime-node's CUDA
   * provider is installed and starts, else the CPU, and reports its choice through `log`. Asking
   * for `'cuda'` explicitly where it is not installed is a BACKEND_UNAVAILABLE error that says how
   * to install it.
   * @default 'auto'
   */
  providers?: 'auto' | readonly Provider[];
  /**
   * Layout of the model's image input. Inferred from the model's input shape when not given
   * (a dimension of 1 or 3 right after the batch → NCHW, last → NHWC); NCHW when the shape cannot
   * tell, as PyTorch exports are NCHW.
   * @default inferred
   */
  inputLayout?: InputLayout;
  /**
   * Per-channel normalisation applied to the [0, 1] images before the model: `'imagenet'` for
   * MoCo, SwAV and torchvision models; `'none'` for SimCLR and models that normalise inside (the
   * built-in Fashion-MNIST teacher, everything tooling/teacher-export writes with
   * `--normalize inside`, students exported by `exportOnnx` with normalisation inside); or your own
   * `{ mean, std }` (one value, or one per model channel). Where the model's metadata says what it
   * expects (`compress.normalization`, `compress.onnxTeacherOptions`), a normalisation on top of a
   * model that takes [0, 1] pixels is refused, and one that differs from the metadata's is logged.
   * @default 'none'
   */
  normalize?: 'none' | 'imagenet' | Normalization;
  /**
   * `'gray-to-rgb'` repeats a one-channel image into the 3 channels a model takes (as torchvision's
   * `Grayscale(num_output_channels=3)`); `'strict'` requires the data to have the model's channel
   * count.
   * @default 'strict'
   */
  channels?: ChannelMode;
  /**
   * Images per onnxruntime run; larger batches are split. Memory grows with it; throughput barely
   * does beyond 32 on a CPU.
   * @default 32
   */
  batchSize?: number;
  /**
   * Intra-op threads of the session; 0 lets onnxruntime choose (one per physical core).
   * @default 0
   */
  threads?: number;
  /**
   * The model output to use as features. Outputs of shape [B, D] or [B, D, 1, 1] are accepted.
   * @default the model's first output
   */
  outputName?: string;
  /**
   * Receives one line saying which execution provider was chosen and why; `false` for silence.
   * @default console.info
   */
  log?: ((message: string) => void) | false;
}

export const defaultOnnxTeacherOptions: Required<Omit<OnnxTeacherOptions, 'inputLayout' | 'outputName'>> = {
  providers: 'auto',
  normalize: 'none',
  channels: 'strict',
  batchSize: 32,
  threads: 0,
  log: (message) => console.info(message),
};

type Dim = number | string;

interface ModelInfo {
  inputName: string;
  inputShape: readonly Dim[];
  outputName: string;
  outputShape: readonly Dim[];
}

const PROBE_SIZE = 224;

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
  readonly options: Readonly<Required<Omit<OnnxTeacherOptions, 'inputLayout' | 'outputName'>>>;
  /** The model's `metadata_props` (key → value), empty when it has none. */
  readonly metadata: Readonly<Record<string, string>>;

  #session: ort.InferenceSession | undefined;
  #plans = new Map<number, InputPlan>();
  #scratch: Float32Array | undefined;
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(
    session: ort.InferenceSession,
    info: ModelInfo,
    dim: number,
    layout: InputLayout,
    provider: Provider,
    providerReason: string,
    fingerprint: string,
    source: string,
    options: Required<Omit<OnnxTeacherOptions, 'inputLayout' | 'outputName'>>,
    metadata: Record<string, string>,
  ) {
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

    const { session, provider, reason } = await openSession(bytes, source, opts);
    try {
      const info = modelInfo(session, source, options.outputName, opts.batchSize);
      const metadata = readOnnxMetadata(bytes);
      checkNormalization(metadata, source, opts, options.normalize !== undefined);
      const layout = options.inputLayout ?? inferLayout(info.inputShape);
      const dim = await featureDim(session, info, layout, source);
      const fingerprint = fingerprintOf(bytes, {
        layout,
        normalize: opts.normalize,
        channels: opts.channels,
        output: info.outputName,
      });
      const teacher = new OnnxTeacher(
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
      const tensor = new ort.Tensor('float32', input, dims);
      let result: ort.InferenceSession.ReturnType;
      try {
        result = await session.run({ [this.inputName]: tensor }, [this.outputName]);
      } catch (error) {
        throw this.#runError(error, dims);
      }
      const output = result[this.outputName]!;
      const data = checkOutput(output, n, this.dim, this.outputName, this.source);
      out.set(data, first * this.dim);
      output.dispose();
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

function validateOptions(opts: Required<Omit<OnnxTeacherOptions, 'inputLayout' | 'outputName'>>): void {
  if (!Number.isInteger(opts.batchSize) || opts.batchSize < 1) {
    throw new CompressError(
      'INVALID_ARGUMENT',
      `OnnxTeacher: batchSize must be an integer ≥ 1, got ${opts.batchSize}`,
      {
        input: 'batchSize',
      },
    );
  }
  if (!Number.isInteger(opts.threads) || opts.threads < 0) {
    throw new CompressError(
      'INVALID_ARGUMENT',
      `OnnxTeacher: threads must be an integer ≥ 0 (0 = onnxruntime's choice), got ${opts.threads}`,
      { input: 'threads' },
    );
  }
  if (opts.providers !== 'auto') {
    if (!Array.isArray(opts.providers) || opts.providers.length === 0) {
      throw new CompressError(
        'INVALID_ARGUMENT',
        `OnnxTeacher: providers must be 'auto' or a non-empty list of 'cuda' | 'cpu', got ${JSON.stringify(opts.providers)}`,
        { input: 'providers' },
      );
    }
    for (const p of opts.providers) {
      if (p !== 'cuda' && p !== 'cpu') {
        throw new CompressError(
          'INVALID_ARGUMENT',
          `OnnxTeacher: unknown execution provider ${JSON.stringify(p)}; expected 'cuda' or 'cpu'`,
          { input: 'providers' },
        );
      }
    }
  }
  if (opts.channels !== 'strict' && opts.channels !== 'gray-to-rgb') {
    throw new CompressError(
      'INVALID_ARGUMENT',
      `OnnxTeacher: channels must be 'strict' or 'gray-to-rgb', got ${JSON.stringify(opts.channels)}`,
      { input: 'channels' },
    );
  }
}

async function openSession(
  bytes: Uint8Array,
  source: string,
  opts: Required<Omit<OnnxTeacherOptions, 'inputLayout' | 'outputName'>>,
): Promise<{ session: ort.InferenceSession; provider: Provider; reason: string }> {
  const base: ort.InferenceSession.SessionOptions = {
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    interOpNumThreads: 1,
    ...(opts.threads > 0 ? { intraOpNumThreads: opts.threads } : {}),
  };
  const create = async (providers: readonly Provider[]) => {
    try {
      return await ort.InferenceSession.create(bytes, { ...base, executionProviders: [...providers] });
    } catch (error) {
      const message = String((error as Error)?.message ?? error);
      if (
        providers.includes('cuda') &&
        /cuda|provider|\.so/i.test(message) &&
        !/protobuf|model/i.test(message)
      ) {
        throw new CompressError(
          'BACKEND_UNAVAILABLE',
          `OnnxTeacher ${source}: onnxruntime could not start the CUDA provider: ${message}. Check the CUDA 12 and cuDNN 9 libraries (LD_LIBRARY_PATH), or use providers ['cpu']`,
          { input: 'providers', cause: error },
        );
      }
      throw new CompressError(
        'CORRUPT_INPUT',
        `OnnxTeacher: cannot load ${source} as an ONNX model: ${message}`,
        { input: source, cause: error },
      );
    }
  };

  if (opts.providers === 'auto') {
    if (!isCudaInstalled()) {
      return {
        session: await create(['cpu']),
        provider: 'cpu',
        reason: "providers 'auto': onnxruntime-node's CUDA provider is not installed",
      };
    }
    try {
      return {
        session: await create(['cuda', 'cpu']),
        provider: 'cuda',
        reason: "providers 'auto': CUDA is installed",
      };
    } catch (error) {
      if (!(error instanceof CompressError) || error.code !== 'BACKEND_UNAVAILABLE') throw error;
      return {
        session: await create(['cpu']),
        provider: 'cpu',
        reason: `providers 'auto': CUDA is installed but did not start (${error.message})`,
      };
    }
  }
  const providers = opts.providers;
  if (providers[0] === 'cuda' && !isCudaInstalled()) {
    throw new CompressError(
      'BACKEND_UNAVAILABLE',
      `OnnxTeacher ${source}: providers ${JSON.stringify(providers)} asks for CUDA, but ${cudaInstallHint()}`,
      {
        input: 'providers',
      },
    );
  }
  const usable = providers.filter((p) => p !== 'cuda' || isCudaInstalled());
  const session = await create(usable);
  const provider = usable[0]!;
  return { session, provider, reason: `providers ${JSON.stringify(providers)}` };
}

function modelInfo(
  session: ort.InferenceSession,
  source: string,
  outputName: string | undefined,
  batchSize: number,
): ModelInfo {
  const inputs = session.inputMetadata;
  if (inputs.length !== 1) {
    throw new CompressError(
      'UNSUPPORTED',
      `OnnxTeacher ${source}: the model takes ${inputs.length} inputs (${session.inputNames.join(', ')}), expected one image tensor`,
      { input: source },
    );
  }
  const input = inputs[0]!;
  if (!input.isTensor || input.type !== 'float32' || input.shape.length !== 4) {
    const found = input.isTensor ? `${input.type} [${input.shape.join(', ')}]` : 'a non-tensor value';
    throw new CompressError(
      'UNSUPPORTED',
      `OnnxTeacher ${source}: input '${input.name}' is ${found}, expected a float32 image tensor of rank 4 (NCHW or NHWC)`,
      { input: source },
    );
  }
  const batch = input.shape[0];
  if (typeof batch === 'number' && batch > 0) {
    const out = outputName ?? session.outputNames[0] ?? 'features';
    throw new CompressError(
      'UNSUPPORTED',
      `OnnxTeacher ${source}: input '${input.name}' has a fixed batch size of ${batch} (shape [${input.shape.join(', ')}]), ` +
        `expected a dynamic batch dimension: batches of up to ${batchSize} images (batchSize) are run, the last one of an epoch smaller. ` +
        `Re-export the model with a dynamic batch axis: torch.onnx.export(model, x, '${source === '<bytes>' ? 'teacher.onnx' : source}', ` +
        `input_names=['${input.name}'], output_names=['${out}'], dynamic_axes={'${input.name}': {0: 'batch'}, '${out}': {0: 'batch'}}), ` +
        `or with tooling/teacher-export (python3 tooling/teacher-export/export_teacher.py --format moco|simclr|swav|torchvision --checkpoint <checkpoint> --out <model.onnx>), whose batch axis is dynamic`,
      { input: source },
    );
  }
  const name = outputName ?? session.outputNames[0];
  const output = session.outputMetadata.find((m) => m.name === name);
  if (name === undefined || output === undefined) {
    throw new CompressError(
      'INVALID_ARGUMENT',
      `OnnxTeacher ${source}: outputName '${name}' is not an output of the model; its outputs are: ${session.outputNames.join(', ')}`,
      { input: 'outputName' },
    );
  }
  if (!output.isTensor || output.type !== 'float32') {
    throw new CompressError(
      'UNSUPPORTED',
      `OnnxTeacher ${source}: output '${name}' is ${output.isTensor ? output.type : 'not a tensor'}, expected float32 features`,
      { input: source },
    );
  }
  return { inputName: input.name, inputShape: input.shape, outputName: name, outputShape: output.shape };
}

/** What a model's metadata says it expects of its input's normalisation. */
interface DeclaredNormalization {
  normalize: 'none' | 'imagenet' | Normalization;
  /** The metadata entry it comes from, as `key = value`. */
  from: string;
}

function declaredNormalization(metadata: Record<string, string>): DeclaredNormalization | null {
  const parse = (key: string): unknown => {
    try {
      return JSON.parse(metadata[key] ?? '');
    } catch {
      return undefined;
    }
  };
  const isStats = (v: unknown): v is Normalization => {
    const o = v as Normalization | null;
    return (
      typeof o === 'object' &&
      o !== null &&
      Array.isArray(o.mean) &&
      Array.isArray(o.std) &&
      [...o.mean, ...o.std].every((x) => typeof x === 'number')
    );
  };
  // @compress/students' exportOnnx
  const students = metadata['compress.normalization'];
  if (students === 'inside') return { normalize: 'none', from: 'compress.normalization = inside' };
  if (students === 'none') {
    const stats = { mean: parse('compress.mean'), std: parse('compress.std') };
    if (isStats(stats)) return { normalize: stats, from: 'compress.normalization = none' };
  }
  // tooling/teacher-export
  const options = parse('compress.onnxTeacherOptions') as { normalize?: unknown } | undefined;
  const n = options?.normalize;
  if (n === 'none' || n === 'imagenet' || isStats(n)) {
    return { normalize: n, from: `compress.onnxTeacherOptions = ${metadata['compress.onnxTeacherOptions']}` };
  }
  return null;
}

function statsOf(n: 'none' | 'imagenet' | Normalization): Normalization {
  return n === 'none' ? { mean: [0], std: [1] } : n === 'imagenet' ? IMAGENET : n;
}

function sameNormalization(
  a: 'none' | 'imagenet' | Normalization,
  b: 'none' | 'imagenet' | Normalization,
): boolean {
  const x = statsOf(a);
  const y = statsOf(b);
  const same = (u: readonly number[], v: readonly number[]) => {
    if (u.length !== v.length && u.length !== 1 && v.length !== 1) return false;
    const n = Math.max(u.length, v.length);
    for (let i = 0; i < n; i++) {
      const p = u[u.length === 1 ? 0 : i]!;
      const q = v[v.length === 1 ? 0 : i]!;
      if (!(Math.abs(p - q) <= 1e-6 * Math.max(1, Math.abs(q)))) return false;
    }
    return true;
  };
  return same(x.mean, y.mean) && same(x.std, y.std);
}

function describeNormalization(n: 'none' | 'imagenet' | Normalization): string {
  return typeof n === 'string' ? `'${n}'` : `{ mean: [${n.mean.join(', ')}], std: [${n.std.join(', ')}] }`;
}

/**
 * Compares the `normalize` option with what the model's metadata declares: normalising for a model
 * that takes [0, 1] pixels (it normalises inside) is refused; any other difference is logged.
 */
function checkNormalization(
  metadata: Record<string, string>,
  source: string,
  opts: Required<Omit<OnnxTeacherOptions, 'inputLayout' | 'outputName'>>,
  explicit: boolean,
): void {
  const declared = declaredNormalization(metadata);
  if (declared === null || sameNormalization(opts.normalize, declared.normalize)) return;
  const cli = (n: 'none' | 'imagenet' | Normalization) =>
    typeof n === 'string' ? n : `${n.mean.join(',')},${n.std.join(',')}`;
  if (declared.normalize === 'none') {
    throw new CompressError(
      'INVALID_ARGUMENT',
      `OnnxTeacher ${source}: normalize is ${describeNormalization(opts.normalize)}, but the model's metadata (${declared.from}) says it takes images in [0, 1] as they are ` +
        `(any normalisation is inside the model), so the images would be normalised twice; pass normalize: 'none' (CLI: --teacher-normalize none)`,
      { input: 'normalize' },
    );
  }
  if (opts.log) {
    opts.log(
      `OnnxTeacher ${source}: warning: normalize is ${describeNormalization(opts.normalize)}${explicit ? '' : ' (the default)'}, but the model's metadata (${declared.from}) ` +
        `says it expects input normalised with ${describeNormalization(declared.normalize)}; pass normalize: ${describeNormalization(declared.normalize)} (CLI: --teacher-normalize ${cli(declared.normalize)}) unless you mean it`,
    );
  }
}

/** NCHW unless the shape says NHWC: a channel-like size (1 or 3) last and not second. */
export function inferLayout(shape: readonly Dim[]): InputLayout {
  const isChannels = (d: Dim | undefined) => d === 1 || d === 3;
  if (isChannels(shape[3]) && !isChannels(shape[1])) return 'NHWC';
  return 'NCHW';
}

/** D from the output's declared shape, or by running one probe image when it is symbolic. */
async function featureDim(
  session: ort.InferenceSession,
  info: ModelInfo,
  layout: InputLayout,
  source: string,
): Promise<number> {
  const tail = info.outputShape.slice(1);
  if (tail.length >= 1 && tail.every((d) => typeof d === 'number') && tail.slice(1).every((d) => d === 1)) {
    return tail[0] as number;
  }
  const s = info.inputShape;
  const at = (i: number, fallback: number) =>
    typeof s[i] === 'number' && (s[i] as number) > 0 ? (s[i] as number) : fallback;
  const dims =
    layout === 'NCHW'
      ? [1, at(1, 3), at(2, PROBE_SIZE), at(3, PROBE_SIZE)]
      : [1, at(1, PROBE_SIZE), at(2, PROBE_SIZE), at(3, 3)];
  const size = dims.reduce((a, b) => a * b, 1);
  const probe = new ort.Tensor('float32', new Float32Array(size), dims);
  let result: ort.InferenceSession.ReturnType;
  try {
    result = await session.run({ [info.inputName]: probe }, [info.outputName]);
  } catch (error) {
    throw new CompressError(
      'UNSUPPORTED',
      `OnnxTeacher ${source}: output '${info.outputName}' has a symbolic shape [${info.outputShape.join(', ')}] and a probe run on [${dims.join(', ')}] failed: ${(error as Error).message}`,
      { input: source, cause: error },
    );
  }
  const out = result[info.outputName]!;
  const d = out.dims;
  out.dispose();
  if (d.length < 2 || d.slice(2).some((x) => x !== 1)) {
    throw new CompressError(
      'SHAPE_MISMATCH',
      `OnnxTeacher ${source}: output '${info.outputName}' has shape [${d.join(', ')}] for one image, expected [1, D] or [1, D, 1, 1]; export the pooled features, or pick another output with outputName`,
      { input: source },
    );
  }
  return d[1]!;
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

function checkOutput(output: ort.Tensor, n: number, dim: number, name: string, source: string): Float32Array {
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
