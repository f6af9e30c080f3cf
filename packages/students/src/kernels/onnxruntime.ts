import { CompressError } from '@compress/core';
import {
  createNativeSession,
  encodeOnnxModel,
  loadOnnxRuntimeNative,
  type OnnxGraph,
  type OrtNative,
  type OrtNativeSession,
  type OrtNativeTensor,
} from '@compress/onnx';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import {
  Conv2D,
  Conv2DBackpropFilter,
  Conv2DBackpropInput,
  DepthwiseConv2dNativeBackpropFilter,
  FusedConv2D,
  type KernelConfig,
  type KernelFunc,
  type NamedAttrMap,
  type TensorInfo,
} from '@tensorflow/tfjs-core';
import { convGeometry } from './kernel_utils.js';
import {
  type ConvGeometry,
  convBackpropFilterGraph,
  convBackpropInputGraph,
  convForwardGraph,
  type FusedActivation,
  isPointwise,
  transposeOutputPadding,
} from './onnxruntime_graphs.js';

/**
 * The `onnxruntime` training kernels: the dense convolutions of the `wasm` backend (forward, with
 * bias and ReLU/ReLU6 fused or not, and both gradients) and the filter gradient of depthwise
 * convolutions run as small ONNX graphs on onnxruntime-node's native CPU kernels (AVX2/AVX-512 where
 * the CPU has them, on `threads` cores), reading the wasm heap and writing their results straight
 * into it. Convolutions are most of a student's training time, and onnxruntime's run several times
 * faster than WebAssembly's 128-bit SIMD. Depthwise forward and input gradient stay on wasm
 * (XNNPACK's depthwise kernel is faster there), as does everything else. Cases a graph does not
 * cover (other data formats, dilations, other fused activations) go to the kernel
 * that was registered before.
 *
 * The kernels run inside TensorFlow.js's synchronous kernel calls, so they use onnxruntime-node's
 * native session, whose `run` is synchronous (see @compress/onnx's loadOnnxRuntimeNative).
 */

/** A kernel function of the wasm backend. */
export type WasmKernel = (args: {
  inputs: Record<string, TensorInfo>;
  backend: BackendWasm;
  attrs: NamedAttrMap;
}) => TensorInfo | TensorInfo[];

export interface OnnxKernelOptions {
  /** onnxruntime's intra-op threads (0: one per core, as everywhere in compress). @default 1 */
  threads?: number;
}

/** Sessions by graph key, one onnxruntime-node, one thread setting. */
class OnnxKernelRuntime {
  private readonly sessions = new Map<string, OrtNativeSession>();

  constructor(
    readonly ort: OrtNative,
    readonly threads: number,
  ) {}

  session(key: string, graph: () => OnnxGraph): OrtNativeSession {
    let s = this.sessions.get(key);
    if (s === undefined) {
      s = createNativeSession(this.ort, encodeOnnxModel(graph()), {
        threads: this.threads,
        // between two kernels the main thread runs wasm; pool threads spinning there would take
        // the cores data-loading workers and the teacher use
        spinning: false,
        user: "@compress/students' kernel engine 'onnxruntime'",
      });
      this.sessions.set(key, s);
    }
    return s;
  }

  /**
   * Runs a per-sample graph over the batch in chunks of samples (see {@link chunkPlan}): the
   * `batched` inputs and the outputs are split along their first axis, `whole` inputs go to every
   * chunk. Outputs are allocated on the heap before any view is taken (allocation may grow the
   * heap and move it). onnxruntime's own buffers (transposes, blocked layouts) are then a chunk's size, which
   * its per-session arena keeps and reuses, rather than the batch's size.
   */
  runBatched(
    backend: BackendWasm,
    key: string,
    graph: (n: number) => OnnxGraph,
    batched: Record<string, TensorInfo>,
    whole: Record<string, TensorInfo>,
    outputs: Record<string, number[]>,
  ): TensorInfo[] {
    const made = Object.entries(outputs).map(
      ([name, shape]) => [name, backend.makeOutput(shape, 'float32')] as const,
    );
    const batch = made[0]![1].shape[0] as number;
    const wholeFeeds = Object.fromEntries(
      Object.entries(whole).map(([name, t]) => [name, this.view(backend, t)]),
    );
    const parts = [...Object.entries(batched), ...made];
    for (const [start, n] of chunkPlan(
      batch,
      parts.map(([, t]) => t.shape),
    )) {
      const chunk = Object.fromEntries(parts.map(([name, t]) => [name, this.view(backend, t, start, n)]));
      const feeds = { ...wholeFeeds };
      const fetches: Record<string, OrtNativeTensor> = {};
      for (const [name] of Object.entries(batched)) feeds[name] = chunk[name]!;
      for (const [name] of made) fetches[name] = chunk[name]!;
      this.session(`${key}|${n}`, () => graph(n)).run(feeds, fetches, {});
    }
    return made.map(([, t]) => t);
  }

