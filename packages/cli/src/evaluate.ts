import { type KnnPart, knnSearch, mergeKnnResults } from '@compress/cluster';
import { CompressError, type Dataset, l2NormalizeRows, type Teacher } from '@compress/core';
import {
  type EvaluationReport,
  evaluateFeatures,
  extractFeatures,
  type FeatureExtractor,
  knnAccuracyOfNeighbors,
  type Protocol,
  rawPixels,
  writeReportFiles,
} from '@compress/eval';
import { createStudent, loadStudent, type Student, selectBackend } from '@compress/students';
import { CachedTeacher, CheckedTeacher, checkFeatureShards, readFeatureShard } from '@compress/teacher';
import { studentExtractor } from '@compress/train';
import type { Config } from './config.js';
import type { Reporter } from './progress.js';
import { evalTransform, type Splits, subsetDataset, subsetIndices } from './resources.js';
import { listShardFiles, shardFileName } from './shard-files.js';

/** What is evaluated: a trained student, a teacher, raw pixels, or an untrained student. */
export type EvalSource =
  | { kind: 'student'; checkpoint: string }
  | { kind: 'teacher'; teacher: Teacher }
  | { kind: 'raw-pixels' }
  | { kind: 'random-init' };

export interface EvaluateOptions {
  config: Config;
  splits: Splits;
  source: EvalSource;
  /** Row name in tables. */
  name: string;
  /** Where report.md, report.json and the pictures go. */
  outDir: string;
  protocols?: Protocol[];
  reporter: Reporter;
}

/**
 * Runs the paper's evaluations (1-NN and 20-NN, linear probe, cluster alignment) on frozen features
 * of the train and test splits (seeded subsets when the config's budget asks for them).
 */
export async function evaluateSource(options: EvaluateOptions): Promise<EvaluationReport> {
  const { config, splits, source, reporter } = options;
  let student: Student | null = null;
  let extractor: FeatureExtractor;
  // The student's forward and the linear probe run on TensorFlow.js.
  await selectBackend({ log: (m) => reporter.info(m) });
  switch (source.kind) {
    case 'student':
      student = await loadStudent(source.checkpoint);
      extractor = studentExtractor(student);
      break;
    case 'random-init':
      student = createStudent(config.student.arch, {
        seed: config.seed,
        channels: splits.shape[2],
        inputSize: config.augment.size,
        width: config.student.width,
      });
      extractor = studentExtractor(student);
      break;
    case 'teacher': {
      const inner = source.teacher instanceof CheckedTeacher ? source.teacher.inner : source.teacher;
      if (inner instanceof CachedTeacher) {
        throw new CompressError(
          'INVALID_ARGUMENT',
          `evaluating the teacher needs features of both splits, but ${inner.file} holds the features of one dataset split only (rows are looked up by dataset index); evaluate the teacher from its .onnx file or module instead`,
          { input: 'teacher.source' },
        );
      }
      extractor = source.teacher;
      break;
    }
    case 'raw-pixels':
      extractor = rawPixels(splits.shape);
      break;
  }
  try {
    const view = evalTransform(config, splits.train);
    const trainSet = subsetDataset(
      splits.train,
      subsetIndices(splits.train.length, config.data.evalTrainSubset, config.seed, 'eval-train'),
    );
    const testSet = subsetDataset(
      splits.test,
      subsetIndices(splits.test.length, config.data.evalTestSubset, config.seed, 'eval-test'),
    );
    const opts = {
      batchSize: config.eval.batchSize,
      ...(view ? { transform: view.transform } : {}),
    };
    const train = await extractFeatures(extractor, trainSet, {
      ...opts,
      onProgress: (e) => reporter.progress({ ...e, phase: `${options.name}: train features` }),
    });
    const test = await extractFeatures(extractor, testSet, {
      ...opts,
      onProgress: (e) => reporter.progress({ ...e, phase: `${options.name}: test features` }),
    });
    const report = await evaluateFeatures(train.features, train.labels, test.features, test.labels, {
      name: options.name,
      ...(options.protocols ? { protocols: options.protocols } : {}),
      classNames: splits.classes,
      linear: {
        epochs: config.eval.linearEpochs,
        milestones: config.eval.linearMilestones,
        numClasses: splits.classes.length,
        onProgress: (e) => reporter.progress({ ...e, phase: `${options.name}: linear probe` }),
      },
      seed: config.seed,
      outDir: options.outDir,
      trainDataset: trainSet,
    });
    reporter.done();
    return report;
  } finally {
    student?.dispose();
  }
}

export interface ShardedKnnOptions {
  config: Config;
  splits: Splits;
  /** Embeds the test split (the queries); its fingerprint must be the shards'. */
  teacher: Teacher;
  /** Directory of the train split's shard set (`teacher-train.shard-<i>-of-<n>.fcache`). */
  shardDir: string;
  name: string;
  outDir: string;
  reporter: Reporter;
}

