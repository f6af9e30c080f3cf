// One ONNX graph for a whole training step of a student: input normalisation, the momentum key
// encoder's EMA update and key forward, the student's train-mode forward, an objective given by the
// caller (its loss and the gradient of the loss with respect to the features, in graph nodes), the
// backward pass through the student's layers, and torch.optim.SGD on every trainable parameter.
// Every piece of state (weights, momentum buffers, running statistics, the key encoder) is a graph
// input whose new value is the output `<name>.next`, so a caller can keep two sets of buffers and
// swap them between steps without copying weights.
import { CompressError } from '@compress/core';
import { encodeOnnxModel, FLOAT, INT64 } from '@compress/onnx';
import type * as tf from '@tensorflow/tfjs-core';
import type { Student } from '../models/student.js';
import { nextName, OPSET } from './grad-graph.js';
import { emitModule } from './layers.js';
import { Tape, type Value } from './tape.js';

export { Tape, type Value } from './tape.js';

/** A piece of state carried from step to step: input `name`, output `<name>.next`. */
export interface StateVariable {
  name: string;
  shape: number[];
  /**
   * What it is: a student parameter or buffer (its state_dict name is `name`), the key encoder's
   * (`key.` + its name), a parameter's momentum buffer (`<parameter>.momentum`), or an objective's.
   */
  role: 'parameter' | 'buffer' | 'key' | 'momentum' | 'objective-parameter' | 'objective-buffer';
}

/** What an objective can add to the step graph. */
export interface ObjectiveBuilder {
  readonly tape: Tape;
  /** The student's features [N, D] (train mode). */
  readonly features: Value;
  /** The key encoder's features [N, D] (train mode, after its EMA update), or null without one. */
  readonly keyFeatures: Value | null;
  readonly batch: number;
  /** Declares a per-step float32 (or int64) input, e.g. the teacher's features or the labels. */
  input(name: string, shape: readonly number[], type?: 'float32' | 'int64'): string;
  /** Declares a trainable parameter of the objective (a head): SGD updates it with the student. */
  parameter(name: string, shape: readonly number[]): string;
  /** Declares a state input of the objective that the step replaces (e.g. running statistics). */
  buffer(name: string, shape: readonly number[]): string;
}

/** What an objective gives back: the loss, d loss / d features, and its variables' new values. */
export interface ObjectiveParts {
  loss: string;
  dfeatures: string;
  /** d loss / d parameter for every {@link ObjectiveBuilder.parameter}. */
  grads: Record<string, string>;
  /** The new value of every {@link ObjectiveBuilder.buffer}. */
  next?: Record<string, string>;
  /** Further outputs (e.g. the normalised rows the queues take), by name. */
  outputs?: Record<string, { value: string; shape: readonly number[] }>;
}

export interface StepGraphOptions {
  /** Images per step (the graph's batch dimension is fixed). */
  batch: number;
  /** SGD momentum (torch.optim.SGD, dampening 0). */
  momentum: number;
  /** SGD L2 weight decay, added to every gradient. */
  weightDecay: number;
  /** The key encoder's EMA momentum m (key ← m·key + (1 − m)·student), or null for none. */
  keyMomentum: number | null;
  objective: (b: ObjectiveBuilder) => ObjectiveParts;
  /**
   * onnxruntime's NCHWc channel block on the CPU the graph will run on (`nchwcBlockSize` of
   * @compress/onnx): convolutions use its blocked kernels. @default 1 (its plain NCHW kernels)
   */
  nchwcBlock?: number;
}

export interface StepGraph {
  model: Uint8Array;
  /** Every state input, in a fixed order; each has the output `<name>.next`. */
  state: StateVariable[];
  /** Per-step inputs besides `images` [N, H, W, C] and `lr` []: the objective's. */
  inputs: { name: string; shape: number[]; type: 'float32' | 'int64' }[];
  /** Outputs besides the state's: `loss` [] and the objective's. */
  outputs: { name: string; shape: number[] }[];
}

/** Name of the input holding a parameter's momentum buffer. */
export const momentumName = (parameter: string) => `${parameter}.momentum`;
/** Name of the input holding the key encoder's copy of a student variable. */
export const keyName = (variable: string) => `key.${variable}`;

/**
 * Builds the step graph of `student` (train mode) for batches of `options.batch` images. Inputs:
 * `images` [N, H, W, C] as the loader gives them (normalised inside with the student's mean and
 * std), `lr` [], the state ({@link StepGraph.state}) and the objective's inputs. The step, in the
 * paper's order: key ← m·key + (1 − m)·student, key features, student features, the objective, the
 * backward pass, then for every trainable parameter g ← grad + wd·p, buf ← momentum·buf + g,
 * p ← p − lr·buf (torch.optim.SGD; a zero buffer makes the first step torch's). A layer the graph
 * does not know is a CompressError naming it.
 */
