import { knnSearch } from '@compress/cluster';
import { CompressError, type FeatureMatrix, l2NormalizeRows } from '@compress/core';
import { assertEveryClassPresent, checkLabels, countClasses } from './labels.js';

/** How the k nearest neighbours vote. */
export type KnnVote = 'majority' | 'weighted';

export interface KnnOptions {
  /**
   * Neighbours that vote. @default 1 — the paper reports 1-NN; 20 (or 200) with the weighted vote
   * is what other self-supervised papers report.
   */
  k?: number;
  /**
   * `majority`: one vote per neighbour (the paper's code); `weighted`: neighbour j adds
   * exp(sim_j / temperature) (Wu et al. 2018, DINO). @default 'majority'
   */
  vote?: KnnVote;
  /** Temperature of the weighted vote. @default 0.07 — Wu et al. 2018. */
  temperature?: number;
  /** Number of classes. @default 1 + the largest label */
  numClasses?: number;
}

export interface KnnResult {
  k: number;
  vote: KnnVote;
  /** Top-1 accuracy in [0, 1]. */
  top1: number;
  /** Top-5 accuracy in [0, 1] (by vote score; equals top1 when k = 1). */
  top5: number;
  /** Predicted class of every query. */
  predictions: Int32Array;
  /** Number of queries whose majority vote was tied (broken by the best-ranked neighbour). */
  ties: number;
}

/**
 * Votes of the k nearest neighbours, the protocol the paper evaluates with (1-NN) and the weighted
 * vote other libraries report. `neighbors`/`similarities` are queries × k, best first.
 *
 * Majority ties are broken deterministically: among the tied labels, the one whose best-ranked
 * neighbour comes first wins (the paper's code breaks them at random).
 */
export function voteNeighbors(
  neighbors: Int32Array,
  similarities: Float32Array,
  k: number,
  trainLabels: Int32Array,
  numClasses: number,
  vote: KnnVote = 'majority',
  temperature = 0.07,
): { scores: Float64Array; predictions: Int32Array; tie: Uint8Array } {
  const queries = neighbors.length / k;
  const scores = new Float64Array(queries * numClasses);
  const predictions = new Int32Array(queries);
  const tie = new Uint8Array(queries);
  const firstRank = new Int32Array(numClasses);
  for (let q = 0; q < queries; q++) {
    const s = q * numClasses;
    firstRank.fill(k);
    for (let j = 0; j < k; j++) {
      const label = trainLabels[neighbors[q * k + j]!]!;
      scores[s + label]! += vote === 'majority' ? 1 : Math.exp(similarities[q * k + j]! / temperature);
      if (firstRank[label] === k) firstRank[label] = j;
    }
    let best = 0;
    for (let c = 1; c < numClasses; c++) {
      const d = scores[s + c]! - scores[s + best]!;
      if (d > 0 || (d === 0 && firstRank[c]! < firstRank[best]!)) best = c;
    }
    let tied = 0;
    for (let c = 0; c < numClasses; c++) if (scores[s + c] === scores[s + best]) tied++;
    tie[q] = tied > 1 ? 1 : 0;
    predictions[q] = best;
  }
  return { scores, predictions, tie };
}

/**
 * k-NN classification accuracy of frozen features: rows are L2-normalised, similarity is the
 * cosine, every test row is classified by the vote of its k most similar train rows.
 */
export async function knnAccuracy(
  train: FeatureMatrix,
  trainLabels: ArrayLike<number>,
  test: FeatureMatrix,
  testLabels: ArrayLike<number>,
  options: KnnOptions = {},
): Promise<KnnResult> {
  const k = options.k ?? 1;
  const vote = options.vote ?? 'majority';
  const temperature = options.temperature ?? 0.07;
  const yTrain = checkLabels(trainLabels, train, 'train', options.numClasses);
  const yTest = checkLabels(testLabels, test, 'test', options.numClasses);
  if (train.dim !== test.dim) {
    throw new CompressError(
      'SHAPE_MISMATCH',
      `knnAccuracy: train features have dim ${train.dim}, test features ${test.dim}; expected the same`,
      { input: 'test' },
    );
  }
  if (!Number.isInteger(k) || k < 1 || k > train.rows) {
    throw new CompressError(
      'INVALID_ARGUMENT',
      `knnAccuracy: k must be an integer in [1, ${train.rows}], got ${k}`,
      {
        input: 'k',
      },
    );
  }
  if (!(temperature > 0)) {
    throw new CompressError('INVALID_ARGUMENT', `knnAccuracy: temperature must be > 0, got ${temperature}`, {
      input: 'temperature',
    });
  }
  const numClasses = options.numClasses ?? countClasses(yTrain, yTest);
  assertEveryClassPresent(yTrain, numClasses, 'knnAccuracy');
  const { indices, scores } = await knnSearch(l2NormalizeRows(train), l2NormalizeRows(test), k, {
    metric: 'ip',
  });
  return scoreNeighbors(indices, scores, k, yTrain, yTest, numClasses, vote, temperature);
}

