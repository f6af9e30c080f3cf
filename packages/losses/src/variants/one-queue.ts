import type { VariantSpec } from './spec.js';

/**
 * `one-queue` (the paper's "Ours-1q", `train_student_one_queue.py`): the student gets a linear head
 * Ds→Dt, and teacher and student similarities are both taken against the single teacher queue, which
 * stores teacher features only.
 */
export const oneQueue: VariantSpec = {
  name: 'one-queue',
  studentQueue: null,
  head: true,
};
