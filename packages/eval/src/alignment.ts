import { assign, kmeans, linearSumAssignment } from '@compress/cluster';
import { CompressError, type FeatureMatrix, l2NormalizeRows } from '@compress/core';
import { assertEveryClassPresent, checkLabels, countClasses } from './labels.js';

/** The cluster → class alignment of the paper, from cluster ids and labels. */
export interface Alignment {
  /** counts[c·numClasses + l] = train samples in cluster c with label l. */
  counts: Int32Array;
  /** score[c·numClasses + l] = counts / |cluster c| (the paper's alignment score). */
  score: Float64Array;
  /** mapping[c] = class assigned to cluster c (−1 when there are more clusters than classes). */
  mapping: Int32Array;
  trainAccuracy: number;
  valAccuracy: number;
  /** Validation counts, same layout as `counts`. */
  valCounts: Int32Array;
}

function countTable(
  clusters: Int32Array,
  labels: Int32Array,
  numClusters: number,
  numClasses: number,
): Int32Array {
  const counts = new Int32Array(numClusters * numClasses);
  for (let i = 0; i < clusters.length; i++) counts[clusters[i]! * numClasses + labels[i]!]! += 1;
  return counts;
}

function mappedAccuracy(counts: Int32Array, mapping: Int32Array, numClasses: number, total: number): number {
  let hit = 0;
  mapping.forEach((l, c) => {
    if (l >= 0) hit += counts[c * numClasses + l]!;
  });
  return total === 0 ? 0 : hit / total;
}

/**
 * The paper's cluster alignment (eval_cluster_alignment.py) from given cluster ids: score each
 * (cluster, class) pair by |cluster ∩ class| / |cluster|, assign clusters to classes one-to-one
 * maximising the summed score (Hungarian), and report the accuracy of that mapping on train and on
 * validation (the validation samples keep the mapping learned on train).
 *
 * The normalised score is the paper's: it differs from the usual "clustering accuracy" that
 * maximises raw counts.
 */
export function alignClusters(
  trainClusters: ArrayLike<number>,
  trainLabels: ArrayLike<number>,
  valClusters: ArrayLike<number>,
  valLabels: ArrayLike<number>,
  numClusters: number,
  numClasses: number,
  by: 'score' | 'counts' = 'score',
): Alignment {
  const check = (clusters: ArrayLike<number>, labels: ArrayLike<number>, split: string) => {
    if (clusters.length !== labels.length) {
      throw new CompressError(
        'SHAPE_MISMATCH',
        `alignClusters: ${split} has ${clusters.length} cluster ids but ${labels.length} labels`,
        { input: `${split}Labels` },
      );
    }
    for (let i = 0; i < clusters.length; i++) {
      const c = clusters[i]!;
      const l = labels[i]!;
      if (
        !(Number.isInteger(c) && c >= 0 && c < numClusters && Number.isInteger(l) && l >= 0 && l < numClasses)
      ) {
        throw new CompressError(
          'INVALID_ARGUMENT',
          `alignClusters: ${split} sample ${i} has cluster ${c} and label ${l}; expected cluster in [0, ${numClusters}) and label in [0, ${numClasses})`,
          { input: `${split}Labels` },
        );
      }
    }
    return [Int32Array.from(clusters), Int32Array.from(labels)] as const;
  };
  const [tc, tl] = check(trainClusters, trainLabels, 'train');
  const [vc, vl] = check(valClusters, valLabels, 'val');
  const counts = countTable(tc, tl, numClusters, numClasses);
  const score = new Float64Array(numClusters * numClasses);
  for (let c = 0; c < numClusters; c++) {
    let size = 0;
    for (let l = 0; l < numClasses; l++) size += counts[c * numClasses + l]!;
    if (size > 0)
      for (let l = 0; l < numClasses; l++) score[c * numClasses + l] = counts[c * numClasses + l]! / size;
  }
  const objective = by === 'score' ? score : Float64Array.from(counts);
  const { rowIndices, colIndices } = linearSumAssignment(objective, numClusters, numClasses, {
    maximize: true,
  });
  const mapping = new Int32Array(numClusters).fill(-1);
  rowIndices.forEach((c, i) => {
    mapping[c] = colIndices[i]!;
  });
  const valCounts = countTable(vc, vl, numClusters, numClasses);
  return {
    counts,
    score,
    mapping,
    trainAccuracy: mappedAccuracy(counts, mapping, numClasses, tc.length),
    valAccuracy: mappedAccuracy(valCounts, mapping, numClasses, vc.length),
    valCounts,
  };
}

