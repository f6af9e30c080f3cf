export type { Engine } from './engine/onnxruntime.js';
export {
  type AssignOptions,
  assign,
  defaultKMeansOptions,
  type KMeansInit,
  type KMeansOptions,
  type KMeansProgress,
  type KMeansResult,
  kmeans,
  kmeansIterate,
} from './kmeans.js';
export { defaultKnnOptions, type KnnOptions, type KnnResult, knnSearch, type Metric } from './knn.js';
export { type KnnPart, type MergeKnnOptions, mergeKnnResults } from './knn-merge.js';
export { type LinearSumAssignment, type LinearSumAssignmentOptions, linearSumAssignment } from './lsa.js';
