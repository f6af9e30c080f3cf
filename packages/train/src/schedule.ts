import { stepLearningRate } from '@compress/students';
import type { OptimOptions } from './options.js';

/** The learning rate of an epoch: lr × gamma^(milestones passed) (the paper's step schedule). */
export function learningRate(
  optim: Pick<OptimOptions, 'lr' | 'milestones' | 'gamma'>,
  epoch: number,
): number {
  return stepLearningRate(optim, epoch);
}
