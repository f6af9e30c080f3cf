// The paper's three evaluations on raw Fashion-MNIST pixels (a seeded subset, a few seconds).
// Run after `pnpm build`: node examples/raw-pixels.mjs [outDir]
import { fashionMnist } from '@compress/data';
import { evaluateFeatures, extractFeatures, rawPixels } from '@compress/eval';
import '@tensorflow/tfjs-backend-cpu';

const subset = (ds, n) => ({
  ...ds,
  length: n,
  name: `${ds.name}[${n}]`,
  get: (i) => ds.get(i),
  classes: ds.classes,
});
const train = subset(await fashionMnist({ split: 'train' }), 5000);
const test = subset(await fashionMnist({ split: 'test' }), 1000);
const pixels = rawPixels([28, 28, 1]);
const a = await extractFeatures(pixels, train);
const b = await extractFeatures(pixels, test);
const report = await evaluateFeatures(a.features, a.labels, b.features, b.labels, {
  name: 'raw pixels',
  classNames: train.classes,
  linear: { epochs: 5, milestones: [3] },
  outDir: process.argv[2], // report.md, report.json, confusion.png, clusters.png, embedding.png
  trainDataset: train,
  scatter: false,
});
console.log(report.summary); // { nn, knn20, linear, ca } in percent
