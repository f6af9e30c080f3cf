export {
  type Budget,
  budgets,
  type Config,
  configSchema,
  type Method,
  mergeConfig,
  methods,
  type PresetName,
  presets,
  readConfigFile,
  validateConfig,
} from './config.js';
export { type EvalSource, type EvaluateOptions, evaluateSource } from './evaluate.js';
export { studentExtractor } from './extractors.js';
export { createObjective, type Objective, type ObjectiveContext } from './objective.js';
export { type ConfigFlags, parseNormalize, resolveConfig } from './options.js';
export { presetConfig } from './presets.js';
export { createReporter, type Reporter } from './progress.js';
export {
  type ReproduceOptions,
  type ReproduceResult,
  reproduce,
  StoppedError,
  type TableRow,
  tableMarkdown,
} from './reproduce.js';
export {
  type EvalTransform,
  evalTransform,
  openSplits,
  openTeacher,
  type Splits,
  subsetDataset,
  subsetIndices,
  trainTransform,
} from './resources.js';
export { RunDir } from './run-dir.js';
export { readStateFile, writeStateFile } from './state-file.js';
export { clusterPseudoLabels, learningRate, type TrainOptions, type TrainResult, train } from './train.js';
