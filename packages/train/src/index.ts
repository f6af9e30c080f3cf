export {
  type EngineStepResult,
  type StepEngine,
  type StepPosition,
  TfjsEngine,
  type TfjsEngineOptions,
} from './engine.js';
export {
  createEngine,
  type EngineChoice,
  type EngineChoiceOptions,
  engineChoices,
} from './engine-choice.js';
export { studentExtractor } from './extractors.js';
export {
  clusterPseudoLabels,
  knnMonitor,
  type MonitorOptions,
  type MonitorResult,
  type PseudoLabelOptions,
} from './monitor.js';
export { createObjective, type Objective, type ObjectiveContext } from './objective.js';
export { OnnxEngine, type OnnxEngineOptions } from './onnx/engine.js';
export {
  defaultSchedule,
  type LossOptions,
  type Method,
  methods,
  type OptimOptions,
  paperLoss,
  paperOptim,
  type ScheduleOptions,
} from './options.js';
export { type OpenedRun, type OpenRunOptions, openRun, type RunNames } from './run.js';
export { checkWritablePlace, RunDir } from './run-dir.js';
export { readStateFile, writeStateFile } from './state-file.js';
export { subsetDataset, subsetIndices } from './subset.js';
export { type TrainResult, train } from './train.js';
export { type StepEvent, type StudentChoice, Trainer, type TrainOptions } from './trainer.js';
