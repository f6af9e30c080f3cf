import { CompressError, type FeatureMatrix } from '@compress/core';
import type { LoaderBatch } from '@compress/data';
import type { FeatureExtractor } from '@compress/eval';
import {
  createNativeSession,
  nchwcBlockSize,
  type OrtNative,
  type OrtNativeSession,
  type OrtNativeTensor,
  requireOnnxRuntimeNative,
} from '@compress/onnx';
import {
  buildStepGraph,
  nextName,
  type StateVariable,
  type StepGraph,
  type Student,
} from '@compress/students';
import * as tf from '@tensorflow/tfjs-core';
import {
  type EngineStepResult,
  type StepEngine,
  type StepPosition,
  TfjsEngine,
  type TfjsEngineOptions,
} from '../engine.js';
import { ClassifierObjective, CompressObjective, RegObjective } from '../objective.js';
import {
  ONEHOT,
  objectiveGraph,
  STUDENT_QUEUE,
  STUDENT_ROWS,
  TEACHER,
  TEACHER_QUEUE,
  TEACHER_ROWS,
} from './objective-graphs.js';

export interface OnnxEngineOptions extends TfjsEngineOptions {
  /** onnxruntime's intra-op threads (0: one per core). @default 0 */
  threads?: number;
  /** Profile the step graph's runs into a file starting with this prefix (see {@link OnnxEngine.endProfiling}). */
  profile?: string;
}

const USER = "training engine 'onnxruntime'";

/** The feeds and fetches of the state for one parity (which buffer set is read). */
interface StateIo {
  feeds: Record<string, OrtNativeTensor>;
  fetches: Record<string, OrtNativeTensor | null>;
}

/** One piece of state, twice: the step reads `buffers[current]` and writes the other. */
interface Slot {
  variable: StateVariable;
  tensors: [OrtNativeTensor, OrtNativeTensor];
  arrays: [Float32Array, Float32Array];
  /** The TensorFlow.js variable it is mirrored into for checkpoints and monitors (null: optimizer buffer). */
  host: tf.Variable | null;
  /** For momentum buffers: the parameter variable whose SGD buffer it is. */
  of: tf.Variable | null;
}

/**
 * The onnxruntime engine: the method's whole step — key encoder EMA and key forward, the student's
 * forward, the objective, the backward pass and SGD — as one onnxruntime graph run per step on
 * `threads` cores. Weights, optimizer buffers and running statistics stay in two sets of buffers
 * between steps (each step reads one set and writes the other); the queues are read in place and
 * take the step's rows afterwards. A step whose loss is not finite is refused before anything is
 * swapped or enqueued, so the state stays that of the step before.
 *
 * Its state at checkpoints is the TensorFlow.js engine's, mirrored from the buffers: the same files,
 * so that a run can be resumed on either engine.
 */
export class OnnxEngine implements StepEngine {
  readonly method: TfjsEngine['method'];
  readonly name = 'onnxruntime' as const;
  /** The TensorFlow.js engine that holds the state in its checkpoint form (and the queues). */
  private readonly host: TfjsEngine;
  private readonly ort: OrtNative;
  private readonly graph: StepGraph;
  private readonly session: OrtNativeSession;
  private readonly slots: Slot[];
  private readonly stateIo: [StateIo, StateIo];
  private current: 0 | 1 = 0;
  private readonly batch: number;
  private onehot: Float32Array | null = null;
  /** Whether the buffers have moved on since the host was last written. */
  private hostStale = false;
  private runMs = 0;

