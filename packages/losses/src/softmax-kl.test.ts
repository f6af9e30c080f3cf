import { Rng } from '@compress/core';
import '@tensorflow/tfjs-backend-wasm';
import { expectClose } from '@compress/vitest-config/close';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { SoftmaxKlSimd } from './engines/simd.js';
import { WasmHeap } from './engines/wasm-heap.js';
import { type SoftmaxSums, softmaxKL, softmaxSums } from './softmax-kl.js';

/**
 * Float64 log p and log q (batch×K) from the definitions, for the first `batch` of the B columns of
 * the K×B logit matrices.
 */
function referenceLogProbs(lt: Float32Array, ls: Float32Array, K: number, B: number, T: number, batch = B) {
  const logp = new Float64Array(batch * K);
  const logq = new Float64Array(batch * K);
  for (let i = 0; i < batch; i++) {
    const a = Array.from({ length: K }, (_, k) => lt[k * B + i]! / T);
    const b = Array.from({ length: K }, (_, k) => ls[k * B + i]! / T);
    const ma = Math.max(...a);
    const mb = Math.max(...b);
    const la = Math.log(a.reduce((s, x) => s + Math.exp(x - ma), 0)) + ma;
    const lb = Math.log(b.reduce((s, x) => s + Math.exp(x - mb), 0)) + mb;
    for (let k = 0; k < K; k++) {
      logp[i * K + k] = a[k]! - la;
      logq[i * K + k] = b[k]! - lb;
    }
  }
  return { logp, logq };
}

/** Float64 reference from the definitions: loss and (q − p)/(B·T) as B×K. */
function reference(lt: Float32Array, ls: Float32Array, K: number, B: number, T: number, batch = B) {
  const { logp, logq } = referenceLogProbs(lt, ls, K, B, T, batch);
  let loss = 0;
  const g = new Float64Array(batch * K);
  for (let j = 0; j < g.length; j++) {
    loss += Math.exp(logp[j]!) * (logp[j]! - logq[j]!);
    g[j] = (Math.exp(logq[j]!) - Math.exp(logp[j]!)) / (batch * T);
  }
  return { loss: loss / batch, g };
}

/** Float64 p and log q (B×K) from the definitions. */
function referenceProbs(lt: Float32Array, ls: Float32Array, K: number, B: number, T: number) {
  const { logp, logq } = referenceLogProbs(lt, ls, K, B, T);
  return { p: logp.map(Math.exp), logq };
}

/** p and log q (B×K) as the wasm engine's similarities take them from the softmax pass's sums. */
function probsFromSums(
  et: Float32Array,
  ls: Float32Array,
  sums: SoftmaxSums,
  K: number,
  B: number,
  T: number,
) {
  const p = new Float64Array(B * K);
  const logq = new Float64Array(B * K);
  for (let i = 0; i < B; i++) {
    for (let k = 0; k < K; k++) {
      p[i * K + k] = et[k * B + i]! / sums.st[i]!;
      logq[i * K + k] = (ls[k * B + i]! - sums.ms[i]!) / T - Math.log(sums.ss[i]!);
    }
  }
  return { p, logq };
}

/** Reads chunk-major g back as B×K. */
function unchunk(g: Float32Array, K: number, B: number, chunk: number, batch = B): Float64Array {
  const out = new Float64Array(batch * K);
  for (let k0 = 0; k0 < K; k0 += chunk) {
    const n = Math.min(chunk, K - k0);
    for (let i = 0; i < batch; i++) for (let j = 0; j < n; j++) out[i * K + k0 + j] = g[k0 * B + i * n + j]!;
  }
  return out;
}

function inputs(K: number, B: number, scale: number, seed: number) {
  const rng = new Rng(seed);
  return {
    lt: rng.fillUniform(new Float32Array(K * B), -scale, scale),
    ls: rng.fillUniform(new Float32Array(K * B), -scale, scale),
  };
}

/**
 * The plain JavaScript loss is float64 throughout (float32 inputs, exact): sums of K terms of up to
 * max|logit|/T cost ~K·1e-16 of that; measured ≤ 2e-15 of the loss, allowed 1e-10.
 */
const F64_RTOL = 1e-10;
/**
 * The SIMD loss sums float32 exponentials (measured ≤ 3e-8 of the loss); gradients are float32
 * (q − p)/(B·T) in both versions (measured ≤ 2e-7 of their scale): allowed 1e-5 of the scale.
 */
const RTOL = 1e-5;

const cases = [
  { K: 37, B: 8, T: 0.04, chunk: 8, scale: 1 },
  { K: 100, B: 12, T: 0.07, chunk: 32, scale: 1 },
  { K: 64, B: 4, T: 0.02, chunk: 64, scale: 1 },
  // logits up to ±200: exp would overflow float32 without the max subtraction
  { K: 50, B: 8, T: 0.005, chunk: 13, scale: 1 },
  { K: 300, B: 16, T: 1, chunk: 128, scale: 3 },
];