  /**
   * Like {@link runBatched} for a graph whose one output is a sum over the batch (a filter
   * gradient): each chunk after the first adds its part to the running sum (input `acc`), the sum
   * moving between the result and one scratch tensor so that the last chunk writes the result.
   */
  runSummed(
    backend: BackendWasm,
    key: string,
    graph: (n: number, accumulate: boolean) => OnnxGraph,
    batched: Record<string, TensorInfo>,
    outShape: number[],
  ): TensorInfo {
    const result = backend.makeOutput(outShape, 'float32');
    const inputs = Object.entries(batched);
    const batch = inputs[0]![1].shape[0] as number;
    const plan = chunkPlan(
      batch,
      inputs.map(([, t]) => t.shape),
    );
    const scratch = plan.length > 1 ? backend.makeOutput(outShape, 'float32') : result;
    plan.forEach(([start, n], i) => {
      const feeds = Object.fromEntries(inputs.map(([name, t]) => [name, this.view(backend, t, start, n)]));
      const into = (plan.length - 1 - i) % 2 === 0 ? result : scratch;
      if (i > 0) feeds.acc = this.view(backend, into === result ? scratch : result);
      this.session(`${key}|${n}|${i > 0}`, () => graph(n, i > 0)).run(
        feeds,
        { dw: this.view(backend, into) },
        {},
      );
    });
    if (scratch !== result) backend.disposeData(scratch.dataId);
    return result;
  }

  /** A tensor of the wasm heap as an onnxruntime tensor over the same memory (samples [start, start + n)). */
  private view(backend: BackendWasm, t: TensorInfo, start?: number, n?: number): OrtNativeTensor {
    const all = backend.typedArrayFromHeap(t) as Float32Array;
    if (start === undefined || n === undefined) return new this.ort.Tensor('float32', all, t.shape);
    const per = all.length / (t.shape[0] as number);
    return new this.ort.Tensor('float32', all.subarray(start * per, (start + n) * per), [
      n,
      ...t.shape.slice(1),
    ]);
  }

  dispose(): void {
    for (const s of this.sessions.values()) s.dispose?.();
    this.sessions.clear();
  }
}

/** Input channels below which a forward convolution stays on wasm (onnxruntime blocks channels by 8). */
const MIN_ONNX_CHANNELS = 8;

/** Elements of the largest tensor of one chunk onnxruntime works on (16 MiB of float32). */
const CHUNK_ELEMENTS = 1 << 22;
let chunkElements = CHUNK_ELEMENTS;

/**
 * Sets the chunk budget (elements per tensor; default {@link CHUNK_ELEMENTS}) and returns the
 * previous one. Internal: lets tests chunk small batches instead of building 16 MiB tensors.
 */
export function setChunkElements(elements: number): number {
  const previous = chunkElements;
  chunkElements = elements;
  return previous;
}

/**
 * [start, size] of each chunk of a batch of `batch` samples: as few chunks as keep each tensor of
 * `shapes` (batch first) under {@link CHUNK_ELEMENTS}, sizes as even as possible (at most two
 * distinct sizes, so at most two sessions per graph).
 */
export function chunkPlan(batch: number, shapes: number[][]): [number, number][] {
  const perSample = Math.max(1, ...shapes.map((s) => s.slice(1).reduce((p, d) => p * d, 1)));
  const most = Math.max(1, Math.floor(chunkElements / perSample));
  const count = Math.ceil(batch / most);
  const size = Math.floor(batch / count);
  const larger = batch - size * count; // the first `larger` chunks take one more sample
  const plan: [number, number][] = [];
  for (let i = 0, start = 0; i < count; i++) {
    const n = size + (i < larger ? 1 : 0);
    plan.push([start, n]);
    start += n;
  }
  return plan;
}