  private constructor(student: Student, options: OnnxEngineOptions) {
    this.ort = requireOnnxRuntimeNative({ user: USER, otherwise: "use engine 'tfjs'" });
    this.method = options.method;
    this.batch = options.batchSize;
    this.host = new TfjsEngine(student, { ...options, lossEngine: 'onnxruntime' });
    try {
      const objective = this.host.objective;
      const teacherDim = options.teacherDim;
      const regLoss = objective instanceof RegObjective ? objective.reg : null;
      this.graph = buildStepGraph(student, {
        batch: options.batchSize,
        momentum: options.optim.momentum,
        weightDecay: options.optim.weightDecay,
        keyMomentum: options.method === 'momentum' ? options.loss.keyMomentum : null,
        nchwcBlock: nchwcBlockSize(this.ort),
        objective: objectiveGraph({
          method: options.method,
          teacherDim,
          studentDim: student.spec.featureDim,
          queueSize: options.loss.queueSize,
          temperature: options.loss.temperature,
          classes: objective instanceof ClassifierObjective ? objective.classes : 0,
          bnEpsilon: regLoss?.epsilon ?? 1e-5,
          bnMomentum: regLoss?.momentum ?? 0.1,
        }),
      });
      this.session = createNativeSession(this.ort, this.graph.model, {
        threads: options.threads ?? 0,
        user: USER,
        // the teacher, the loader and the queues' writes take turns with the step on the same cores
        spinning: false,
        // a planned block for all intermediates is twice the live peak here, and slower
        memoryPattern: false,
        ...(options.profile ? { profile: options.profile } : {}),
      });
      const find = this.variableLookup(student);
      this.slots = this.graph.state.map((variable) => this.slot(variable, find));
      // the state's feeds and fetches for each parity, built once: a step only adds its batch
      this.stateIo = ([0, 1] as const).map((read) => {
        const feeds: Record<string, OrtNativeTensor> = {};
        const fetches: Record<string, OrtNativeTensor | null> = {};
        for (const o of this.graph.outputs) fetches[o.name] = null;
        for (const s of this.slots) {
          feeds[s.variable.name] = s.tensors[read];
          fetches[nextName(s.variable.name)] = s.tensors[1 - read]!;
        }
        return { feeds, fetches };
      }) as [StateIo, StateIo];
      this.readHost();
    } catch (error) {
      this.host.dispose();
      throw error;
    }
  }

  /** The engine, or BACKEND_UNAVAILABLE where onnxruntime-node is not installed. */
  static create(student: Student, options: OnnxEngineOptions): OnnxEngine {
    return new OnnxEngine(student, options);
  }

  get needsTeacher(): boolean {
    return this.host.needsTeacher;
  }

  /** The host variable of a state input (its checkpoint form). */
  /** The TensorFlow.js variable behind a state name: the student's, the key encoder's (`key.`), the objective's. */
  private variableLookup(student: Student): (name: string) => tf.Variable | undefined {
    const studentVars = new Map([...student.namedParameters(), ...student.namedBuffers()]);
    const key = this.host.objective.key;
    const keyVars = key ? new Map([...key.namedParameters(), ...key.namedBuffers()]) : null;
    const objectiveVars = this.host.objective.namedVariables();
    return (name) =>
      name.startsWith('key.') ? keyVars?.get(name.slice(4)) : (studentVars.get(name) ?? objectiveVars[name]);
  }

  /** Two buffer sets for a state input, and the variable it is mirrored into. */
  private slot(variable: StateVariable, find: (name: string) => tf.Variable | undefined): Slot {
    const size = variable.shape.reduce((a, b) => a * b, 1);
    const arrays: [Float32Array, Float32Array] = [new Float32Array(size), new Float32Array(size)];
    const { Tensor } = this.ort;
    const tensors: [OrtNativeTensor, OrtNativeTensor] = [
      new Tensor('float32', arrays[0], variable.shape),
      new Tensor('float32', arrays[1], variable.shape),
    ];
    let host: tf.Variable | null = null;
    let of: tf.Variable | null = null;
    if (variable.role === 'momentum') of = find(variable.name.slice(0, -'.momentum'.length)) ?? null;
    else host = find(variable.name) ?? null;
    if (host === null && of === null) {
      throw new Error(`training engine 'onnxruntime': no variable holds the graph's state ${variable.name}`);
    }
    return { variable, tensors, arrays, host, of };
  }

  /** Loads the buffers from the host's variables (at creation and after a restore). */
  private readHost(): void {
    const buffers = this.host.optimizer.buffers;
    for (const s of this.slots) {
      const source = s.host ?? buffers.get(s.of!) ?? null;
      const target = s.arrays[this.current];
      if (source === null) target.fill(0);
      else target.set(source.dataSync() as Float32Array);
    }
    this.hostStale = false;
  }

  /** Writes the buffers into the host's variables (for checkpoints and monitors). */
  private writeHost(): void {
    if (!this.hostStale) return;
    const buffers = this.host.optimizer.buffers;
    for (const s of this.slots) {
      const value = tf.tensor(s.arrays[this.current], s.variable.shape, 'float32');
      if (s.host) {
        s.host.assign(value);
        value.dispose();
      } else {
        const old = buffers.get(s.of!);
        if (old) {
          old.assign(value);
          value.dispose();
        } else {
          buffers.set(s.of!, tf.variable(value, false));
          value.dispose();
        }
      }
    }
    this.hostStale = false;
  }

