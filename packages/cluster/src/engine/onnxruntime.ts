import { CompressError } from '@compress/core';
import {
  createSession,
  encodeOnnxModel,
  FLOAT,
  INT64,
  loadOnnxRuntime,
  notInstalled,
  type OnnxNode,
  type OnnxValue,
  type OrtApi,
  type OrtSession,
  type OrtTensor,
} from '@compress/onnx';

/**
 * The second engine of @compress/cluster: the big products run by onnxruntime-node (an optional
 * peer dependency), whose CPU matrix product uses the machine's widest vector instructions (AVX2
 * and FMA where present) — about twice what WebAssembly's 128-bit SIMD reaches on the same core.
 * One small graph does a block of the work: scores = Gemm(queries, baseᵀ) (for L2, 2⟨q, x⟩ − ‖x‖²),
 * then TopK, so only k (score, index) pairs per query come back to JavaScript.
 */

/** Which engine runs the products: `auto` picks onnxruntime when installed and the work is large. */
export type Engine = 'auto' | 'wasm' | 'onnxruntime';
export const ENGINES: readonly Engine[] = ['auto', 'wasm', 'onnxruntime'];

/** Multiply-adds from which `auto` hands a product to onnxruntime (below, its per-call cost shows). */
export const ONNX_MIN_WORK = 5e7;

export function checkEngine(engine: unknown, fn: string): Engine {
  if (!ENGINES.includes(engine as Engine)) {
    throw new CompressError(
      'INVALID_ARGUMENT',
      `${fn}: options.engine must be one of ${ENGINES.map((e) => `'${e}'`).join(', ')}, got ${JSON.stringify(engine)}`,
      { input: 'engine' },
    );
  }
  return engine as Engine;
}

/**
 * The engine that runs a product of `work` multiply-adds: onnxruntime (loaded) or null for the
 * WebAssembly kernels. `engine: 'onnxruntime'` where it is not installed is an error.
 */
export async function resolveEngine(engine: Engine, work: number, fn: string): Promise<TopKEngine | null> {
  if (engine === 'wasm') return null;
  if (engine === 'auto' && work < ONNX_MIN_WORK) return null;
  const ort = await loadOnnxRuntime();
  if (ort === null) {
    if (engine === 'auto') return null;
    throw notInstalled(`${fn}: options.engine 'onnxruntime'`, "use engine 'wasm'");
  }
  return new TopKEngine(ort);
}

const sessions = new Map<string, Promise<OrtSession>>();

/** Runs the score-and-select graph on blocks; one cached session per (metric form, threads). */
export class TopKEngine {
  constructor(private readonly ort: OrtApi) {}

  private session(l2: boolean, threads: number): Promise<OrtSession> {
    const key = `${l2 ? 'l2' : 'ip'}:${threads}`;
    let s = sessions.get(key);
    if (s === undefined) {
      const value = (
        name: string,
        elemType: typeof FLOAT | typeof INT64,
        shape: (number | string)[],
      ): OnnxValue => ({
        name,
        elemType,
        shape,
      });
      const gemm: OnnxNode = {
        opType: 'Gemm',
        inputs: l2 ? ['queries', 'base', 'neg_norms'] : ['queries', 'base'],
        outputs: ['scores'],
        ints: { transB: 1 },
        floats: l2 ? { alpha: 2, beta: 1 } : {},
      };
      const model = encodeOnnxModel({
        name: `cluster-topk-${l2 ? 'l2' : 'ip'}`,
        opset: 13,
        nodes: [
          gemm,
          {
            opType: 'TopK',
            inputs: ['scores', 'k'],
            outputs: ['values', 'indices'],
            ints: { axis: 1, largest: 1, sorted: 1 },
          },
        ],
        inputs: [
          value('queries', FLOAT, ['m', 'd']),
          value('base', FLOAT, ['n', 'd']),
          ...(l2 ? [value('neg_norms', FLOAT, [1, 'n'])] : []),
          value('k', INT64, [1]),
        ],
        outputs: [value('values', FLOAT, ['m', 'k']), value('indices', INT64, ['m', 'k'])],
      });
      s = createSession(model, { threads, user: 'cluster' });
      s.catch(() => sessions.delete(key));
      sessions.set(key, s);
    }
    return s;
  }

  /**
   * For each of the m query rows, the k best of the n base rows (scores descending, ties to the
   * lower index): ⟨q, x⟩, or with `negNorms` (−‖x‖² per base row) 2⟨q, x⟩ − ‖x‖².
   */
  async topk(
    queries: Float32Array,
    m: number,
    base: Float32Array,
    n: number,
    d: number,
    k: number,
    negNorms: Float32Array | null,
    threads: number,
  ): Promise<{ values: Float32Array; indices: BigInt64Array }> {
    const { Tensor } = this.ort;
    const session = await this.session(negNorms !== null, threads);
    const feeds: Record<string, OrtTensor> = {
      queries: new Tensor('float32', queries, [m, d]),
      base: new Tensor('float32', base, [n, d]),
      k: new Tensor('int64', BigInt64Array.of(BigInt(k)), [1]),
    };
    if (negNorms !== null) feeds.neg_norms = new Tensor('float32', negNorms, [1, n]);
    const out = await session.run(feeds);
    return { values: out.values!.data as Float32Array, indices: out.indices!.data as BigInt64Array };
  }
}
