// Releases the CompRess students of a full Fashion-MNIST reproduction into @compress/students:
//
//   node tooling/release-students/release-students.mjs --run runs/full
//
// For each of momentum, one-queue and no-momentum: exports the run's final checkpoint as ONNX
// (NHWC pixels in [0, 1], normalisation inside, BatchNorm folded), checks that onnxruntime's
// features of the file equal the checkpoint's own (TensorFlow.js) features, records the values a
// copy is checked against (the first test images' features, 1-NN of test against training images)
// and writes packages/students/pretrained/index.json and one model card per student. Files are
// written atomically; a refused run (a missing run piece, a student over 5 MiB, a mismatch)
// changes nothing.
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { knnSearch } from '@compress/cluster';
import { CompressError, writeFileAtomic } from '@compress/core';
import { fashionMnist, loadBatch } from '@compress/data';
import { exportOnnx, loadStudent, preprocess, selectBackend } from '@compress/students';
import { OnnxTeacher } from '@compress/teacher';
import * as tf from '@tensorflow/tfjs-core';

const methods = ['momentum', 'one-queue', 'no-momentum'];
const MAX_BYTES = 5 * 1024 * 1024;
const CHECK_IMAGES = 8;
const KNN = { train: 5000, test: 500 };

const { values } = parseArgs({
  options: { run: { type: 'string' }, out: { type: 'string' } },
});
if (!values.run)
  throw new CompressError('CONFIG', 'release-students: --run <reproduction directory> is required');
const run = resolve(values.run);
const out = resolve(values.out ?? new URL('../../packages/students/pretrained', import.meta.url).pathname);

const readJson = async (file) => {
  try {
    return JSON.parse(await readFile(file, 'utf8'));
  } catch (error) {
    throw new CompressError('NOT_FOUND', `release-students: cannot read ${file}: ${error.message}`, {
      input: file,
    });
  }
};

const table = await readJson(join(run, 'results', 'table.json'));
if (table.preset !== 'fashion-mnist' || table.budget !== 'full') {
  throw new CompressError(
    'MISMATCH',
    `release-students: ${run} is a ${table.preset}/${table.budget} reproduction; only fashion-mnist/full students are released`,
    { input: run },
  );
}
/** A method's numbers: its table row (cluster alignment's mean ± sd) and its evaluation's 20-NN. */
const numbersOf = async (method) => {
  const r = table.rows.find((x) => x.method === method);
  if (!r) {
    throw new CompressError('NOT_FOUND', `release-students: no "${method}" row in ${run}/results/table.json`);
  }
  const { summary } = await readJson(join(run, 'eval', method, 'summary.json'));
  const { method: _, steps: __, ...numbers } = r;
  return { ...numbers, knn20: summary.knn20 };
};
const teacherNumbers = await numbersOf('teacher');
const randomInitNumbers = await numbersOf('random-init');

await selectBackend({ log: () => {} });
const [train, test] = await Promise.all([fashionMnist({ split: 'train' }), fashionMnist({ split: 'test' })]);
/** The first n images of a split, as the loader batches them (NHWC, [0, 1]), with their labels. */
const firstImages = (dataset, n) =>
  loadBatch(
    dataset,
    null,
    0,
    0,
    0,
    Int32Array.from({ length: n }, (_, i) => i),
    1,
  );
const checkImages = await firstImages(test, CHECK_IMAGES);
const knnTrain = await firstImages(train, KNN.train);
const knnTest = await firstImages(test, KNN.test);

const cards = [];
const files = [];
for (const method of methods) {
  const name = `fashion-mnist/${method}`;
  const result = await readJson(join(run, 'runs', method, 'train-result.json'));
  const config = await readJson(join(run, 'runs', method, 'config.json'));
  const student = await loadStudent(result.checkpoint);
  const onnx = join(tmpdir(), `release-${process.pid}-${method}.onnx`);
  await exportOnnx(student, onnx, { layout: 'NHWC', normalization: 'inside' });
  const bytes = await readFile(onnx);
  if (bytes.length > MAX_BYTES) {
    throw new CompressError(
      'INVALID_ARGUMENT',
      `release-students: ${name} is ${bytes.length} bytes, over 5 MiB`,
    );
  }
  const model = await OnnxTeacher.create(bytes, {
    inputLayout: 'NHWC',
    normalize: 'none',
    providers: ['cpu'],
  });
  const features = (await model.embed(checkImages)).data;
  // the checkpoint's own features: the file must compute the same
  const x = preprocess(student, checkImages);
  const own = student.features(x);
  const ownData = await own.data();
  tf.dispose([x, own]);
  let scale = 0;
  let diff = 0;
  for (let i = 0; i < features.length; i++) {
    scale = Math.max(scale, Math.abs(ownData[i]));
    diff = Math.max(diff, Math.abs(ownData[i] - features[i]));
  }
  if (!(diff <= 1e-4 * scale)) {
    throw new CompressError(
      'MISMATCH',
      `release-students: ${name}: ONNX features differ from the checkpoint's by ${diff} (scale ${scale})`,
    );
  }
  const { indices } = await knnSearch(await model.embed(knnTrain), await model.embed(knnTest), 1);
  let correct = 0;
  for (let q = 0; q < KNN.test; q++) correct += knnTrain.labels[indices[q]] === knnTest.labels[q] ? 1 : 0;
  await model.dispose();
  const { spec } = student;
  student.dispose();
  const checkpointDate = (await stat(result.checkpoint)).mtime.toISOString().slice(0, 10);
  const file = `${name}.onnx`;
  const { ran, ...recipe } = config;
  cards.push({
    name,
    file,
    sha256: createHash('sha256').update(bytes).digest('hex'),
    bytes: bytes.length,
    arch: spec.name,
    width: config.student.width,
    dim: spec.featureDim,
    input: {
      layout: 'NHWC',
      size: spec.inputSize,
      channels: spec.channels,
      mean: [...spec.mean],
      std: [...spec.std],
    },
    recipe,
    numbers: { student: await numbersOf(method), teacher: teacherNumbers, randomInit: randomInitNumbers },
    trained: {
      date: checkpointDate,
      cpu: cpus()[0]?.model ?? 'unknown',
      engine: ran?.engine ?? 'unknown',
      trainSeconds: Math.round(result.seconds),
    },
    check: {
      images: CHECK_IMAGES,
      features: Array.from(features, (v) => Number(v.toPrecision(7))),
      knn: { ...KNN, accuracy: correct / KNN.test },
    },
  });
  files.push([join(out, file), bytes]);
  console.log(
    `${name}: ${spec.name} ×${config.student.width}, ${spec.featureDim}-d, ${(bytes.length / 1024).toFixed(0)} KiB; 1-NN (full splits) ${cards.at(-1).numbers.student.nn}; check 1-NN ${((100 * correct) / KNN.test).toFixed(1)} on ${KNN.test}/${KNN.train}; |onnx − tfjs| ≤ ${diff.toExponential(1)}`,
  );
}