describe('softmaxKL (plain JavaScript)', () => {
  it.each(cases)(
    'K=$K B=$B T=$T chunk=$chunk matches the float64 definition',
    ({ K, B, T, chunk, scale }) => {
      const { lt, ls } = inputs(K, B, scale, K);
      const want = reference(lt, ls, K, B, T);
      const g = new Float32Array(K * B);
      const loss = softmaxKL(lt, ls, K, B, T, g, chunk);
      expect(Number.isFinite(loss)).toBe(true);
      expectClose(loss, want.loss, { rtol: F64_RTOL, what: 'loss' });
      expectClose(unchunk(g, K, B, chunk), want.g, { rtol: RTOL, what: 'gradient' });
    },
  );

  it.each(cases)(
    'K=$K B=$B T=$T: p and log q from softmaxSums match the float64 definition',
    ({ K, B, T, scale }) => {
      const { lt, ls } = inputs(K, B, scale, K);
      const want = referenceProbs(lt, ls, K, B, T);
      const et = lt.slice();
      const sums = softmaxSums(et, ls.slice(), K, B, T);
      const got = probsFromSums(et, ls, sums, K, B, T);
      // p: float32 exponentials over float64 sums (measured ≤ 2.8e-8 of max p); log q: float64 from
      // float32 inputs (measured ≤ 1.5e-16 of max|log q|)
      expectClose(got.p, want.p, { rtol: RTOL, what: 'p' });
      expectClose(got.logq, want.logq, { rtol: F64_RTOL, what: 'log q' });
    },
  );

  it('ignores padding columns beyond `batch`', () => {
    const { lt, ls } = inputs(20, 8, 1, 5);
    const want = reference(lt, ls, 20, 8, 0.1, 6);
    const g = new Float32Array(20 * 8);
    expectClose(softmaxKL(lt, ls, 20, 8, 0.1, g, 7, 6), want.loss, { rtol: F64_RTOL, what: 'loss' });
    expectClose(unchunk(g, 20, 8, 7, 6), want.g, { rtol: RTOL, what: 'gradient' });
  });
});

describe('softmaxKL (WebAssembly SIMD on the tfjs wasm heap)', () => {
  let heap: WasmHeap;
  let simd: SoftmaxKlSimd;
  beforeAll(async () => {
    await tf.setBackend('wasm');
    await tf.ready();
    heap = WasmHeap.of(tf.backend())!;
    expect(heap).not.toBeNull();
    simd = SoftmaxKlSimd.create(heap)!;
    expect(simd).not.toBeNull();
  });

  it.each([...cases, { K: 4099, B: 8, T: 0.04, chunk: 2048, scale: 1 }])(
    'K=$K B=$B T=$T chunk=$chunk matches the float64 definition',
    ({ K, B, T, chunk, scale }) => {
      const { lt, ls } = inputs(K, B, scale, K);
      const want = reference(lt, ls, K, B, T);
      const pt = heap.malloc(K * B * 4, 'lt');
      const ps = heap.malloc(K * B * 4, 'ls');
      const pg = heap.malloc(K * B * 4, 'g');
      try {
        heap.f32(pt, K * B).set(lt);
        heap.f32(ps, K * B).set(ls);
        const loss = simd.run(pt, ps, K, B, T, pg, chunk, B);
        expectClose(loss, want.loss, { rtol: RTOL, what: 'loss' });
        expectClose(unchunk(heap.f32(pg, K * B), K, B, chunk), want.g, { rtol: RTOL, what: 'gradient' });
      } finally {
        heap.free(pt);
        heap.free(ps);
        heap.free(pg);
      }
    },
  );

  it.each(cases)(
    'K=$K B=$B T=$T: p and log q from its sums match the float64 definition',
    ({ K, B, T, scale }) => {
      const { lt, ls } = inputs(K, B, scale, K);
      const want = referenceProbs(lt, ls, K, B, T);
      const pt = heap.malloc(K * B * 4, 'lt');
      const ps = heap.malloc(K * B * 4, 'ls');
      try {
        heap.f32(pt, K * B).set(lt);
        heap.f32(ps, K * B).set(ls);
        const sums = simd.sums(pt, ps, K, B, T);
        const got = probsFromSums(heap.f32(pt, K * B), ls, sums, K, B, T);
        // the SIMD exp and f32 partial sums: measured ≤ 1.9e-7 of max p, ≤ 1.2e-8 of max|log q|, and
        // ≤ 1.2e-7 between its sums and the plain pass's
        expectClose(got.p, want.p, { rtol: RTOL, what: 'p' });
        expectClose(got.logq, want.logq, { rtol: RTOL, what: 'log q' });
        // the same sums as the plain JavaScript pass
        const js = softmaxSums(lt.slice(), ls.slice(), K, B, T);
        expectClose(sums.mt, js.mt, { rtol: 0, what: 'teacher maxima' });
        expectClose(sums.ms, js.ms, { rtol: 0, what: 'student maxima' });
        expectClose(sums.st, js.st, { rtol: RTOL, what: 'St' });
        expectClose(sums.ss, js.ss, { rtol: RTOL, what: 'Ss' });
      } finally {
        heap.free(pt);
        heap.free(ps);
      }
    },
  );

  it('ignores padding columns and zeroes their gradient', () => {
    const K = 30;
    const B = 8;
    const { lt, ls } = inputs(K, B, 1, 3);
    const want = reference(lt, ls, K, B, 0.04, 5);
    const pt = heap.malloc(K * B * 4, 'lt');
    const ps = heap.malloc(K * B * 4, 'ls');
    const pg = heap.malloc(K * B * 4, 'g');
    heap.f32(pt, K * B).set(lt);
    heap.f32(ps, K * B).set(ls);
    const loss = simd.run(pt, ps, K, B, 0.04, pg, 16, 5);
    expectClose(loss, want.loss, { rtol: RTOL, what: 'loss' });
    const g = unchunk(heap.f32(pg, K * B), K, B, 16);
    expectClose(g.subarray(0, 5 * K), want.g, { rtol: RTOL, what: 'gradient' });
    expect(Array.from(g.subarray(5 * K)).every((x) => x === 0)).toBe(true);
    for (const p of [pt, ps, pg]) heap.free(p);
  });
});
