// moved to @compress/core (the trainer checks every teacher too); still exported here
export { CheckedTeacher, type CheckedTeacherOptions, checkedTeacher } from '@compress/core';
export { isCudaInstalled, type Provider } from '@compress/onnx';
export { createFashionMnistTeacher, fashionMnistTeacherPath } from './builtin.js';
export { cacheTeacherFeatures, cacheTeacherFeaturesSteps } from './cache-features.js';
export type { CacheDtype, FeatureShardRange } from './cache-format.js';
export {
  type CacheSummary,
  type CacheTeacherFeaturesOptions,
  type FeatureCachePlan,
  featureShardFile,
  featureShardRange,
  planFeatureCache,
} from './cache-plan.js';
export {
  type CheckFeatureShardsOptions,
  checkFeatureShards,
  type FeatureShardInfo,
  type FeatureShardSet,
  inspectFeatureShard,
  type MergeFeatureCachesOptions,
  type MergeSummary,
  mergeFeatureCaches,
  readFeatureShard,
} from './cache-shards.js';
export { CachedTeacher, type CachedTeacherOptions } from './cached-teacher.js';
export { assertFreeSpace, formatSize } from './free-space.js';
export { IMAGENET, type InputLayout, type Normalization } from './layout.js';
export {
  type ChannelMode,
  defaultOnnxTeacherOptions,
  OnnxTeacher,
  type OnnxTeacherOptions,
} from './onnx-teacher.js';
