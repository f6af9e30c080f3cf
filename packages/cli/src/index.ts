export {
  type Budget,
  type Config,
  type Method,
  type PresetName,
  budgets,
  configSchema,
  mergeConfig,
  methods,
  presets,
  readConfigFile,
  validateConfig,
} from './config.js';
export { type EvalSource, type EvaluateOptions, evaluateSource } from './evaluate.js';
export { studentExtractor } from './extractors.js';
export { type Objective, type ObjectiveContext, createObjective } from './objective.js';
export { type ConfigFlags, parseNormalize, resolveConfig } from './options.js';
export { presetConfig } from './presets.js';
export { type Reporter, createReporter } from './progress.js';
export { type ReproduceOptions, type ReproduceResult, type TableRow, StoppedError, reproduce, tableMarkdown } from './reproduce.js';
export { type Splits, evalTransform, openSplits, openTeacher, subsetDataset, subsetIndices, trainTransform } from './resources.js';
export { RunDir } from './run-dir.js';
export { readStateFile, writeStateFile } from './state-file.js';
export { type TrainOptions, type TrainResult, clusterPseudoLabels, learningRate, train } from './train.js';
