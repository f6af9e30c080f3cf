import { CompressError } from '@compress/core';

/**
 * Checks a queue size K against the training-set size N. A queue at least as large as the training
 * set fills with stale duplicates of the same images (each image would be its own anchor several
 * times over), so K ≥ N is refused; K > N/2 is allowed with a warning, returned as text.
 * @returns a warning, or `null` when K ≤ N/2
 */
export function checkQueueSize(queueSize: number, datasetSize: number): string | null {
  if (!Number.isInteger(datasetSize) || datasetSize < 1) {
    throw new CompressError(
      'INVALID_ARGUMENT',
      `datasetSize must be a positive integer, got ${datasetSize}`,
      {
        input: 'datasetSize',
      },
    );
  }
  const half = Math.floor(datasetSize / 2);
  if (queueSize >= datasetSize) {
    throw new CompressError(
      'INVALID_ARGUMENT',
      `queueSize K = ${queueSize} is not smaller than the training set (N = ${datasetSize}): the queue would hold stale duplicates of the same images; use K < ${datasetSize}, best K ≤ N/2 = ${half}`,
      { input: 'queueSize' },
    );
  }
  if (queueSize > half) {
    return `queueSize K = ${queueSize} is more than half the training set (N = ${datasetSize}): the oldest anchors are features of images seen most of an epoch ago; K ≤ ${half} keeps them fresher`;
  }
  return null;
}
