export {
  activeBackend,
  type BackendInfo,
  type BackendName,
  type BackendOptions,
  selectBackend,
} from './backend.js';
export {
  type CheckpointContents,
  type CheckpointHeader,
  loadStudent,
  readCheckpoint,
  restoreCheckpoint,
  saveCheckpoint,
} from './checkpoint.js';
export { copyState, KeyEncoder, momentumUpdate } from './ema.js';
export { registerWasmTrainingKernels, wasmTrainingKernels } from './kernels/register_all_kernels.js';
export {
  createStudent,
  type StudentEntry,
  type StudentName,
  studentEntry,
  studentRegistry,
} from './models/registry.js';
export { Student, type StudentOptions, type StudentSpec } from './models/student.js';
export { Act, type Activation, addRelu } from './nn/activation.js';
export { BatchNorm2d, ConvBN } from './nn/batchnorm.js';
export { Conv2d, type ConvOptions } from './nn/conv.js';
export type { GraphBuilder } from './nn/graph.js';
export { type Init, initValues } from './nn/init.js';
export { Flatten, GlobalAvgPool, Linear, type LinearOptions, MaxPool2d } from './nn/layers.js';
export { Chain, Module, type Named, Sequential } from './nn/module.js';
export { type ExportOnnxOptions, exportOnnx, toOnnx } from './onnx/export.js';
export { nextName } from './onnx-train/grad-graph.js';
export {
  buildStepGraph,
  keyName,
  momentumName,
  type ObjectiveBuilder,
  type ObjectiveParts,
  type StateVariable,
  type StepGraph,
  type StepGraphOptions,
  Tape,
  type Value,
} from './onnx-train/step-graph.js';
export {
  loadPretrained,
  type PretrainedCard,
  type PretrainedName,
  type PretrainedNumbers,
  pretrainedCard,
  pretrainedPath,
  pretrainedStudents,
} from './pretrained.js';
export { defaultSgdOptions, SGD, type SgdOptions, stepLearningRate } from './sgd.js';
export { preprocess, type TrainStepOptions, type TrainStepResult, trainStep } from './train.js';
