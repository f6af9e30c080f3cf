import { join } from 'node:path';
import {
  CheckedTeacher,
  CompressError,
  checkedTeacher,
  type Dataset,
  type FeatureMatrix,
  type ProgressListener,
  type Teacher,
  writeFileAtomic,
} from '@compress/core';
import { createLoader, type Loader, type LoaderBatch, type Transform } from '@compress/data';
import { createStudent, type Student, selectBackend, stepLearningRate } from '@compress/students';
import type { StepEngine, StepPosition } from './engine.js';
import { createEngine, type EngineChoice } from './engine-choice.js';
import { clusterPseudoLabels, knnMonitor, type MonitorOptions, type MonitorResult } from './monitor.js';
import {
  defaultSchedule,
  type LossOptions,
  type Method,
  type OptimOptions,
  paperLoss,
  paperOptim,
  type ScheduleOptions,
} from './options.js';
import { type OpenedRun, openRun, type RunNames } from './run.js';

export interface StudentChoice {
  /** A student architecture of @compress/students (`alexnet-small`, `resnet18`, …). */
  arch: string;
  /** Channel width multiplier. @default 1 */
  width?: number;
  /** Input side. @default the dataset's image side */
  inputSize?: number;
  /** Input channels. @default the dataset's (3 when it does not say) */
  channels?: number;
}

export interface TrainOptions {
  /** The training images (with labels for `supervised`). */
  dataset: Dataset;
  /** Any `Teacher` of @compress/core; needed by every method but `supervised`. */
  teacher?: Teacher | null;
  /** @default 'momentum' */
  method?: Method;
  student: StudentChoice;
  /** Seed of everything random: init, queues, shuffling, crops. @default 0 */
  seed?: number;
  /** @default the paper's (T 0.04, K 128000, m 0.999) */
  loss?: Partial<LossOptions>;
  /** @default the paper's (batch 256, 130 epochs, lr 0.01 ×0.2 at 90 and 120, momentum 0.9, wd 1e-4) */
  optim?: Partial<OptimOptions>;
  schedule?: Partial<ScheduleOptions>;
  /** The training augmentation (teacher and student see the same augmented batch). @default none */
  transform?: Transform;
  /** The evaluation transform: what the teacher sees for CC's pseudo-labels. @default none */
  evalTransform?: Transform;
  /** Train on these dataset indices only. @default all */
  indices?: Int32Array | null;
  /** Loader worker threads (0: the main thread). @default the loader's */
  workers?: number;
  /**
   * What runs the step: `onnxruntime` (the whole step as one onnxruntime graph), `tfjs`
   * (TensorFlow.js and the students package's kernels; `@tensorflow/tfjs-node-gpu` where
   * installed), `auto` = onnxruntime where onnxruntime-node is installed. @default 'auto'
   */
  engine?: EngineChoice;
  /** onnxruntime's intra-op threads for the step (0: one per core). @default 0 */
  threads?: number;
  /**
   * Whether the next batch's teacher features are computed while the current step runs. Worth it
   * when the two use different resources (a CUDA teacher, or the tfjs engine's one wasm thread);
   * with a CPU teacher and the onnxruntime engine both use every core, and taking turns is
   * faster than contending. @default true, but false for the onnxruntime engine with a teacher
   * that does not say it runs on CUDA (`provider: 'cuda'`)
   */
  teacherOverlap?: boolean;
  /** Classes of `supervised`. @default the dataset's */
  numClasses?: number;
  /** CC: the k-means cluster of every dataset index. @default computed from the teacher */
  pseudoLabels?: Int32Array;
  /** The k-NN monitor (every `schedule.monitorEvery` steps, or at each epoch end). @default none */
  monitor?: MonitorOptions;
  /**
   * A run directory (config.json, metrics.jsonl, checkpoints/): a path, or one opened with
   * {@link openRun}. Without one nothing is written.
   */
  runDir?: string | OpenedRun;
  /** Continue from the run directory's latest checkpoint. */
  resume?: boolean;
  /** What config.json and every checkpoint record and a resume compares. @default the resolved options */
  settings?: unknown;
  /** How messages name the resume switch and the run directory. */
  names?: RunNames;
  /** Aborting saves a checkpoint after the current step and stops. */
  signal?: AbortSignal;
  /** Lines of information (backend, resume, monitor). @default none */
  log?: (message: string) => void;
  /** Progress of the training (`train <method>`, in steps, with loss, lr, img/s) and of CC's k-means. */
  onProgress?: ProgressListener;
}

