import type { Teacher } from '@compress/core';
import { selectBackend, stepLearningRate } from '@compress/students';
import {
  clusterPseudoLabels as computePseudoLabels,
  openRun,
  subsetIndices,
  train as trainStudent,
} from '@compress/train';
import type { Config } from './config.js';
import { writeTrainingCurves } from './curves.js';
import type { Reporter } from './progress.js';
import { evalTransform, openSplits, openTeacher, type Splits, trainTransform } from './resources.js';

export interface TrainOptions {
  config: Config;
  /** The run directory. */
  out: string;
  /** Continue from the run directory's latest checkpoint. */
  resume?: boolean;
  reporter: Reporter;
  /** Aborting saves a checkpoint after the current step and returns (SIGINT/SIGTERM). */
  signal?: AbortSignal;
  /** Already opened data and teacher (the reproduction shares them between runs). */
  splits?: Splits;
  teacher?: Teacher | null;
  /** CC: the k-means cluster of every train index (computed from the teacher when absent). */
  pseudoLabels?: Int32Array;
}

export interface TrainResult {
  out: string;
  /** The student checkpoint of the last step. */
  checkpoint: string;
  steps: number;
  stopped: boolean;
  seconds: number;
  imagesPerSecond: number;
  finalLoss: number;
}

/** The learning rate of an epoch: lr × gamma^(milestones passed). */
export function learningRate(config: Config, epoch: number): number {
  return stepLearningRate(config.optim, epoch);
}

/** k-means pseudo-labels of the teacher's features of the training images (the CC baseline). */
export async function clusterPseudoLabels(
  config: Config,
  splits: Splits,
  teacher: Teacher,
  reporter: Reporter,
): Promise<Int32Array> {
  const view = evalTransform(config, splits.train);
  return computePseudoLabels(teacher, splits.train, {
    clusters: config.loss.ccClusters,
    seed: config.seed,
    indices: subsetIndices(splits.train.length, config.data.trainSubset, config.seed, 'train-subset'),
    ...(view ? { transform: view.transform } : {}),
    onProgress: (e) => reporter.progress(e),
  });
}

/**
 * Trains a student with @compress/train from a resolved config: opens the run directory (refusing
 * a run that is there without --resume, or a resume with other settings), the data and the teacher,
 * and reports progress. `resume` continues a killed run and reaches the same weights as an
 * unbroken one.
 */
export async function train(options: TrainOptions): Promise<TrainResult> {
  const { config, reporter } = options;
  const run = await openRun(options.out, {
    resume: options.resume ?? false,
    settings: config,
    names: { resume: '--resume', runDir: '--out' },
    mayChange: ['student.engine', 'student.threads'],
  });
  const ownTeacher = config.method !== 'supervised' && options.teacher == null;
  let teacher: Teacher | null = null;
  let trained: Awaited<ReturnType<typeof trainStudent>>;
  try {
    await selectBackend({ log: (m) => reporter.info(m) });
    const splits = options.splits ?? (await openSplits(config));
    const indices = subsetIndices(splits.train.length, config.data.trainSubset, config.seed, 'train-subset');
    const decoder = (splits.train as { decoder?: string }).decoder;
    if (decoder) {
      reporter.info(
        `${splits.train.name}: ${indices?.length ?? splits.train.length} training images, JPEGs decoded by ${decoder}`,
      );
    }
    teacher =
      config.method === 'supervised'
        ? null
        : (options.teacher ?? (await openTeacher(config, splits.train, reporter.info, { takesTurns: true })));
    let pseudoLabels = options.pseudoLabels;
    if (config.method === 'cc' && !pseudoLabels)
      pseudoLabels = await clusterPseudoLabels(config, splits, teacher!, reporter);
    const view = evalTransform(config, splits.train);
    const { checkpointEvery, logEvery, monitorEvery, monitorSize } = config.schedule;
    const { maxSteps, baselineMaxSteps: _baselines, ...optim } = config.optim;
    trained = await trainStudent({
      dataset: splits.train,
      teacher,
      method: config.method,
      student: {
        arch: config.student.arch,
        width: config.student.width,
        inputSize: config.augment.size,
        channels: splits.shape[2],
      },
      seed: config.seed,
      loss: config.loss,
      optim: maxSteps === undefined ? optim : { ...optim, maxSteps },
      schedule: { checkpointEvery, logEvery, monitorEvery },
      transform: trainTransform(config),
      indices,
      workers: config.data.workers,
      engine: config.student.engine,
      threads: config.student.threads,
      numClasses: splits.classes.length,
      ...(pseudoLabels ? { pseudoLabels } : {}),
      monitor: {
        train: splits.train,
        test: splits.test,
        size: monitorSize,
        seed: config.seed,
        batchSize: config.eval.batchSize,
        numClasses: splits.classes.length,
        ...(view ? { transform: view.transform } : {}),
      },
      runDir: run,
      ...(options.signal ? { signal: options.signal } : {}),
      log: (m) => reporter.info(m),
      onProgress: (e) => reporter.progress(e),
    });
  } catch (error) {
    // A refused or failed run leaves no trace of itself where there was nothing before.
    await run.dir.discardIfUnused();
    throw error;
  } finally {
    reporter.done();
    if (ownTeacher) await teacher?.dispose();
  }
  trained.student.dispose();
  const result: TrainResult = {
    out: options.out,
    checkpoint: trained.checkpoint,
    steps: trained.steps,
    stopped: trained.stopped,
    seconds: trained.seconds,
    imagesPerSecond: trained.imagesPerSecond,
    finalLoss: trained.finalLoss,
  };
  await run.dir.metric({ event: result.stopped ? 'stopped' : 'done', ...result });
  await writeTrainingCurves(run.dir);
  return result;
}
