import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { kmeans } from '@compress/cluster';
import {
  CompressError,
  type FeatureMatrix,
  ioError,
  l2NormalizeRows,
  type Teacher,
  writeFileAtomic,
} from '@compress/core';
import { createLoader, type LoaderBatch } from '@compress/data';
import { extractFeatures, knnAccuracy } from '@compress/eval';
import {
  createStudent,
  preprocess,
  restoreCheckpoint,
  SGD,
  type Student,
  saveCheckpoint,
  selectBackend,
  trainStep,
} from '@compress/students';
import type * as tf from '@tensorflow/tfjs-core';
import type { Config } from './config.js';
import { studentExtractor } from './extractors.js';
import { createObjective, type Objective } from './objective.js';
import type { Reporter } from './progress.js';
import {
  evalTransform,
  openSplits,
  openTeacher,
  type Splits,
  subsetDataset,
  subsetIndices,
  trainTransform,
} from './resources.js';
import { RunDir } from './run-dir.js';
import { readStateFile, writeStateFile } from './state-file.js';

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

interface Meta {
  method: string;
  epoch: number;
  /** Next step within `epoch`. */
  step: number;
  globalStep: number;
}

/** The learning rate of an epoch: lr × gamma^(milestones passed). */
export function learningRate(config: Config, epoch: number): number {
  let lr = config.optim.lr;
  for (const m of config.optim.milestones) if (epoch >= m) lr *= config.optim.gamma;
  return lr;
}

/** Keys whose values differ between two configs (for resume). */
function differences(a: unknown, b: unknown, path = ''): string[] {
  if (typeof a === 'object' && a !== null && typeof b === 'object' && b !== null && !Array.isArray(a)) {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
    return [...keys].flatMap((k) =>
      differences(
        (a as Record<string, unknown>)[k],
        (b as Record<string, unknown>)[k],
        path ? `${path}.${k}` : k,
      ),
    );
  }
  return JSON.stringify(a) === JSON.stringify(b) ? [] : [path];
}

/** k-means pseudo-labels of the teacher's features of the training images (the CC baseline). */
export async function clusterPseudoLabels(
  config: Config,
  splits: Splits,
  teacher: Teacher,
  reporter: Reporter,
): Promise<Int32Array> {
  const indices = subsetIndices(splits.train.length, config.data.trainSubset, config.seed, 'train-subset');
  const data = subsetDataset(splits.train, indices);
  const view = evalTransform(config, splits.train);
  const { features } = await extractFeatures(teacher, data, {
    batchSize: 256,
    ...(view ? { transform: view.transform } : {}),
    onProgress: (e) => reporter.progress({ ...e, phase: 'cc: teacher features' }),
  });
  const km = await kmeans(l2NormalizeRows(features), config.loss.ccClusters, {
    iterations: 20,
    seed: config.seed,
    onProgress: (e) => reporter.progress({ ...e, phase: 'cc: k-means' }),
  });
  const labels = new Int32Array(splits.train.length).fill(-1);
  km.assignments.forEach((c, i) => {
    labels[indices ? indices[i]! : i] = c;
  });
  return labels;
}

/** 1-NN accuracy of the student on held-out test images against train images (the run's monitor). */
async function monitor(
  config: Config,
  splits: Splits,
  student: Student,
): Promise<{ accuracy: number; queries: number; base: number } | null> {
  const n = config.schedule.monitorSize;
  if (n === 0) return null;
  const extractor = studentExtractor(student);
  const view = evalTransform(config, splits.train);
  const opts = { batchSize: config.eval.batchSize, ...(view ? { transform: view.transform } : {}) };
  const base = await extractFeatures(
    extractor,
    subsetDataset(splits.train, subsetIndices(splits.train.length, n, config.seed, 'monitor-train')),
    opts,
  );
  const query = await extractFeatures(
    extractor,
    subsetDataset(splits.test, subsetIndices(splits.test.length, n, config.seed, 'monitor-test')),
    opts,
  );
  const r = await knnAccuracy(base.features, base.labels, query.features, query.labels, {
    k: 1,
    numClasses: splits.classes.length,
  });
  return { accuracy: r.top1, queries: query.features.rows, base: base.features.rows };
}

