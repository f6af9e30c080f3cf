import type { VariantSpec } from './spec.js';

/**
 * `no-momentum` (`train_student_without_momentum.py`): two queues. The teacher queue stores the
 * teacher's normalised features, the student queue the student's own normalised features, detached.
 */
export const noMomentum: VariantSpec = {
  name: 'no-momentum',
  studentQueue: 'student',
  head: false,
};
