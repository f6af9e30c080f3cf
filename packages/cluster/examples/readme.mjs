import { kmeans, knnSearch, linearSumAssignment } from '@compress/cluster';
import { Rng } from '@compress/core';

// 3000 points around 5 centres in 64 dimensions (a FeatureMatrix: rows × dim, row-major).
const rng = new Rng(1);
const rows = 3000,
  dim = 64,
  classes = 5;
const centres = rng.fillNormal(new Float32Array(classes * dim), 0, 4);
const labels = Int32Array.from({ length: rows }, (_, i) => i % classes);
const data = new Float32Array(rows * dim);
for (let i = 0; i < rows; i++)
  for (let j = 0; j < dim; j++) data[i * dim + j] = centres[labels[i] * dim + j] + rng.normal();
const x = { rows, dim, data };

// k-means: 5 clusters, 20 Lloyd iterations, k-means++ seeding.
const { centroids, assignments, inertia, iterationsRun } = await kmeans(x, classes, { seed: 0 });
console.log(`k-means: inertia ${inertia.toFixed(0)} after ${iterationsRun} iterations`);

// Cluster alignment as in the paper: Hungarian matching of clusters to classes that maximises
// the summed precision |cluster ∩ class| / |cluster|.
const counts = new Float64Array(classes * classes);
const sizes = new Float64Array(classes);
for (let i = 0; i < rows; i++) {
  counts[assignments[i] * classes + labels[i]]++;
  sizes[assignments[i]]++;
}
const score = counts.map((c, at) => c / Math.max(1, sizes[Math.floor(at / classes)]));
const { rowIndices, colIndices } = linearSumAssignment(score, classes, classes, { maximize: true });
let correct = 0;
for (let t = 0; t < rowIndices.length; t++) correct += counts[rowIndices[t] * classes + colIndices[t]];
console.log(`cluster alignment accuracy: ${(correct / rows).toFixed(3)}`);

// k-NN: the 20 nearest points (cosine) of the first 100 points, then a 1-NN classifier.
const queries = { rows: 100, dim, data: data.subarray(0, 100 * dim) };
const { indices, scores } = await knnSearch(x, queries, 20, { metric: 'cosine' });
let hits = 0;
for (let q = 0; q < 100; q++) hits += labels[indices[q * 20 + 1]] === labels[q] ? 1 : 0; // [0] is itself
console.log(`1-NN accuracy (excluding self): ${hits / 100}, best score ${scores[0].toFixed(3)}`);
console.log(centroids.rows, 'centroids');