/**
 * Trains a student as the paper does: the same augmented batch to teacher and student, SGD with
 * momentum and weight decay, a step learning-rate schedule, the key encoder's EMA (momentum
 * variant), checkpoints (student, key, optimizer, queues, position) written atomically every
 * `schedule.checkpointEvery` steps and at every epoch end. `resume` continues a killed run and
 * reaches the same weights as an unbroken one.
 */
export async function train(options: TrainOptions): Promise<TrainResult> {
  const started = performance.now();
  const run = await RunDir.open(options.out);
  try {
    return await trainIn(run, options, started);
  } catch (error) {
    // A refused or failed run leaves no trace of itself where there was nothing before.
    await run.discardIfUnused();
    throw error;
  }
}

/** Refuses, before anything is written, a resume whose settings differ from the run's. */
async function checkResume(run: RunDir, config: Config, latest: { dir: string; step: number } | null) {
  // The checkpoint's own copy of the config is what its state was made with; the run's
  // config.json is the fallback for checkpoints written before it was kept there.
  const fromCheckpoint = latest ? await readJsonIn<Config>(join(latest.dir, 'config.json')) : null;
  const saved = fromCheckpoint ?? (await run.readJson<Config>('config.json'));
  if (!saved) return;
  const changed = differences(saved, config);
  if (changed.length > 0) {
    const where = fromCheckpoint ? `its checkpoint at step ${latest!.step}` : 'its config.json';
    throw new CompressError(
      'MISMATCH',
      `cannot resume ${run.path}: ${where} was made with other settings (${changed
        .map(
          (k) =>
            `${k}: ${JSON.stringify(valueAt(saved, k))} there, ${JSON.stringify(valueAt(config, k))} now`,
        )
        .join('; ')}); resume with the same settings or train into another --out`,
      { input: run.path },
    );
  }
}

function valueAt(value: unknown, path: string): unknown {
  return path.split('.').reduce<unknown>((v, k) => (v as Record<string, unknown> | undefined)?.[k], value);
}

async function readJsonIn<T>(path: string): Promise<T | null> {
  const text = await readFile(path, 'utf8').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return null;
    throw ioError(error, path, 'read');
  });
  if (text === null) return null;
  try {
    return JSON.parse(text) as T;
  } catch (error) {
    throw new CompressError('CORRUPT_INPUT', `${path}: not valid JSON (${(error as Error).message})`, {
      input: path,
      cause: error,
    });
  }
}

/** The settings that usually make training diverge, for the message that says it did. */
function divergenceHint(config: Config): string {
  const causes = [`a learning rate too high (lr ${config.optim.lr}; the paper: 0.01)`];
  if (['momentum', 'no-momentum', 'one-queue'].includes(config.method)) {
    causes.push(`a temperature too small (T ${config.loss.temperature}; the paper: 0.04)`);
  }
  return causes.join(' or ');
}

