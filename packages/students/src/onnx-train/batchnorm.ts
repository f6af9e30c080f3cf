// nn.BatchNorm2d in train mode (PyTorch's: batch statistics, biased variance in the normalisation,
// unbiased variance in the running average), forward, running statistics and backward.
import type { Tape, Value } from './tape.js';

export interface BatchNormTrainParts {
  x: Value;
  gamma: Value;
  beta: Value;
  runningMean: Value;
  runningVar: Value;
  eps: number;
  momentum: number;
}

/**
 * y = γ·x̂ + β with x̂ = (x − mean)/√(var + eps) over N, H, W of NHWC maps (or N for [N, C]). Returns y and the
 * names of the new running mean and variance ([C]). Backward:
 * dβ = Σ dy, dγ = Σ dy·x̂, dx = γ/σ·(dy − dβ/m − x̂·dγ/m), m values per channel.
 */
export function batchNormTrain(
  t: Tape,
  o: BatchNormTrainParts,
): { y: Value; runningMean: string; runningVar: string } {
  const { x, eps, momentum } = o;
  const c = x.shape.at(-1) as number;
  const m = x.shape.reduce((a, b) => a * b, 1) / c;
  // sums over N, H, W as products with a constant row ([C] results broadcast over the last axis)
  const reduceMean = (v: string) => t.sumLeading(v, x.shape, 1 / m);
  const reduceSum = (v: string) => t.sumLeading(v, x.shape);
  const mean = reduceMean(x.name);
  const centred = t.op('Sub', [x.name, mean]);
  const variance = reduceMean(t.op('Mul', [centred, centred]));
  const invStd = t.op('Reciprocal', [t.op('Sqrt', [t.op('Add', [variance, t.scalar(eps)])])]);
  const xhat = t.op('Mul', [centred, invStd]);
  // [C] broadcasts over the last axis
  const gamma = o.gamma.name;
  const beta = o.beta.name;
  const y = t.op('Add', [t.op('Mul', [xhat, gamma]), beta]);
  const runningMean = t.op('Add', [
    t.op('Mul', [o.runningMean.name, t.scalar(1 - momentum)]),
    t.op('Mul', [mean, t.scalar(momentum)]),
  ]);
  const runningVar = t.op('Add', [
    t.op('Mul', [o.runningVar.name, t.scalar(1 - momentum)]),
    t.op('Mul', [variance, t.scalar((momentum * m) / (m - 1))]),
  ]);
  const out = t.record([x, o.gamma, o.beta], y, x.shape, (dy, want) => {
    const dBeta = reduceSum(dy);
    const dGamma = reduceSum(t.op('Mul', [dy, xhat]));
    let dx: string | null = null;
    if (want[0]) {
      const inner = t.op('Sub', [
        t.op('Sub', [dy, t.op('Mul', [dBeta, t.scalar(1 / m)])]),
        t.op('Mul', [xhat, t.op('Mul', [dGamma, t.scalar(1 / m)])]),
      ]);
      dx = t.op('Mul', [inner, t.op('Mul', [gamma, invStd])]);
    }
    return [dx, dGamma, dBeta];
  });
  return { y: out, runningMean, runningVar };
}

/**
 * nn.BatchNorm2d in eval mode: y = γ·(x − running_mean)/√(running_var + eps) + β, the running
 * statistics read and left as they are. Backward: dx = dy·γ/√(var + eps), dγ = Σ dy·x̂, dβ = Σ dy.
 */
export function batchNormEval(t: Tape, o: Omit<BatchNormTrainParts, 'momentum'>): Value {
  const { x, eps } = o;
  const invStd = t.op('Reciprocal', [t.op('Sqrt', [t.op('Add', [o.runningVar.name, t.scalar(eps)])])]);
  const xhat = t.op('Mul', [t.op('Sub', [x.name, o.runningMean.name]), invStd]);
  const y = t.op('Add', [t.op('Mul', [xhat, o.gamma.name]), o.beta.name]);
  return t.record([x, o.gamma, o.beta], y, x.shape, (dy, want) => [
    want[0] ? t.op('Mul', [dy, t.op('Mul', [o.gamma.name, invStd])]) : null,
    t.sumLeading(t.op('Mul', [dy, xhat]), x.shape),
    t.sumLeading(dy, x.shape),
  ]);
}
