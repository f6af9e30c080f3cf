import { CompressError, type Teacher } from '@compress/core';
import {
  type EvaluationReport,
  evaluateFeatures,
  extractFeatures,
  type FeatureExtractor,
  type Protocol,
  rawPixels,
} from '@compress/eval';
import { createStudent, loadStudent, type Student, selectBackend } from '@compress/students';
import { CachedTeacher, CheckedTeacher } from '@compress/teacher';
import { studentExtractor } from '@compress/train';
import type { Config } from './config.js';
import type { Reporter } from './progress.js';
import { evalTransform, type Splits, subsetDataset, subsetIndices } from './resources.js';

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