/** The graphs' geometry of an undilated convolution (every kernel here falls back on dilations). */
function geometryOf(info: {
  padInfo: { top: number; left: number; bottom: number; right: number };
  strideHeight: number;
  strideWidth: number;
}): ConvGeometry {
  const { top, left, bottom, right } = info.padInfo;
  return {
    pads: [top, left, bottom, right],
    strides: [info.strideHeight, info.strideWidth],
    dilations: [1, 1],
  };
}

const nhwc = (dataFormat: unknown) =>
  dataFormat === undefined || dataFormat === 'NHWC' || dataFormat === 'channelsLast';
const isOne = (d: unknown) => d === undefined || d === 1 || (Array.isArray(d) && d[0] === 1 && d[1] === 1);
const geometryKey = (g: ConvGeometry) => `${g.pads}|${g.strides}|${g.dilations}`;
const nonNegativePads = (g: ConvGeometry) => g.pads.every((p) => p >= 0);

/** The kernel configs of one runtime; `previous` gives the kernel each one falls back to. */
function onnxKernels(rt: OnnxKernelRuntime, previous: (name: string) => WasmKernel): KernelConfig[] {
  const conv =
    (fused: boolean): WasmKernel =>
    (args) => {
      const { x, filter, bias, preluActivationWeights } = args.inputs as Record<
        string,
        TensorInfo | undefined
      >;
      const a = args.attrs as Record<string, unknown>;
      const activation = (fused ? (a.activation ?? 'linear') : 'linear') as string;
      const name = fused ? FusedConv2D : Conv2D;
      const fallback = () => previous(name)(args);
      if (!nhwc(a.dataFormat) || !isOne(a.dilations) || preluActivationWeights !== undefined) {
        return fallback();
      }
      if (activation !== 'linear' && activation !== 'relu' && activation !== 'relu6') return fallback();
      const xs = (x as TensorInfo).shape;
      const fs = (filter as TensorInfo).shape;
      const info = backendInfo(xs, fs, a, false);
      const g = geometryOf(info);
      const outShape = [info.batchSize, info.outHeight, info.outWidth, info.outChannels];
      if (bias !== undefined && (bias.shape.length !== 1 || bias.shape[0] !== info.outChannels))
        return fallback();
      if (!nonNegativePads(g) || outShape.some((d) => d <= 0)) return fallback();
      // with fewer input channels than onnxruntime's blocked layout holds (a network's first
      // layer), XNNPACK's direct kernels are several times faster
      if ((xs[3] as number) < MIN_ONNX_CHANNELS && !isPointwise(fs, g)) return fallback();
      const key = `conv|${xs}|${fs}|${geometryKey(g)}|${bias !== undefined}|${activation}`;
      const graph = (n: number) =>
        convForwardGraph({
          xShape: [n, ...xs.slice(1)],
          filterShape: fs,
          outShape: [n, ...outShape.slice(1)],
          geometry: g,
          bias: bias !== undefined,
          activation: activation as FusedActivation,
        });
      const whole: Record<string, TensorInfo> = { w: filter as TensorInfo };
      if (bias !== undefined) whole.b = bias;
      return rt.runBatched(args.backend, key, graph, { x: x as TensorInfo }, whole, {
        y: outShape,
      })[0] as TensorInfo;
    };

  const backpropInput: WasmKernel = (args) => {
    const { dy, filter } = args.inputs as Record<string, TensorInfo>;
    const a = args.attrs as Record<string, unknown>;
    const name = Conv2DBackpropInput;
    if (!nhwc(a.dataFormat) || !isOne(a.dilations)) return previous(name)(args);
    const inShape = a.inputShape as number[];
    const fs = (filter as TensorInfo).shape;
    const info = backendInfo(inShape, fs, a, false);
    const g = geometryOf(info);
    // onnxruntime's ConvTranspose wants an output padding in [0, stride)
    const [ph, pw] = transposeOutputPadding(
      g,
      [info.inHeight, info.inWidth],
      [info.outHeight, info.outWidth],
      fs,
    );
    if (!nonNegativePads(g) || ph < 0 || ph >= g.strides[0] || pw < 0 || pw >= g.strides[1]) {
      return previous(name)(args);
    }
    const key = `dx|${dy!.shape}|${fs}|${inShape}|${geometryKey(g)}`;
    const graph = (n: number) =>
      convBackpropInputGraph({
        dyShape: [n, ...dy!.shape.slice(1)],
        filterShape: fs,
        inShape: [n, ...inShape.slice(1)],
        geometry: g,
      });
    return rt.runBatched(
      args.backend,
      key,
      graph,
      { dy: dy! },
      { w: filter! },
      { dx: inShape },
    )[0] as TensorInfo;
  };

  const backpropFilter =
    (depthwise: boolean): WasmKernel =>
    (args) => {
      const { x, dy } = args.inputs as Record<string, TensorInfo>;
      const a = args.attrs as Record<string, unknown>;
      const name = depthwise ? DepthwiseConv2dNativeBackpropFilter : Conv2DBackpropFilter;
      const filterShape = a.filterShape as number[];
      if (!nhwc(a.dataFormat) || !isOne(a.dilations) || (depthwise && filterShape[3] !== 1)) {
        return previous(name)(args);
      }
      const info = backendInfo(x!.shape, filterShape, a, depthwise);
      const g = geometryOf(info);
      if (!nonNegativePads(g)) return previous(name)(args);
      const key = `dw|${depthwise}|${x!.shape}|${dy!.shape}|${filterShape}|${geometryKey(g)}`;
      const graph = (n: number, accumulate: boolean) =>
        convBackpropFilterGraph({
          xShape: [n, ...x!.shape.slice(1)],
          dyShape: [n, ...dy!.shape.slice(1)],
          filterShape,
          geometry: g,
          depthwise,
          accumulate,
        });
      return rt.runSummed(args.backend, key, graph, { x: x!, dy: dy! }, filterShape);
    };

  const config = (kernelName: string, kernelFunc: WasmKernel): KernelConfig => ({
    kernelName,
    backendName: 'wasm',
    kernelFunc: kernelFunc as unknown as KernelFunc,
  });
  return [
    config(Conv2D, conv(false)),
    config(Conv2DBackpropFilter, backpropFilter(false)),
    config(Conv2DBackpropInput, backpropInput),
    config(DepthwiseConv2dNativeBackpropFilter, backpropFilter(true)),
    config(FusedConv2D, conv(true)),
  ];
}