export function buildStepGraph(student: Student, options: StepGraphOptions): StepGraph {
  const { batch, momentum, weightDecay, keyMomentum } = options;
  if (!Number.isInteger(batch) || batch < 2) {
    throw new CompressError('INVALID_ARGUMENT', `step graph: batch must be an integer ≥ 2, found ${batch}`, {
      input: 'batch',
    });
  }
  const { inputSize, channels, mean, std } = student.spec;
  const tape = new Tape();
  tape.nchwcBlock = options.nchwcBlock ?? 1;
  const state: StateVariable[] = [];
  const nextOf = new Map<string, string>();
  const declare = (name: string, shape: readonly number[], role: StateVariable['role'], grad: boolean) => {
    state.push({ name, shape: [...shape], role });
    return tape.input(name, shape, grad);
  };
  const imageShape = [batch, inputSize, inputSize, channels];
  tape.input('images', imageShape, false);
  const lrInput = tape.input('lr', [], false).name;

  tape.phase = 'input';
  // (x − mean) / std per channel, as the tfjs path's preprocess (the graph is NHWC throughout)
  const x: Value = {
    name: tape.op('Div', [
      tape.op('Sub', ['images', tape.f32('mean', mean, [channels])]),
      tape.f32('std', std, [channels]),
    ]),
    shape: imageShape,
    grad: false,
  };

  const parameters = student.namedParameters();
  const buffers = student.namedBuffers();
  const values = new Map<tf.Variable, Value>();
  for (const [name, v] of parameters) values.set(v, declare(name, v.shape, 'parameter', true));
  for (const [name, v] of buffers) values.set(v, declare(name, v.shape, 'buffer', false));
  const forward = (vars: Map<tf.Variable, Value>, updates: Map<tf.Variable, string>): Value =>
    emitModule(tape, student, x, vars, updates);

  // the key encoder: EMA of the student's parameters (before this step's update), its own buffers
  let keyFeatures: Value | null = null;
  tape.phase = 'key';
  if (keyMomentum !== null) {
    const keyValues = new Map<tf.Variable, Value>();
    for (const [name, v] of parameters) {
      const k = declare(keyName(name), v.shape, 'key', false);
      const ema = tape.op('Add', [
        tape.op('Mul', [k.name, tape.scalar(keyMomentum)]),
        tape.op('Mul', [name, tape.scalar(1 - keyMomentum)]),
      ]);
      nextOf.set(k.name, ema);
      keyValues.set(v, { name: ema, shape: v.shape, grad: false });
    }
    for (const [name, v] of buffers) keyValues.set(v, declare(keyName(name), v.shape, 'key', false));
    const keyUpdates = new Map<tf.Variable, string>();
    keyFeatures = forward(keyValues, keyUpdates);
    for (const [name, v] of buffers) nextOf.set(keyName(name), required(keyUpdates.get(v), name));
  }

  tape.phase = 'forward';
  const updates = new Map<tf.Variable, string>();
  const features = forward(values, updates);
  if (features.shape.length !== 2) {
    throw new CompressError(
      'UNSUPPORTED',
      `step graph: the student's features must be [N, D], found [${features.shape.join(', ')}]`,
      { input: 'student' },
    );
  }
  for (const [name, v] of buffers) nextOf.set(name, required(updates.get(v), name));

  const inputs: StepGraph['inputs'] = [];
  const objectiveParameters: string[] = [];
  const objectiveBuffers: string[] = [];
  tape.phase = 'objective';
  const parts = options.objective({
    tape,
    features,
    keyFeatures,
    batch,
    input(name, shape, type = 'float32') {
      inputs.push({ name, shape: [...shape], type });
      tape.inputs.push({ name, shape, ...(type === 'int64' ? { elemType: INT64 } : { elemType: FLOAT }) });
      return name;
    },
    parameter(name, shape) {
      objectiveParameters.push(name);
      return declare(name, shape, 'objective-parameter', false).name;
    },
    buffer(name, shape) {
      objectiveBuffers.push(name);
      return declare(name, shape, 'objective-buffer', false).name;
    },
  });
  tape.phase = 'backward';
  tape.backward(features, parts.dfeatures);
  tape.phase = 'update';

  // SGD on the student's and the objective's parameters
  const sgd = (p: string, shape: readonly number[], grad: string) => {
    const m = declare(momentumName(p), shape, 'momentum', false).name;
    const g = tape.op('Add', [grad, tape.op('Mul', [p, tape.scalar(weightDecay)])]);
    const buf = tape.op('Add', [tape.op('Mul', [m, tape.scalar(momentum)]), g]);
    nextOf.set(m, buf);
    nextOf.set(p, tape.op('Sub', [p, tape.op('Mul', [buf, lrInput])]));
  };
  for (const [name, v] of parameters) {
    const g = tape.gradOf(name);
    if (g === null) {
      throw new CompressError('UNSUPPORTED', `step graph: parameter ${name} does not reach the features`, {
        input: 'student',
      });
    }
    sgd(name, v.shape, g);
  }
  for (const name of objectiveParameters) {
    const shape = state.find((s) => s.name === name)!.shape;
    sgd(name, shape, required(parts.grads[name], name));
  }
  for (const name of objectiveBuffers) nextOf.set(name, required(parts.next?.[name], name));

  tape.phase = '';
  const outputs: StepGraph['outputs'] = [{ name: 'loss', shape: [] }];
  tape.output('loss', parts.loss, []);
  for (const [name, { value, shape }] of Object.entries(parts.outputs ?? {})) {
    outputs.push({ name, shape: [...shape] });
    tape.output(name, value, shape);
  }
  for (const s of state) tape.output(nextName(s.name), required(nextOf.get(s.name), s.name), s.shape);

  const model = encodeOnnxModel(
    {
      name: 'compress-student-step',
      opset: OPSET,
      nodes: tape.nodes,
      initializers: tape.initializers,
      inputs: tape.inputs,
      outputs: tape.outputs,
    },
    { irVersion: 8, producerName: '@compress/students' },
  );
  return { model, state, inputs, outputs };
}

function required(value: string | undefined, name: string): string {
  if (value === undefined) throw new CompressError('UNSUPPORTED', `step graph: ${name} has no new value`);
  return value;
}
