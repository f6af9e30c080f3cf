import { softmaxKlWasm } from '../kernels/softmax_kl_wasm.js';
import type { SoftmaxSums } from '../softmax-kl.js';
import type { WasmHeap } from './wasm-heap.js';

/** The WebAssembly global (its types are in the DOM lib, which this package does not load). */
const WA = (
  globalThis as unknown as {
    WebAssembly: {
      Module: new (bytes: Uint8Array) => object;
      Instance: new (module: object, imports: object) => { exports: unknown };
    };
  }
).WebAssembly;

interface Exports {
  colmax(lt: number, ls: number, K: number, B: number, mt: number, ms: number): void;
  expsum(
    lt: number,
    ls: number,
    K: number,
    B: number,
    invT: number,
    mt: number,
    ms: number,
    acc32: number,
    acc64: number,
  ): void;
  grad(et: number, es: number, K: number, B: number, chunk: number, wt: number, ws: number, g: number): void;
}

/**
 * The softmax/KL/gradient pass of {@link softmaxKL} as WebAssembly SIMD (kernels/softmax_kl.wat),
 * running on the tfjs wasm backend's own memory: four lanes of batch columns at a time, a
 * vectorised exp, f32 partial sums flushed into f64 every 64 rows.
 */
export class SoftmaxKlSimd {
  private readonly heap: WasmHeap;
  private readonly fns: Exports;

  private constructor(heap: WasmHeap, fns: Exports) {
    this.heap = heap;
    this.fns = fns;
  }

  /** The kernels bound to `heap`'s memory, or null where that memory is not reachable or SIMD is missing. */
  static create(heap: WasmHeap): SoftmaxKlSimd | null {
    if (heap.memory === null) return null;
    try {
      const bytes = Buffer.from(softmaxKlWasm, 'base64');
      const mod = new WA.Module(bytes);
      const inst = new WA.Instance(mod, { env: { memory: heap.memory } });
      return new SoftmaxKlSimd(heap, inst.exports as unknown as Exports);
    } catch {
      return null;
    }
  }

  /**
   * Same contract as {@link softmaxKL} on heap buffers: `lt`, `ls`, `g` are byte offsets of K×B
   * matrices; B (a multiple of 4) counts `batch` real columns and padding.
   */
  run(
    lt: number,
    ls: number,
    K: number,
    B: number,
    T: number,
    g: number,
    chunk: number,
    batch: number,
  ): number {
    const heap = this.heap;
    const scratch = heap.malloc(B * 4 * 13, 'softmax scratch');
    try {
      const mt = scratch;
      const ms = mt + B * 4;
      const acc32 = ms + B * 4;
      const acc64 = acc32 + 3 * B * 4; // 8-byte aligned: scratch is, and 20·B is a multiple of 8
      const wt = acc64 + 3 * B * 8;
      const ws = wt + B * 4;
      this.fns.colmax(lt, ls, K, B, mt, ms);
      this.fns.expsum(lt, ls, K, B, 1 / T, mt, ms, acc32, acc64);
      const mtv = heap.f32(mt, B);
      const msv = heap.f32(ms, B);
      const acc = new Float64Array(heap.f32(acc64, 0).buffer, acc64, 3 * B);
      const wtv = heap.f32(wt, B);
      const wsv = heap.f32(ws, B);
      const invT = 1 / T;
      let loss = 0;
      for (let i = 0; i < B; i++) {
        if (i >= batch) {
          wtv[i] = 0;
          wsv[i] = 0;
          continue;
        }
        const st = acc[i]!;
        const ss = acc[B + i]!;
        loss += (acc[2 * B + i]! * invT) / st - (mtv[i]! - msv[i]!) * invT - Math.log(st) + Math.log(ss);
        wtv[i] = 1 / (st * batch * T);
        wsv[i] = 1 / (ss * batch * T);
      }
      this.fns.grad(lt, ls, K, B, chunk, wt, ws, g);
      return loss / batch;
    } finally {
      heap.free(scratch);
    }
  }

  /**
   * The kernels' first half, as {@link softmaxSums} on heap buffers (`lt`, `ls`: byte offsets of
   * K×B matrices, B a multiple of 4, overwritten by the exponentials): the column maxima (f32) and
   * the f64 sums, copied out of the heap.
   */
  sums(lt: number, ls: number, K: number, B: number, T: number): SoftmaxSums {
    const heap = this.heap;
    const scratch = heap.malloc(B * 4 * 11, 'softmax scratch');
    try {
      const mt = scratch;
      const ms = mt + B * 4;
      const acc32 = ms + B * 4;
      const acc64 = acc32 + 3 * B * 4; // 8-byte aligned, as in run
      this.fns.colmax(lt, ls, K, B, mt, ms);
      this.fns.expsum(lt, ls, K, B, 1 / T, mt, ms, acc32, acc64);
      const acc = new Float64Array(heap.f32(acc64, 0).buffer, acc64, 3 * B);
      return {
        mt: Float64Array.from(heap.f32(mt, B)),
        ms: Float64Array.from(heap.f32(ms, B)),
        st: acc.slice(0, B),
        ss: acc.slice(B, 2 * B),
        cross: acc.slice(2 * B, 3 * B),
      };
    } finally {
      heap.free(scratch);
    }
  }
}
