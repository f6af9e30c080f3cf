import { join } from 'node:path';
import type { FeatureMatrix } from '@compress/core';
import type { LoaderBatch } from '@compress/data';
import type { FeatureExtractor } from '@compress/eval';
import {
  preprocess,
  restoreCheckpoint,
  SGD,
  type Student,
  saveCheckpoint,
  trainStep,
} from '@compress/students';
import type * as tf from '@tensorflow/tfjs-core';
import { studentExtractor } from './extractors.js';
import { createObjective, type Objective, type ObjectiveContext } from './objective.js';
import type { Method, OptimOptions } from './options.js';
import { readStateFile, writeStateFile } from './state-file.js';

/** Where a run stands: saved in every checkpoint. */
export interface StepPosition {
  method: string;
  epoch: number;
  /** Next step within `epoch`. */
  step: number;
  globalStep: number;
}

/** What one step gives back. */
export interface EngineStepResult {
  loss: number;
}

/**
 * The step seam. An engine owns, between steps, the student, the key encoder, the optimizer's
 * buffers and the queues; the trainer asks it for one thing per step — `step(batch,
 * teacherFeatures, lr)`: the method's whole step in the paper's order (EMA → key features →
 * forward/backward → SGD → enqueue) — and for its state at checkpoints. The state is written as
 * files in a checkpoint directory, so that each engine keeps its own formats (the TensorFlow.js
 * engine: `student.ckpt` and, when the method has queues, `state.bin`).
 */
export interface StepEngine {
  /** Which engine it is (recorded with the run). */
  readonly name: 'tfjs' | 'onnxruntime';
  readonly method: Method;
  /** Whether `step` reads teacher features (false: CC and supervised read labels). */
  readonly needsTeacher: boolean;
  step(batch: LoaderBatch, teacher: FeatureMatrix | null, lr: number): EngineStepResult;
  /** Writes the engine's state with the run's position into a (fresh) checkpoint directory. */
  state(dir: string, position: StepPosition): Promise<void>;
  /** Reads back what `state` wrote; returns the position saved with it. */
  restore(dir: string): Promise<StepPosition>;
  /** The current student as a frozen feature extractor (eval mode), for monitors. */
  extractor(): FeatureExtractor;
  /** The file of the student's weights in a checkpoint directory (what `eval` and `export` read). */
  checkpointFile(dir: string): string;
  /** Brings the student's TensorFlow.js variables up to date (an engine may hold them elsewhere). */
  sync(): void;
  dispose(): void;
}

export interface TfjsEngineOptions extends Omit<ObjectiveContext, 'student'> {
  method: Method;
  optim: Pick<OptimOptions, 'lr' | 'momentum' | 'weightDecay'>;
}

/** The TensorFlow.js engine: the student's gradient tape, the students package's SGD. */
export class TfjsEngine implements StepEngine {
  readonly name = 'tfjs' as const;
  readonly method: Method;
  readonly objective: Objective;
  readonly optimizer: SGD;

  constructor(
    readonly student: Student,
    options: TfjsEngineOptions,
  ) {
    this.method = options.method;
    const { method: _method, optim, ...ctx } = options;
    this.objective = createObjective(options.method, { ...ctx, student });
    this.optimizer = new SGD({ lr: optim.lr, momentum: optim.momentum, weightDecay: optim.weightDecay });
  }

  get needsTeacher(): boolean {
    return this.objective.needsTeacher;
  }

  step(batch: LoaderBatch, teacher: FeatureMatrix | null, lr: number): EngineStepResult {
    const { student, objective, optimizer } = this;
    optimizer.lr = lr;
    const x = preprocess(student, batch);
    try {
      objective.prepare(student, x);
      const loss = trainStep(student, () => objective.loss(student, x, batch, teacher), {
        optimizer,
        extraVariables: objective.variables,
      }).loss;
      objective.finish();
      return { loss };
    } finally {
      (x as tf.Tensor).dispose();
    }
  }

  checkpointFile(dir: string): string {
    return join(dir, 'student.ckpt');
  }

  async state(dir: string, position: StepPosition): Promise<void> {
    const state = this.objective.state();
    if (state !== null) await writeStateFile(join(dir, 'state.bin'), state);
    await saveCheckpoint(this.checkpointFile(dir), {
      student: this.student,
      ...(this.objective.key ? { key: this.objective.key } : {}),
      optimizer: this.optimizer,
      variables: this.objective.namedVariables(),
      meta: position,
    });
  }

  async restore(dir: string): Promise<StepPosition> {
    if (this.objective.state() !== null) this.objective.restore(await readStateFile(join(dir, 'state.bin')));
    return (await restoreCheckpoint(this.checkpointFile(dir), {
      student: this.student,
      ...(this.objective.key ? { key: this.objective.key } : {}),
      optimizer: this.optimizer,
      variables: this.objective.namedVariables(),
    })) as StepPosition;
  }

  extractor(): FeatureExtractor {
    return studentExtractor(this.student);
  }

  /** The variables are the state: nothing to do. */
  sync(): void {}

  /** Disposes the objective and the optimizer; the student is its creator's. */
  dispose(): void {
    this.objective.dispose();
    this.optimizer.dispose();
  }
}