const pct = (v) => (v === undefined ? '–' : v.toFixed(2));
const card = (c) => `# Model card: \`${c.name}\`

A student released by compress: **${c.arch} ×${c.width}** (${c.dim}-d features) compressed from the built-in
self-supervised Fashion-MNIST teacher with CompRess (\`${c.recipe.method}\`) by the full reproduction
(\`compress-ssl reproduce --preset fashion-mnist --budget full\`), exported to ONNX with its input
normalisation inside.

| | |
| --- | --- |
| File | \`${c.file.split('/').pop()}\`, ${(c.bytes / 1024).toFixed(0)} KiB, SHA-256 \`${c.sha256}\` |
| Input | float32 NHWC \`[batch, ${c.input.size}, ${c.input.size}, ${c.input.channels}]\`, values in [0, 1] |
| Output | float32 \`[batch, ${c.dim}]\` features |
| Normalisation | inside the model: (x − ${c.input.mean.join(', ')}) / ${c.input.std.join(', ')} |
| Use | \`loadPretrained('${c.name}')\` (@compress/students), or the file as a teacher with \`normalize: 'none'\` |

## Recipe

${c.recipe.optim.epochs} epochs of the 60 000 training images (labels never read), batch ${c.recipe.optim.batchSize}, SGD lr ${c.recipe.optim.lr}
(×${c.recipe.optim.gamma} at epochs ${c.recipe.optim.milestones.join(' and ')}), momentum ${c.recipe.optim.momentum}, weight decay ${c.recipe.optim.weightDecay};
queue K = ${c.recipe.loss.queueSize}, temperature T = ${c.recipe.loss.temperature}${c.recipe.method === 'momentum' ? `, key momentum ${c.recipe.loss.keyMomentum}` : ''};
RandomResizedCrop(${c.recipe.augment.size}, scale ${c.recipe.augment.scale.join('–')}) and horizontal flip; seed ${c.recipe.seed}.
Trained on ${c.trained.date} on ${c.trained.cpu} (${c.trained.engine} engine, ${(c.trained.trainSeconds / 60).toFixed(1)} minutes).
The whole config is in \`index.json\` (\`recipe\`).

## Evaluation (Fashion-MNIST test split, features of the full training split)

| features | 1-NN | 20-NN | linear | cluster alignment (5 k-means seeds) |
| --- | ---: | ---: | ---: | ---: |
| this student | ${pct(c.numbers.student.nn)} | ${pct(c.numbers.student.knn20)} | ${pct(c.numbers.student.linear)} | ${pct(c.numbers.student.ca)} ± ${pct(c.numbers.student.caSd)} |
| its teacher | ${pct(c.numbers.teacher.nn)} | ${pct(c.numbers.teacher.knn20)} | ${pct(c.numbers.teacher.linear)} | ${pct(c.numbers.teacher.ca)} ± ${pct(c.numbers.teacher.caSd)} |
| the same network at random init | ${pct(c.numbers.randomInit.nn)} | ${pct(c.numbers.randomInit.knn20)} | ${pct(c.numbers.randomInit.linear)} | ${pct(c.numbers.randomInit.ca)} ± ${pct(c.numbers.randomInit.caSd)} |

Protocols as in the paper: cosine 1-NN and 20-NN, a linear probe on frozen features (${c.recipe.eval.linearEpochs} epochs),
k-means with 10 clusters matched to the classes by the Hungarian algorithm. See
docs/reproduction.md for the whole table.

## Limits

28 × 28 grayscale garments only; the student has seen no other data. Its features are for
retrieval, clustering and linear probes, not calibrated class scores.
`;

for (const [file, bytes] of files) await writeFileAtomic(file, bytes);
for (const c of cards) await writeFileAtomic(join(out, c.file.replace(/\.onnx$/, '.md')), card(c));
await writeFileAtomic(join(out, 'index.json'), `${JSON.stringify(cards, null, 2)}\n`);
console.log(`wrote ${cards.length} students and index.json to ${out}; the README's table:`);
for (const c of cards) {
  const n = c.numbers.student;
  console.log(
    `| \`${c.name}\` | ${c.arch} ×${c.width}, ${c.dim}-d | ${pct(n.nn)} | ${pct(n.linear)} | ${pct(n.ca)} ± ${pct(n.caSd)} | [${c.file.replace(/\.onnx$/, '.md')}](pretrained/${c.file.replace(/\.onnx$/, '.md')}) |`,
  );
}
