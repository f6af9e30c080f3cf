// nn.Linear (weight [in, out] as tfjs holds it), forward and backward.
import type { Tape, Value } from './tape.js';

/** y = x·W + b; dx = dy·Wᵀ, dW = xᵀ·dy, db = Σ dy over the batch. */
export function linear(t: Tape, x: Value, w: Value, b: Value): Value {
  const n = x.shape[0] as number;
  const out = w.shape[1] as number;
  const y = t.op('Gemm', [x.name, w.name, b.name]);
  return t.record([x, w, b], y, [n, out], (dy, want) => [
    want[0] ? t.op('Gemm', [dy, w.name], { ints: { transB: 1 } }) : null,
    t.op('Gemm', [x.name, dy], { ints: { transA: 1 } }),
    t.sumLeading(dy, [n, out]),
  ]);
}
