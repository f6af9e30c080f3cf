// The trainer's pieces now live in @compress/train; re-exported for existing users.
export {
  createObjective,
  type Objective,
  type ObjectiveContext,
  RunDir,
  readStateFile,
  studentExtractor,
  writeStateFile,
} from '@compress/train';
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
export { addConfigOptions, type ConfigFlag, choicesOf, configFlags, parseNormalize } from './flags.js';
export { type ConfigFlags, resolveConfig } from './options.js';
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
export { clusterPseudoLabels, learningRate, type TrainOptions, type TrainResult, train } from './train.js';
