import { assertUnreachable } from '@compress/core';
import { momentum } from './momentum.js';
import { noMomentum } from './no-momentum.js';
import { oneQueue } from './one-queue.js';

/** The three CompRess variants of the paper (see each variant's file). */
export type LossVariant = 'momentum' | 'no-momentum' | 'one-queue';

/** What a variant compares and what it enqueues: the only things in which the variants differ. */
export interface VariantSpec {
  name: LossVariant;
  /**
   * What fills the student queue after each step: the student's own features, the key encoder's, or
   * `null` when there is no student queue (student similarities are taken against the teacher queue).
   */
  studentQueue: 'student' | 'key' | null;
  /** Whether the student is projected by a linear head Ds→Dt before its similarities are taken. */
  head: boolean;
}

/** The spec of a variant; throws for a name outside {@link LossVariant}. */
export function variantSpec(variant: LossVariant): VariantSpec {
  switch (variant) {
    case 'momentum':
      return momentum;
    case 'no-momentum':
      return noMomentum;
    case 'one-queue':
      return oneQueue;
    default:
      return assertUnreachable(variant, "variant (expected 'momentum', 'no-momentum' or 'one-queue')");
  }
}
