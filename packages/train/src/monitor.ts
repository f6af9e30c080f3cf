import { kmeans } from '@compress/cluster';
import {
  type Dataset,
  type FeatureMatrix,
  l2NormalizeRows,
  type ProgressListener,
  type Teacher,
} from '@compress/core';
import type { Transform } from '@compress/data';
import { extractFeatures, type FeatureExtractor, knnAccuracy } from '@compress/eval';
import { subsetDataset, subsetIndices } from './subset.js';

/** The k-NN monitor: 1-NN accuracy of held-out images against training images, on frozen features. */
export interface MonitorOptions {
  /** Images whose features are the neighbours (usually the training split). */
  train: Dataset;
  /** Held-out images whose labels are predicted. */
  test: Dataset;
  /** Images of each split (a seeded subset; 0: no monitor). */
  size: number;
  /** Seed of the subsets. */
  seed: number;
  /** Evaluation transform (resize + centre crop); none when the images have the student's size. */
  transform?: Transform;
  batchSize?: number;
  /** Classes of the labels (default: the train split's). */
  numClasses?: number;
}

export interface MonitorResult {
  accuracy: number;
  /** Held-out images. */
  queries: number;
  /** Neighbour images. */
  base: number;
}

/** 1-NN accuracy of an extractor (a student) on held-out images against training images; null when `size` is 0. */
export async function knnMonitor(
  extractor: FeatureExtractor,
  options: MonitorOptions,
): Promise<MonitorResult | null> {
  const n = options.size;
  if (n === 0) return null;
  const { train, test, seed } = options;
  const opts = {
    batchSize: options.batchSize ?? 256,
    ...(options.transform ? { transform: options.transform } : {}),
  };
  const base = await extractFeatures(
    extractor,
    subsetDataset(train, subsetIndices(train.length, n, seed, 'monitor-train')),
    opts,
  );
  const query = await extractFeatures(
    extractor,
    subsetDataset(test, subsetIndices(test.length, n, seed, 'monitor-test')),
    opts,
  );
  const r = await knnAccuracy(base.features, base.labels, query.features, query.labels, {
    k: 1,
    numClasses: options.numClasses ?? train.classes.length,
  });
  return { accuracy: r.top1, queries: query.features.rows, base: base.features.rows };
}

export interface PseudoLabelOptions {
  /** k of k-means. */
  clusters: number;
  seed: number;
  /** The training images (dataset indices) that get labels; all when absent. */
  indices?: Int32Array | null;
  /** Evaluation transform of the images the teacher sees. */
  transform?: Transform;
  onProgress?: ProgressListener;
}

/**
 * The CC baseline's labels: k-means (20 iterations) on the teacher's L2-normalised features of the
 * training images; the cluster of every dataset index (-1 for indices outside `indices`).
 */
export async function clusterPseudoLabels(
  teacher: Teacher,
  dataset: Dataset,
  options: PseudoLabelOptions,
): Promise<Int32Array> {
  const indices = options.indices ?? null;
  const report = options.onProgress;
  const { features } = await extractFeatures(teacher, subsetDataset(dataset, indices), {
    batchSize: 256,
    ...(options.transform ? { transform: options.transform } : {}),
    ...(report ? { onProgress: (e) => report({ ...e, phase: 'cc: teacher features' }) } : {}),
  });
  const km = await kmeans(l2NormalizeRows(features as FeatureMatrix), options.clusters, {
    iterations: 20,
    seed: options.seed,
    ...(report ? { onProgress: (e) => report({ ...e, phase: 'cc: k-means' }) } : {}),
  });
  const labels = new Int32Array(dataset.length).fill(-1);
  km.assignments.forEach((c, i) => {
    labels[indices ? indices[i]! : i] = c;
  });
  return labels;
}