export interface ClusterAlignmentOptions {
  /** Number of k-means clusters. @default the number of classes (the paper's protocol) */
  clusters?: number;
  /** k-means iterations. @default 20 — the paper's protocol (faiss' default niter) */
  iterations?: number;
  /** Seed of the k-means initialisation. @default 0 */
  seed?: number;
  /** k-means restarts (the best inertia wins). @default 1 */
  restarts?: number;
  /** L2-normalise features before clustering, as every other protocol does. @default true */
  normalize?: boolean;
  /** Number of classes. @default 1 + the largest label */
  numClasses?: number;
}

export interface ClusterAlignmentResult extends Alignment {
  numClusters: number;
  numClasses: number;
  /** Cluster of every train / val row. */
  trainClusters: Int32Array;
  valClusters: Int32Array;
  /**
   * Validation confusion matrix, rows = clusters in mapped order (row i is the cluster mapped to
   * class i), columns = true classes: confusion[i·numClasses + l].
   */
  confusion: Int32Array;
  /** Cluster id of each confusion row. */
  confusionRows: Int32Array;
  inertia: number;
}

/**
 * Cluster alignment of frozen features (the paper's third evaluation): k-means on the train
 * features with k = number of classes, then {@link alignClusters}; validation rows go to their
 * nearest train centroid.
 */
export async function clusterAlignment(
  trainFeatures: FeatureMatrix,
  trainLabels: ArrayLike<number>,
  valFeatures: FeatureMatrix,
  valLabels: ArrayLike<number>,
  options: ClusterAlignmentOptions = {},
): Promise<ClusterAlignmentResult> {
  const yTrain = checkLabels(trainLabels, trainFeatures, 'train', options.numClasses);
  const yVal = checkLabels(valLabels, valFeatures, 'val', options.numClasses);
  if (trainFeatures.dim !== valFeatures.dim) {
    throw new CompressError(
      'SHAPE_MISMATCH',
      `clusterAlignment: train features have dim ${trainFeatures.dim}, val features ${valFeatures.dim}; expected the same`,
      { input: 'valFeatures' },
    );
  }
  const numClasses = options.numClasses ?? countClasses(yTrain, yVal);
  assertEveryClassPresent(yTrain, numClasses, 'clusterAlignment');
  const numClusters = options.clusters ?? numClasses;
  const normalize = options.normalize ?? true;
  const xTrain = normalize ? l2NormalizeRows(trainFeatures) : trainFeatures;
  const xVal = normalize ? l2NormalizeRows(valFeatures) : valFeatures;
  const km = await kmeans(xTrain, numClusters, {
    iterations: options.iterations ?? 20,
    seed: options.seed ?? 0,
    restarts: options.restarts ?? 1,
  });
  const { assignments: valClusters } = await assign(km.centroids, xVal);
  const alignment = alignClusters(km.assignments, yTrain, valClusters, yVal, numClusters, numClasses);
  // Rows in mapped order: the cluster mapped to class 0 first, then unmapped clusters.
  const order = Array.from({ length: numClusters }, (_, c) => c).sort((a, b) => {
    const ma = alignment.mapping[a]!;
    const mb = alignment.mapping[b]!;
    return (ma < 0 ? numClasses + a : ma) - (mb < 0 ? numClasses + b : mb);
  });
  const confusion = new Int32Array(numClusters * numClasses);
  order.forEach((c, row) => {
    confusion.set(alignment.valCounts.subarray(c * numClasses, (c + 1) * numClasses), row * numClasses);
  });
  return {
    ...alignment,
    numClusters,
    numClasses,
    trainClusters: Int32Array.from(km.assignments),
    valClusters: Int32Array.from(valClusters),
    confusion,
    confusionRows: Int32Array.from(order),
    inertia: km.inertia,
  };
}
