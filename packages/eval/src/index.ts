export { type KnnOptions, type KnnResult, type KnnVote, knnAccuracy, voteNeighbors } from './knn.js';
export {
  FullBatchNorm,
  type LinearProbeEpoch,
  type LinearProbeOptions,
  type LinearProbeResult,
  type TrainFeatureSource,
  linearProbe,
} from './linear.js';
export {
  type Alignment,
  type ClusterAlignmentOptions,
  type ClusterAlignmentResult,
  alignClusters,
  clusterAlignment,
} from './alignment.js';
export {
  type ExtractOptions,
  type ExtractedFeatures,
  type FeatureExtractor,
  datasetBatches,
  extractFeatures,
  rawPixels,
} from './extract.js';
export {
  type BarChartOptions,
  type HeatmapOptions,
  type LineChartOptions,
  type MontageOptions,
  type ScatterOptions,
  barChartPng,
  clusterMontagePng,
  confusionHeatmapPng,
  embed2d,
  embeddingScatterPng,
  lineChartPng,
} from './pictures.js';
export { type EvaluateOptions, type EvaluationReport, type Protocol, evaluateFeatures } from './report.js';