/** One training step's outcome. */
export interface StepEvent {
  loss: number;
  lr: number;
  /** The epoch of the step (0-based). */
  epoch: number;
  /** Steps done in all. */
  globalStep: number;
  totalSteps: number;
  images: number;
  /** Whether the step ended its epoch. */
  endOfEpoch: boolean;
  /** Images per second since the loop started. */
  imagesPerSecond: number;
}

interface Pending {
  batch: LoaderBatch;
  /** The batch's teacher features: started at once (overlap) or when the step needs them. */
  teacher: Promise<FeatureMatrix> | (() => Promise<FeatureMatrix>) | null;
}

/** The settings a run records when the caller gives none: the resolved options. */
function defaultSettings(t: {
  method: Method;
  seed: number;
  student: StudentChoice;
  loss: LossOptions;
  optim: OptimOptions;
  schedule: ScheduleOptions;
}): unknown {
  return JSON.parse(JSON.stringify(t));
}

/**
 * The step-level face: a student, its engine, the loader and the schedule, stepped by the caller.
 * `step()` runs one step in the paper's order and resolves to its event (null when the run is
 * complete); `save()` writes a checkpoint into the run directory; `monitor()` runs the k-NN monitor.
 */
export class Trainer {
  readonly method: Method;
  readonly totalSteps: number;
  readonly stepsPerEpoch: number;
  /** Where the run stands (what the next checkpoint records). */
  position: StepPosition;
  /** The last checkpoint written or resumed from ('' when none). */
  checkpoint = '';
  private current: Pending | null = null;
  private iterator: AsyncIterator<LoaderBatch> | null = null;
  private imagesSeen = 0;
  private loopStart = performance.now();
  private closed = false;

  private constructor(
    readonly student: Student,
    readonly engine: StepEngine,
    private readonly loader: Loader,
    private readonly teacher: Teacher | null,
    readonly optim: OptimOptions,
    readonly loss: LossOptions,
    readonly schedule: ScheduleOptions,
    readonly run: OpenedRun | null,
    private readonly monitorOptions: MonitorOptions | null,
    private readonly log: (message: string) => void,
    private readonly teacherOverlap: boolean,
  ) {
    this.method = engine.method;
    this.stepsPerEpoch = loader.stepsPerEpoch;
    this.totalSteps = Math.min(optim.epochs * this.stepsPerEpoch, optim.maxSteps ?? Number.POSITIVE_INFINITY);
    this.position = { method: this.method, epoch: 0, step: 0, globalStep: 0 };
  }

