import type { OptimOptions } from './options.js';

/** The learning rate of an epoch: lr × gamma^(milestones passed) (the paper's step schedule). */
export function learningRate(
  optim: Pick<OptimOptions, 'lr' | 'milestones' | 'gamma'>,
  epoch: number,
): number {
  let lr = optim.lr;
  for (const m of optim.milestones) if (epoch >= m) lr *= optim.gamma;
  return lr;
}
