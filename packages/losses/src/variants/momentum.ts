import type { VariantSpec } from './spec.js';

/**
 * `momentum` (the paper's "Ours-2q", `train_student.py`): two queues. The student queue stores the
 * normalised features of the key encoder, an exponential moving average of the student, so the
 * student's anchors change slowly (as in MoCo).
 */
export const momentum: VariantSpec = {
  name: 'momentum',
  studentQueue: 'key',
  head: false,
};