  /** Builds the student, its engine and the loader; continues the run directory's run when resuming. */
  static async create(options: TrainOptions): Promise<Trainer> {
    const method = options.method ?? 'momentum';
    const seed = options.seed ?? 0;
    const loss = { ...paperLoss, ...options.loss };
    const optim = { ...paperOptim, ...options.optim };
    const schedule = { ...defaultSchedule, ...options.schedule };
    const log = options.log ?? (() => {});
    const { dataset } = options;
    const usesTeacher = method !== 'supervised';
    const given = usesTeacher ? (options.teacher ?? null) : null;
    // Every answer of the teacher is checked (B × dim finite values) before a step uses it, so that
    // a broken teacher is told apart from a diverging student.
    const teacher = given
      ? checkedTeacher(given, given instanceof CheckedTeacher ? given.name : 'teacher', {
          zeroRows: 'refuse',
        })
      : given;
    if (usesTeacher && !teacher) {
      throw new CompressError('INVALID_ARGUMENT', `the ${method} method needs a teacher`, {
        input: 'teacher',
      });
    }
    const inputSize = options.student.inputSize ?? dataset.imageShape?.[0];
    if (inputSize === undefined) {
      throw new CompressError(
        'INVALID_ARGUMENT',
        `student.inputSize: ${dataset.name} does not say its image size; give the student's input size`,
        { input: 'student.inputSize' },
      );
    }
    const run =
      typeof options.runDir === 'string'
        ? await openRun(options.runDir, {
            resume: options.resume ?? false,
            settings:
              options.settings ??
              defaultSettings({ method, seed, student: options.student, loss, optim, schedule }),
            ...(options.names ? { names: options.names } : {}),
          })
        : (options.runDir ?? null);
    try {
      await selectBackend({ log });
      const indices = options.indices ?? null;
      let pseudoLabels = options.pseudoLabels;
      if (method === 'cc' && !pseudoLabels) {
        pseudoLabels = await clusterPseudoLabels(teacher!, dataset, {
          clusters: loss.ccClusters,
          seed,
          indices,
          ...(options.evalTransform ? { transform: options.evalTransform } : {}),
          ...(options.onProgress ? { onProgress: options.onProgress } : {}),
        });
      }
      const student = createStudent(options.student.arch, {
        seed,
        channels: options.student.channels ?? dataset.imageShape?.[2] ?? 3,
        inputSize,
        width: options.student.width ?? 1,
      });
      let engine: StepEngine | null = null;
      try {
        engine = createEngine(options.engine ?? 'auto', student, {
          threads: options.threads ?? 0,
          log,
          method,
          optim,
          seed,
          loss,
          batchSize: optim.batchSize,
          teacherDim: teacher?.dim ?? 0,
          trainSize: indices?.length ?? dataset.length,
          numClasses: options.numClasses ?? dataset.classes.length,
          ...(pseudoLabels ? { pseudoLabels } : {}),
          warn: (m) => log(`warning: ${m}`),
        });
        const loader = createLoader(dataset, {
          batchSize: optim.batchSize,
          seed,
          transform: options.transform ?? null,
          ...(options.workers !== undefined ? { workers: options.workers } : {}),
          dropLast: true,
          indices,
        });
        const trainer = new Trainer(
          student,
          engine,
          loader,
          teacher,
          optim,
          loss,
          schedule,
          run,
          options.monitor ?? null,
          log,
          options.teacherOverlap ??
            !(engine.name === 'onnxruntime' && (given as { provider?: string } | null)?.provider !== 'cuda'),
        );
        try {
          await trainer.start();
        } catch (error) {
          await loader.close();
          throw error;
        }
        return trainer;
      } catch (error) {
        engine?.dispose();
        student.dispose();
        throw error;
      }
    } catch (error) {
      await run?.dir.discardIfUnused();
      throw error;
    }
  }

  private async start(): Promise<void> {
    const run = this.run;
    if (run?.resume && run.latest) {
      this.checkpoint = this.engine.checkpointFile(run.latest.dir);
      this.position = await this.engine.restore(run.latest.dir);
      const p = this.position;
      this.log(
        `resuming ${run.dir.path} at epoch ${p.epoch + 1}, step ${p.step} (global step ${p.globalStep})`,
      );
      await run.dir.metric({ event: 'resume', ...p });
    }
    // Everything is in place and the saved state accepted these settings: only now is the run
    // directory changed.
    if (run) await run.dir.writeJson('config.json', this.recordedSettings());
    this.loopStart = performance.now();
  }

  /**
   * The run's settings as config.json records them, with `ran`: the engine that runs the steps
   * (a resume may change it: checkpoints are the same files for both).
   */
  private recordedSettings(): unknown {
    const settings = this.run!.settings;
    if (typeof settings !== 'object' || settings === null || Array.isArray(settings)) return settings;
    return { ...settings, ran: { engine: this.engine.name } };
  }

  /** Whether every step of the run is done. */
  get done(): boolean {
    return this.position.epoch >= this.optim.epochs || this.position.globalStep >= this.totalSteps;
  }

  private async fetch(): Promise<Pending | null> {
    const r = await this.iterator!.next();
    if (r.done) return null;
    const teacher = this.teacher;
    if (!teacher || !this.engine.needsTeacher) return { batch: r.value, teacher: null };
    if (!this.teacherOverlap) return { batch: r.value, teacher: () => teacher.embed(r.value) };
    const features = teacher.embed(r.value);
    // Awaited in its step; if an earlier step fails first, its failure is that step's to report.
    features.catch(() => {});
    return { batch: r.value, teacher: features };
  }

