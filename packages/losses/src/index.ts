export {
  type BaselineLoss,
  ClusterClassifier,
  RegBnLoss,
  RegLoss,
  type RegLossOptions,
} from './baselines.js';
export {
  CompressLoss,
  type CompressLossOptions,
  type CompressLossState,
  defaultCompressLossOptions,
  type Features,
  type Similarities,
} from './compress-loss.js';
export { Linear } from './linear.js';
export {
  MemoryQueue,
  type MemoryQueueJSON,
  type MemoryQueueOptions,
  type MemoryQueueState,
} from './queue.js';
export { checkQueueSize } from './queue-size.js';
export type { QueueStorage } from './storage.js';
export { type LossVariant, type VariantSpec, variantSpec } from './variants/spec.js';