async function trainIn(run: RunDir, options: TrainOptions, started: number): Promise<TrainResult> {
  const { config, reporter } = options;
  const latest = await run.latestCheckpoint();
  if (options.resume) {
    await checkResume(run, config, latest);
  } else if (latest) {
    throw new CompressError(
      'INVALID_ARGUMENT',
      `${options.out} already holds a run (checkpoint at step ${latest.step}); pass --resume to continue it or choose another --out`,
      { input: options.out },
    );
  }

  // 1. Engines and data.
  await selectBackend({ log: (m) => reporter.info(m) });
  const splits = options.splits ?? (await openSplits(config));
  const trainIndices = subsetIndices(
    splits.train.length,
    config.data.trainSubset,
    config.seed,
    'train-subset',
  );
  const trainSize = trainIndices?.length ?? splits.train.length;
  const decoder = (splits.train as { decoder?: string }).decoder;
  if (decoder)
    reporter.info(`${splits.train.name}: ${trainSize} training images, JPEGs decoded by ${decoder}`);

  // 2. Teacher (what the method needs of it).
  const method = config.method;
  const usesTeacher = method !== 'supervised';
  const ownTeacher = usesTeacher && options.teacher == null;
  const teacher = usesTeacher
    ? (options.teacher ?? (await openTeacher(config, splits.train, reporter.info)))
    : null;
  let pseudoLabels = options.pseudoLabels;
  if (method === 'cc' && !pseudoLabels)
    pseudoLabels = await clusterPseudoLabels(config, splits, teacher!, reporter);

  // 3. Student, objective, optimizer.
  const student = createStudent(config.student.arch, {
    seed: config.seed,
    channels: splits.shape[2],
    inputSize: config.augment.size,
    width: config.student.width,
  });
  const objective: Objective = createObjective(method, {
    config,
    student,
    teacherDim: teacher?.dim ?? 0,
    trainSize,
    numClasses: splits.classes.length,
    ...(pseudoLabels ? { pseudoLabels } : {}),
    warn: (m) => reporter.info(`warning: ${m}`),
  });
  const optimizer = new SGD({
    lr: config.optim.lr,
    momentum: config.optim.momentum,
    weightDecay: config.optim.weightDecay,
  });
  const loader = createLoader(splits.train, {
    batchSize: config.optim.batchSize,
    seed: config.seed,
    transform: trainTransform(config),
    workers: config.data.workers,
    dropLast: true,
    indices: trainIndices,
  });
  const stepsPerEpoch = loader.stepsPerEpoch;
  const totalSteps = Math.min(
    config.optim.epochs * stepsPerEpoch,
    config.optim.maxSteps ?? Number.POSITIVE_INFINITY,
  );

  // 4. Resume.
  let meta: Meta = { method, epoch: 0, step: 0, globalStep: 0 };
  if (options.resume && latest) {
    if (objective.state() !== null) objective.restore(await readStateFile(join(latest.dir, 'state.bin')));
    meta = (await restoreCheckpoint(join(latest.dir, 'student.ckpt'), {
      student,
      ...(objective.key ? { key: objective.key } : {}),
      optimizer,
      variables: objective.namedVariables(),
    })) as Meta;
    reporter.info(
      `resuming ${options.out} at epoch ${meta.epoch + 1}, step ${meta.step} (global step ${meta.globalStep})`,
    );
    await run.metric({ event: 'resume', ...meta });
  }
  // Everything is in place and the saved state accepted these settings: only now is the run
  // directory changed.
  await run.writeJson('config.json', config);

  const save = async (m: Meta): Promise<string> => {
    const dir = await run.saveCheckpoint(m.globalStep, async (dir) => {
      await writeFileAtomic(join(dir, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
      const state = objective.state();
      if (state !== null) await writeStateFile(join(dir, 'state.bin'), state);
      await saveCheckpoint(join(dir, 'student.ckpt'), {
        student,
        ...(objective.key ? { key: objective.key } : {}),
        optimizer,
        variables: objective.namedVariables(),
        meta: m,
      });
    });
    return join(dir, 'student.ckpt');
  };

  // 5. The loop.
  let lastLoss = Number.NaN;
  let stopped = false;
  let imagesSeen = 0;
  const loopStart = performance.now();
  let checkpoint = latest ? join(latest.dir, 'student.ckpt') : '';
  try {
    for (
      let epoch = meta.epoch;
      epoch < config.optim.epochs && meta.globalStep < totalSteps && !stopped;
      epoch++
    ) {
      optimizer.lr = learningRate(config, epoch);
      const startStep = epoch === meta.epoch ? meta.step : 0;
      const it = loader.iterate({ epoch, startStep })[Symbol.asyncIterator]();
      const fetch = async (): Promise<{
        batch: LoaderBatch;
        teacher: Promise<FeatureMatrix> | null;
      } | null> => {
        const r = await it.next();
        if (r.done) return null;
        const features = teacher && objective.needsTeacher ? teacher.embed(r.value) : null;
        // Awaited in its step; if an earlier step fails first, its failure is that step's to report.
        features?.catch(() => {});
        return { batch: r.value, teacher: features };
      };
      let current = await fetch();
      let step = startStep;
      while (current && meta.globalStep < totalSteps) {
        // The next batch's teacher features run on onnxruntime's threads during this step.
        const next = step + 1 < stepsPerEpoch ? await fetch() : null;
        await new Promise((r) => setImmediate(r));
        const tFeats = current.teacher ? await current.teacher : null;
        const x = preprocess(student, current.batch);
        let loss: number;
        try {
          objective.prepare(student, x);
          loss = trainStep(student, () => objective.loss(student, x, current!.batch, tFeats), {
            optimizer,
            extraVariables: objective.variables,
          }).loss;
          objective.finish();
        } catch (error) {
          // The teacher's answers are checked before the step: what is not finite now is the
          // student's own, i.e. training diverged.
          if (error instanceof CompressError && error.code === 'NON_FINITE') {
            throw new CompressError(
              'NON_FINITE',
              `training diverged at step ${meta.globalStep + 1} (epoch ${epoch + 1}): ${error.message}. This usually comes from ${divergenceHint(config)}; ${checkpoint ? `the last checkpoint (${checkpoint}) is kept` : 'no checkpoint was written'}`,
              { input: 'training', cause: error },
            );
          }
          throw error;
        } finally {
          (x as tf.Tensor).dispose();
        }
        // The step copied the images into its tensor and the teacher has answered: the batch's
        // array can take a later batch (fresh pages cost the loader about a third of its time).
        loader.release(current.batch);
        step++;
        imagesSeen += current.batch.shape[0];
        meta = { method, epoch, step, globalStep: meta.globalStep + 1 };
        lastLoss = loss;
        const seconds = (performance.now() - loopStart) / 1000;
        const metrics = { loss, lr: optimizer.lr, 'img/s': imagesSeen / seconds };
        reporter.progress({
          phase: `train ${method}`,
          done: meta.globalStep,
          total: totalSteps,
          unit: 'steps',
          metrics,
        });
        if (meta.globalStep % config.schedule.logEvery === 0 || meta.globalStep === totalSteps) {
          await run.metric({ epoch: epoch + 1, step: meta.globalStep, ...metrics });
        }
        const endOfEpoch = step === stepsPerEpoch;
        if (endOfEpoch) meta = { method, epoch: epoch + 1, step: 0, globalStep: meta.globalStep };
        if (options.signal?.aborted) {
          stopped = true;
          checkpoint = await save(meta);
          reporter.info(
            `stopped: checkpoint at step ${meta.globalStep} in ${checkpoint}; continue with --resume`,
          );
          break;
        }
        if (config.schedule.monitorEvery > 0 && meta.globalStep % config.schedule.monitorEvery === 0) {
          const knn = await monitor(config, splits, student);
          if (knn !== null) {
            await run.metric({
              step: meta.globalStep,
              monitor: 'knn1',
              accuracy: knn.accuracy,
              images: knn.queries,
            });
          }
        }
        if (
          endOfEpoch ||
          meta.globalStep % config.schedule.checkpointEvery === 0 ||
          meta.globalStep === totalSteps
        ) {
          checkpoint = await save(meta);
        }
        if (endOfEpoch && config.schedule.monitorEvery === 0) {
          const knn = await monitor(config, splits, student);
          if (knn !== null) {
            reporter.info(
              `epoch ${epoch + 1}: monitor 1-NN ${(knn.accuracy * 100).toFixed(2)}% on ${knn.queries} held-out images (against ${knn.base} training images)`,
            );
            await run.metric({
              epoch: epoch + 1,
              step: meta.globalStep,
              monitor: 'knn1',
              accuracy: knn.accuracy,
              images: knn.queries,
            });
          }
        }
        current = next;
      }
    }
    if (!stopped && (!checkpoint || meta.globalStep === 0)) checkpoint = await save(meta);
  } finally {
    reporter.done();
    await loader.close();
    objective.dispose();
    optimizer.dispose();
    student.dispose();
    if (ownTeacher) await teacher?.dispose();
  }
  const seconds = (performance.now() - started) / 1000;
  const result: TrainResult = {
    out: options.out,
    checkpoint,
    steps: meta.globalStep,
    stopped,
    seconds,
    imagesPerSecond: imagesSeen / ((performance.now() - loopStart) / 1000),
    finalLoss: lastLoss,
  };
  await run.metric({ event: stopped ? 'stopped' : 'done', ...result });
  return result;
}
