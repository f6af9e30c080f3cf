import { expectClose } from '@compress/vitest-config/close';
import { expect } from 'vitest';

/**
 * Two float32 computations of the same steps (onnxruntime's kernels against tfjs's or PyTorch's,
 * sums in other orders) agree to this fraction of each tensor's scale; measured ≤ 6e-6 on AVX-512
 * (AMD EPYC); the bar of the step engine's issue.
 */
export const RTOL = 1e-5;

/**
 * Every tensor within RTOL of its own scale, except the momentum buffers, biases and running
 * means: each of those is compared with the scale of the largest of its kind. They start at zero
 * (or are sums of gradients), so their float error comes from the magnitudes flowing through the
 * whole pass, not from their own size, and some are zero but for rounding: the bias of a projection followed by train-mode BatchNorm (Reg-BN) has a zero
 * gradient, so its buffer is wd·bias plus noise; a 1×1 convolution of BatchNorm outputs has a zero
 * batch mean, so the next BatchNorm's running mean is noise. No two engines agree on noise.
 */
export function compareStates(
  got: Map<string, Float32Array>,
  want: Map<string, Float32Array>,
  /** Other bars for some tensors, by name, each with its measured reason where it is used. */
  rtols: Record<string, number> = {},
): void {
  const kind = (name: string) =>
    name.startsWith('momentum.')
      ? 'momentum'
      : name.endsWith('running_mean')
        ? 'running_mean'
        : name.endsWith('.bias')
          ? 'bias'
          : null;
  const scales = new Map<string, number>();
  for (const [name, w] of want) {
    const k = kind(name);
    if (k) for (const v of w) scales.set(k, Math.max(scales.get(k) ?? 0, Math.abs(v)));
  }
  for (const [name, w] of want) {
    const g = got.get(name)!;
    expect(g, name).toBeDefined();
    const k = kind(name);
    if (k) {
      let worst = 0;
      for (let i = 0; i < w.length; i++) worst = Math.max(worst, Math.abs(g[i]! - w[i]!));
      // all zeros (biases at lr 0): equal or not
      const ratio = worst === 0 ? 0 : worst / scales.get(k)!;
      expect(ratio, `${name}: max difference / largest ${k} entry`).toBeLessThanOrEqual(rtols[name] ?? RTOL);
    } else {
      expectClose(g, w, { rtol: rtols[name] ?? RTOL, what: name });
    }
  }
}