/**
 * {@link knnAccuracy} from neighbours found elsewhere (e.g. the merged top-k of a base searched in
 * shards): `neighbors.indices`/`scores` are queries × `neighbors.k`, best first, cosine
 * similarities; the first `options.k` of each row vote. The same numbers as `knnAccuracy` when the
 * neighbours are the same.
 */
export function knnAccuracyOfNeighbors(
  neighbors: { indices: Int32Array; scores: Float32Array; k: number },
  trainLabels: ArrayLike<number>,
  testLabels: ArrayLike<number>,
  options: KnnOptions = {},
): KnnResult {
  const k = options.k ?? 1;
  const vote = options.vote ?? 'majority';
  const temperature = options.temperature ?? 0.07;
  const queries = testLabels.length;
  if (
    neighbors.indices.length !== queries * neighbors.k ||
    neighbors.scores.length !== queries * neighbors.k
  ) {
    throw new CompressError(
      'SHAPE_MISMATCH',
      `knnAccuracyOfNeighbors: ${queries} test labels, neighbour lists of ${neighbors.indices.length} entries (${neighbors.k} per query); expected ${queries} × ${neighbors.k}`,
      { input: 'neighbors' },
    );
  }
  if (!Number.isInteger(k) || k < 1 || k > neighbors.k) {
    throw new CompressError(
      'INVALID_ARGUMENT',
      `knnAccuracyOfNeighbors: k must be an integer in [1, ${neighbors.k}], got ${k}`,
      { input: 'k' },
    );
  }
  const yTrain = Int32Array.from(trainLabels);
  const yTest = Int32Array.from(testLabels);
  const numClasses = options.numClasses ?? countClasses(yTrain, yTest);
  assertEveryClassPresent(yTrain, numClasses, 'knnAccuracyOfNeighbors');
  let indices = neighbors.indices;
  let scores = neighbors.scores;
  if (k < neighbors.k) {
    indices = new Int32Array(queries * k);
    scores = new Float32Array(queries * k);
    for (let q = 0; q < queries; q++) {
      indices.set(neighbors.indices.subarray(q * neighbors.k, q * neighbors.k + k), q * k);
      scores.set(neighbors.scores.subarray(q * neighbors.k, q * neighbors.k + k), q * k);
    }
  }
  for (const i of indices) {
    if (i < 0 || i >= yTrain.length) {
      throw new CompressError(
        'INVALID_ARGUMENT',
        `knnAccuracyOfNeighbors: neighbour index ${i} is outside the ${yTrain.length} train labels`,
        { input: 'neighbors' },
      );
    }
  }
  return scoreNeighbors(indices, scores, k, yTrain, yTest, numClasses, vote, temperature);
}

function scoreNeighbors(
  indices: Int32Array,
  scores: Float32Array,
  k: number,
  yTrain: Int32Array,
  yTest: Int32Array,
  numClasses: number,
  vote: KnnVote,
  temperature: number,
): KnnResult {
  const voted = voteNeighbors(indices, scores, k, yTrain, numClasses, vote, temperature);
  let correct1 = 0;
  let correct5 = 0;
  let ties = 0;
  const queries = yTest.length;
  for (let q = 0; q < queries; q++) {
    const truth = yTest[q]!;
    if (voted.predictions[q] === truth) correct1++;
    ties += voted.tie[q]!;
    // Top-5: the true class is among the five best scores (a zero score never counts).
    const s = q * numClasses;
    const own = voted.scores[s + truth]!;
    if (own > 0) {
      let better = 0;
      for (let c = 0; c < numClasses; c++) if (voted.scores[s + c]! > own) better++;
      if (better < 5) correct5++;
    }
  }
  return {
    k,
    vote,
    top1: correct1 / queries,
    top5: k === 1 ? correct1 / queries : correct5 / queries,
    predictions: voted.predictions,
    ties,
  };
}