/**
 * The k-NN protocol (1-NN, 20-NN weighted) with the train split's features given as a shard set:
 * one shard in memory at a time, each shard's exact top-20 of every test row, merged into the global
 * top-20 — the same neighbours, and so the same numbers, as {@link evaluateSource} with `knn`.
 */
export async function evaluateKnnShards(options: ShardedKnnOptions): Promise<EvaluationReport> {
  const { config, splits, teacher, reporter } = options;
  if (config.data.evalTrainSubset !== undefined) {
    throw new CompressError(
      'CONFIG',
      `data.evalTrainSubset ${config.data.evalTrainSubset}: a shard set holds the whole train split; k-NN over shards searches all of it (leave evalTrainSubset out, or use a budget without it)`,
      { input: 'data.evalTrainSubset' },
    );
  }
  const fingerprint = config.teacher.fingerprint ?? teacher.fingerprint;
  const files = await listShardFiles(options.shardDir, 'train', 'eval --base-shards');
  const set = await checkFeatureShards(files, {
    dataset: splits.train,
    ...(fingerprint ? { teacher: fingerprint } : {}),
    expectedFile: (s) => shardFileName('train', s),
  });
  const view = evalTransform(config, splits.train);
  if (set.transform !== (view?.id ?? 'none')) {
    throw new CompressError(
      'MISMATCH',
      `${options.shardDir}: the shards were made with transform '${set.transform}', the evaluation uses '${view?.id ?? 'none'}'`,
      { input: options.shardDir },
    );
  }
  const seconds: Record<string, number> = {};
  const testSet = subsetDataset(
    splits.test,
    subsetIndices(splits.test.length, config.data.evalTestSubset, config.seed, 'eval-test'),
  );
  const test = await extractFeatures(teacher, testSet, {
    batchSize: config.eval.batchSize,
    ...(view ? { transform: view.transform } : {}),
    onProgress: (e) => reporter.progress({ ...e, phase: `${options.name}: test features` }),
  });
  const trainLabels = await labelsOf(splits.train);
  const started = performance.now();
  const queries = l2NormalizeRows(test.features);
  const parts: KnnPart[] = [];
  for (const [done, shard] of set.shards.entries()) {
    reporter.progress({
      phase: `${options.name}: k-NN over shards`,
      done,
      total: set.shards.length,
      unit: 'shards',
    });
    const base = l2NormalizeRows(await readFeatureShard(shard));
    if (base.dim !== queries.dim) {
      throw new CompressError(
        'SHAPE_MISMATCH',
        `${shard.file}: rows of dim ${base.dim}, the teacher's test features have dim ${queries.dim}`,
        { input: shard.file },
      );
    }
    parts.push({
      result: await knnSearch(base, queries, Math.min(20, base.rows), { metric: 'ip' }),
      offset: shard.start,
      rows: base.rows,
    });
  }
  reporter.progress({
    phase: `${options.name}: k-NN over shards`,
    done: set.shards.length,
    total: set.shards.length,
    unit: 'shards',
  });
  const rows = parts.reduce((n, p) => n + (p.rows ?? 0), 0);
  const top = mergeKnnResults(parts, 'ip', { k: Math.min(20, rows) });
  // classes as evaluateFeatures counts them: 1 + the largest label of either split
  const knn1 = knnAccuracyOfNeighbors(top, trainLabels, test.labels, { k: 1 });
  const knn20 = knnAccuracyOfNeighbors(top, trainLabels, test.labels, {
    k: Math.min(20, top.k),
    vote: 'weighted',
    temperature: 0.07,
  });
  seconds.knn1 = (performance.now() - started) / 1000; // one search gives both
  seconds.knn20 = seconds.knn1;
  const pct = (x: number) => Math.round(x * 10000) / 100;
  const report: EvaluationReport = {
    name: options.name,
    knn1,
    knn20,
    summary: { nn: pct(knn1.top1), knn20: pct(knn20.top1), linear: null, ca: null, caSd: null },
    seconds,
    files: [],
  };
  await writeReportFiles(report, options.outDir, splits.classes);
  reporter.done();
  return report;
}

/**
 * Every label of a dataset in index order: its `labels` array where it has one (the datasets of
 * @compress/data), else read image by image.
 */
async function labelsOf(dataset: Dataset): Promise<Int32Array> {
  const own = (dataset as { labels?: unknown }).labels;
  if (own instanceof Int32Array && own.length === dataset.length) return own;
  const labels = new Int32Array(dataset.length);
  for (let i = 0; i < labels.length; i++) labels[i] = (await dataset.get(i)).label ?? -1;
  return labels;
}