/** tfjs's geometry of an undilated convolution call (NHWC) from the kernel's attributes. */
function backendInfo(
  xShape: number[],
  filterShape: number[],
  a: Record<string, unknown>,
  depthwise: boolean,
) {
  return convGeometry(
    xShape,
    filterShape,
    a.strides as number | [number, number],
    a.pad as 'same' | 'valid' | number,
    a.dimRoundingMode as 'floor' | 'round' | 'ceil' | undefined,
    depthwise,
  );
}

/** The kernel names the `onnxruntime` engine replaces on `wasm`. */
export const onnxKernelNames: readonly string[] = [
  Conv2D,
  Conv2DBackpropFilter,
  Conv2DBackpropInput,
  DepthwiseConv2dNativeBackpropFilter,
  FusedConv2D,
];

let runtime: OnnxKernelRuntime | undefined;

/** Whether onnxruntime-node is installed where @compress/students can load it. */
export function onnxKernelsAvailable(): boolean {
  try {
    return loadNative() !== null;
  } catch {
    return false;
  }
}

function loadNative(): OrtNative | null {
  return loadOnnxRuntimeNative({
    user: "@compress/students' kernel engine 'onnxruntime'",
    otherwise: "use kernels 'wasm'",
  });
}

/**
 * The `onnxruntime` kernel configs for `threads`, falling back to `previous(name)`. Throws
 * BACKEND_UNAVAILABLE, naming the package to install, where onnxruntime-node is absent.
 */
export function createOnnxKernels(
  options: OnnxKernelOptions,
  previous: (name: string) => WasmKernel,
): KernelConfig[] {
  const threads = options.threads ?? 1;
  if (!Number.isInteger(threads) || threads < 0) {
    throw new CompressError('CONFIG', `threads must be a whole number ≥ 0, found ${threads}`, {
      input: 'threads',
    });
  }
  const ort = loadNative();
  if (ort === null) {
    throw new CompressError(
      'BACKEND_UNAVAILABLE',
      "the students' kernel engine 'onnxruntime' needs the onnxruntime-node package, which is not installed; add it (npm install onnxruntime-node) or use kernels 'wasm'",
      { input: 'kernels' },
    );
  }
  if (runtime === undefined || runtime.threads !== threads || runtime.ort !== ort) {
    runtime?.dispose();
    runtime = new OnnxKernelRuntime(ort, threads);
  }
  return onnxKernels(runtime, previous);
}