  /** Runs one step; null when the run is complete. */
  async step(): Promise<StepEvent | null> {
    if (this.closed)
      throw new CompressError('INVALID_ARGUMENT', 'the trainer is closed', { input: 'trainer' });
    while (!this.current) {
      if (this.done) return null;
      const { epoch, step } = this.position;
      this.iterator = this.loader.iterate({ epoch, startStep: step })[Symbol.asyncIterator]();
      this.current = await this.fetch();
      if (!this.current) return null;
    }
    if (this.done) return null;
    const current = this.current;
    const { epoch, step } = this.position;
    // With overlap, the next batch's teacher features run on onnxruntime's threads during this step.
    const next = step + 1 < this.stepsPerEpoch ? await this.fetch() : null;
    await new Promise((r) => setImmediate(r));
    const pending = current.teacher;
    const features = pending ? await (typeof pending === 'function' ? pending() : pending) : null;
    const lr = stepLearningRate(this.optim, epoch);
    let loss: number;
    try {
      loss = this.engine.step(current.batch, features, lr).loss;
    } catch (error) {
      // The teacher's answers are checked before the step: what is not finite now is the
      // student's own, i.e. training diverged.
      if (error instanceof CompressError && error.code === 'NON_FINITE') {
        throw new CompressError(
          'NON_FINITE',
          `training diverged at step ${this.position.globalStep + 1} (epoch ${epoch + 1}): ${error.message}. This usually comes from ${this.divergenceHint()}; ${this.checkpoint ? `the last checkpoint (${this.checkpoint}) is kept` : 'no checkpoint was written'}`,
          { input: 'training', cause: error },
        );
      }
      throw error;
    }
    // The step copied the images into its tensor and the teacher has answered: the batch's
    // array can take a later batch.
    this.loader.release(current.batch);
    const images = current.batch.shape[0];
    this.imagesSeen += images;
    const globalStep = this.position.globalStep + 1;
    const endOfEpoch = step + 1 === this.stepsPerEpoch;
    this.position = endOfEpoch
      ? { method: this.method, epoch: epoch + 1, step: 0, globalStep }
      : { method: this.method, epoch, step: step + 1, globalStep };
    this.current = next;
    return {
      loss,
      lr,
      epoch,
      globalStep,
      totalSteps: this.totalSteps,
      images,
      endOfEpoch,
      imagesPerSecond: this.imagesSeen / ((performance.now() - this.loopStart) / 1000),
    };
  }

  /** The steps as an async iterator of their events. */
  async *steps(): AsyncGenerator<StepEvent> {
    for (let e = await this.step(); e; e = await this.step()) yield e;
  }

  /** The settings that usually make training diverge, for the message that says it did. */
  private divergenceHint(): string {
    const causes = [`a learning rate too high (lr ${this.optim.lr}; the paper: 0.01)`];
    if (['momentum', 'no-momentum', 'one-queue'].includes(this.method)) {
      causes.push(`a temperature too small (T ${this.loss.temperature}; the paper: 0.04)`);
    }
    return causes.join(' or ');
  }

  /** Writes a checkpoint of the current position into the run directory; returns its student file. */
  async save(): Promise<string> {
    const run = this.run;
    if (!run)
      throw new CompressError('INVALID_ARGUMENT', 'no run directory to save into', { input: 'runDir' });
    const position = this.position;
    const dir = await run.dir.saveCheckpoint(position.globalStep, async (dir) => {
      await writeFileAtomic(
        join(dir, 'config.json'),
        `${JSON.stringify(this.recordedSettings(), null, 2)}\n`,
      );
      await this.engine.state(dir, position);
    });
    this.checkpoint = this.engine.checkpointFile(dir);
    return this.checkpoint;
  }

  /** The k-NN monitor on the current student; null without one. */
  async monitor(): Promise<MonitorResult | null> {
    return this.monitorOptions ? knnMonitor(this.engine.extractor(), this.monitorOptions) : null;
  }

  /** Images per second since the loop started. */
  get imagesPerSecond(): number {
    return this.imagesSeen / ((performance.now() - this.loopStart) / 1000);
  }

  /** Stops the loader and frees the engine; the student stays the caller's (`student.dispose()`). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // the student's variables take the engine's last weights before the engine goes
    this.engine.sync();
    await this.loader.close();
    this.engine.dispose();
  }
}
