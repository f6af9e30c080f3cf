// ReLU, ReLU6, the residual add and relu(a + b), forward and backward.
import type { Tape, Value } from './tape.js';

/** dy where `mask` holds, 0 elsewhere. */
function masked(t: Tape, mask: string, dy: string): string {
  return t.op('Where', [mask, dy, t.scalar(0)]);
}

/** y = max(x, 0); dx = dy·[y > 0] (tfjs: dy·step(x), the same mask). */
export function relu(t: Tape, x: Value): Value {
  const y = t.op('Relu', [x.name]);
  return t.record([x], y, x.shape, (dy) => [masked(t, t.op('Greater', [y, t.scalar(0)]), dy)]);
}

/** y = min(max(x, 0), 6); dx = dy·[0 < x ≤ 6] (as tfjs's Relu6 gradient). */
export function relu6(t: Tape, x: Value): Value {
  const y = t.op('Clip', [x.name, t.scalar(0), t.scalar(6)]);
  return t.record([x], y, x.shape, (dy) => {
    const inside = t.op('And', [
      t.op('Greater', [x.name, t.scalar(0)]),
      t.op('LessOrEqual', [x.name, t.scalar(6)]),
    ]);
    return [masked(t, inside, dy)];
  });
}

/** y = a + b (same shapes); both take dy. */
export function add(t: Tape, a: Value, b: Value): Value {
  const y = t.op('Add', [a.name, b.name]);
  return t.record([a, b], y, a.shape, (dy) => [dy, dy]);
}

/** y = relu(a + b), the end of a residual block; both take dy·[y > 0]. */
export function addRelu(t: Tape, a: Value, b: Value): Value {
  const y = t.op('Relu', [t.op('Add', [a.name, b.name])]);
  return t.record([a, b], y, a.shape, (dy) => {
    const g = masked(t, t.op('Greater', [y, t.scalar(0)]), dy);
    return [g, g];
  });
}