  step(batch: LoaderBatch, teacher: FeatureMatrix | null, lr: number): EngineStepResult {
    const [n, h, w, c] = batch.shape;
    const spec = this.host.student.spec;
    if (n !== this.batch || h !== spec.inputSize || w !== spec.inputSize || c !== spec.channels) {
      throw new CompressError(
        'SHAPE_MISMATCH',
        `${USER}: the step graph takes batches of ${this.batch}×${spec.inputSize}×${spec.inputSize}×${spec.channels} images, found ${batch.shape.join('×')}`,
        { input: 'batch.shape' },
      );
    }
    const { Tensor } = this.ort;
    const objective = this.host.objective;
    const read = this.current;
    const write = (1 - read) as 0 | 1;
    const { feeds, fetches } = this.stateIo[read];
    Object.assign(feeds, {
      images: new Tensor('float32', batch.images.subarray(0, n * h * w * c), [n, h, w, c]),
      lr: new Tensor('float32', Float32Array.of(lr), []),
    });
    const loss = objective instanceof CompressObjective ? objective.loss_ : null;
    if (objective.needsTeacher) {
      if (teacher === null || teacher.rows !== n) {
        throw new CompressError(
          'INVALID_ARGUMENT',
          `${USER}: the ${this.method} step needs the teacher's features of the batch (${n} rows), found ${teacher ? `${teacher.rows} rows` : 'none'}`,
          { input: 'teacher' },
        );
      }
      feeds[TEACHER] = new Tensor('float32', teacher.data.subarray(0, n * teacher.dim), [n, teacher.dim]);
    }
    if (loss) {
      const qt = loss.teacherQueue;
      feeds[TEACHER_QUEUE] = new Tensor('float32', qt.values(), [qt.size, qt.dim]);
      const qs = loss.studentQueue;
      if (qs) feeds[STUDENT_QUEUE] = new Tensor('float32', qs.values(), [qs.size, qs.dim]);
    }
    if (objective instanceof ClassifierObjective) {
      const labels = objective.labels(batch);
      const k = objective.classes;
      this.onehot ??= new Float32Array(n * k);
      this.onehot.fill(0);
      for (let i = 0; i < n; i++) {
        const l = labels[i]!;
        if (!Number.isInteger(l) || l < 0 || l >= k) {
          throw new CompressError(
            'INVALID_ARGUMENT',
            `${USER}: label ${l} of row ${i} is not a class in [0, ${k})`,
            { input: 'labels' },
          );
        }
        this.onehot[i * k + l] = 1;
      }
      feeds[ONEHOT] = new Tensor('float32', this.onehot, [n, k]);
    }
    const started = performance.now();
    const out = this.session.run(feeds, fetches, {});
    this.runMs += performance.now() - started;
    const value = (out.loss!.data as Float32Array)[0]!;
    if (!Number.isFinite(value)) {
      throw new CompressError(
        'NON_FINITE',
        `the ${this.method} loss is ${value}; the weights and queues are those of the step before`,
        { input: 'loss' },
      );
    }
    this.current = write;
    this.hostStale = true;
    if (loss) {
      const rows = out[STUDENT_ROWS]?.data as Float32Array | undefined;
      loss.enqueue(out[TEACHER_ROWS]!.data as Float32Array, rows ?? null);
    }
    return { loss: value };
  }

  checkpointFile(dir: string): string {
    return this.host.checkpointFile(dir);
  }

  async state(dir: string, position: StepPosition): Promise<void> {
    this.writeHost();
    await this.host.state(dir, position);
  }

  async restore(dir: string): Promise<StepPosition> {
    const position = await this.host.restore(dir);
    this.readHost();
    return position;
  }

  extractor(): FeatureExtractor {
    this.writeHost();
    return this.host.extractor();
  }

  /** Ends the profile of the `profile` option; returns its file (onnxruntime's JSON trace). */
  endProfiling(): string {
    const file = this.session.endProfiling?.();
    if (typeof file !== 'string') {
      throw new CompressError('INVALID_ARGUMENT', `${USER}: no profile was started (option profile)`, {
        input: 'profile',
      });
    }
    return file;
  }

  /** Seconds spent in onnxruntime's runs of the step graph (for benchmarks' breakdowns). */
  get runSeconds(): number {
    return this.runMs / 1000;
  }

  /** The student's and its state's current values, written into their TensorFlow.js variables. */
  sync(): void {
    this.writeHost();
  }

  dispose(): void {
    this.session.dispose?.();
    this.host.dispose();
  }
}
