import type { Rng } from '@compress/core';

/**
 * Weight initialisations as PyTorch defines them (torch.nn.init), on the project's seeded RNG.
 * fanIn = Cin/groups·kh·kw and fanOut = Cout·kh·kw for convolutions (torch's
 * _calculate_fan_in_and_fan_out on an [Cout, Cin/groups, kh, kw] weight).
 */
export type Init =
  /** nn.Conv2d / nn.Linear default: kaiming_uniform_(a=√5) ⇒ U(−1/√fanIn, 1/√fanIn). */
  | { kind: 'torch-default' }
  /** kaiming_normal_(mode='fan_out', nonlinearity='relu') ⇒ N(0, 2/fanOut) (torchvision ResNet, MobileNetV2). */
  | { kind: 'kaiming-normal-fan-out' }
  /** normal_(0, std) (torchvision MobileNetV2's classifier: std 0.01). */
  | { kind: 'normal'; std: number }
  | { kind: 'zeros' }
  | { kind: 'ones' }
  /** U(−b, b) (nn.Linear / nn.Conv2d default bias: b = 1/√fanIn). */
  | { kind: 'uniform'; bound: number };

/**
 * `n` values drawn as `init` says. With `rng` null nothing random is drawn (random kinds give
 * zeros): for models whose weights are about to be overwritten (checkpoints, EMA copies).
 */
export function initValues(
  init: Init,
  n: number,
  fanIn: number,
  fanOut: number,
  rng: Rng | null,
): Float32Array {
  const out = new Float32Array(n);
  if (rng === null) return init.kind === 'ones' ? out.fill(1) : out;
  switch (init.kind) {
    case 'torch-default':
      return rng.fillUniform(out, -1 / Math.sqrt(fanIn), 1 / Math.sqrt(fanIn));
    case 'kaiming-normal-fan-out':
      return rng.fillNormal(out, 0, Math.sqrt(2 / fanOut));
    case 'normal':
      return rng.fillNormal(out, 0, init.std);
    case 'zeros':
      return out;
    case 'ones':
      return out.fill(1);
    case 'uniform':
      return rng.fillUniform(out, -init.bound, init.bound);
  }
}
