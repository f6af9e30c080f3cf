export {
  type Alignment,
  alignClusters,
  type ClusterAlignmentOptions,
  type ClusterAlignmentResult,
  clusterAlignment,
} from './alignment.js';
export { type Curve, type CurvePanel, trainingCurvesPng } from './curves.js';
export {
  datasetBatches,
  type ExtractedFeatures,
  type ExtractOptions,
  extractFeatures,
  type FeatureExtractor,
  rawPixels,
} from './extract.js';
export {
  type KnnOptions,
  type KnnResult,
  type KnnVote,
  knnAccuracy,
  knnAccuracyOfNeighbors,
  voteNeighbors,
} from './knn.js';
export {
  FullBatchNorm,
  type LinearProbeEpoch,
  type LinearProbeOptions,
  type LinearProbeResult,
  linearProbe,
  type TrainFeatureSource,
} from './linear.js';
export {
  type BarChartOptions,
  barChartPng,
  clusterMontagePng,
  confusionHeatmapPng,
  embed2d,
  embeddingScatterPng,
  type HeatmapOptions,
  type LineChartOptions,
  lineChartPng,
  type MontageOptions,
  type ScatterOptions,
} from './pictures.js';
export {
  type EvaluateOptions,
  type EvaluationReport,
  evaluateFeatures,
  type Protocol,
  writeReportFiles,
} from './report.js';
