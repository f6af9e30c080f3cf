// One configuration of the training-step benchmark, in its own process (so peak memory is its own):
// the fashion-mnist preset's training loop through @compress/train's Trainer — the loader with its
// augmentation on a worker, the teacher, the student's step on the chosen engine — for a fixed time,
// with where a step's time goes. Prints one JSON line.
// Usage: node bench/step-one.mjs '{"student":"alexnet-small","width":0.25,"engine":"onnxruntime","threads":2,"teacher":"online"}'
import { readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { compose, fashionMnist, horizontalFlip, randomResizedCrop } from '@compress/data';
import { createStudent } from '@compress/students';
import { createFashionMnistTeacher } from '@compress/teacher';
import { OnnxEngine, paperLoss, Trainer } from '../dist/index.js';
import { summarize } from './profile.mjs';

const cfg = JSON.parse(process.argv[2]);
const minSeconds = Number(process.env.BENCH_MIN_SECONDS ?? 20);
const warmSteps = 3;
const batch = cfg.batch ?? 256;
const dataset = await fashionMnist({ split: 'train' });
const online = await createFashionMnistTeacher({ providers: ['cpu'], threads: cfg.teacherThreads ?? 1 });

// teacher time, measured around every answer
let teacherMs = 0;
let features = null;
const timed = {
  dim: online.dim,
  fingerprint: 'bench',
  async embed(b) {
    const t0 = performance.now();
    const f = await online.embed(b);
    teacherMs += performance.now() - t0;
    return f;
  },
  dispose: () => online.dispose(),
};
// a cached teacher: its answers looked up by image (computed once, before timing starts)
const cached = {
  dim: online.dim,
  fingerprint: 'bench-cached',
  async embed(b) {
    const t0 = performance.now();
    const rows = b.indices.length;
    const data = new Float32Array(rows * online.dim);
    for (let i = 0; i < rows; i++) {
      const r = b.indices[i] % features.rows;
      data.set(features.data.subarray(r * online.dim, (r + 1) * online.dim), i * online.dim);
    }
    teacherMs += performance.now() - t0;
    return { rows, dim: online.dim, data };
  },
  dispose() {},
};
if (cfg.teacher === 'cached') {
  // real teacher features of 4096 augmented images, reused by index
  const pixels = new Float32Array(4096 * 784);
  for (let i = 0; i < 4096; i++) {
    const { image } = dataset.get(i);
    for (let p = 0; p < 784; p++) pixels[i * 784 + p] = image.data[p] / 255;
  }
  features = await online.embed({
    images: pixels,
    shape: [4096, 28, 28, 1],
    indices: Int32Array.from({ length: 4096 }, (_, i) => i),
  });
}

const trainer = await Trainer.create({
  dataset,
  teacher: cfg.teacher === 'cached' ? cached : timed,
  method: cfg.method ?? 'momentum',
  student: { arch: cfg.student, width: cfg.width ?? 1 },
  loss: { temperature: 0.04, queueSize: 8192, keyMomentum: 0.999 },
  optim: { batchSize: batch, epochs: 30, lr: 0.01, milestones: [20, 26], gamma: 0.2 },
  transform: compose([
    randomResizedCrop(28, { scale: [0.2, 1], ratio: [3 / 4, 4 / 3] }),
    horizontalFlip(0.5),
  ]),
  workers: cfg.workers ?? 1,
  engine: cfg.engine,
  threads: cfg.threads,
  seed: 0,
});
const engine = trainer.engine;
const onnx = engine.name === 'onnxruntime';
// the step's own time (the engine), and within it onnxruntime's run
let engineMs = 0;
const step = engine.step.bind(engine);
engine.step = (...args) => {
  const t0 = performance.now();
  try {
    return step(...args);
  } finally {
    engineMs += performance.now() - t0;
  }
};
for (let i = 0; i < warmSteps; i++) await trainer.step();
teacherMs = 0;
engineMs = 0;
const runBefore = onnx ? engine.runSeconds : 0;
let steps = 0;
const t0 = performance.now();
do {
  await trainer.step();
  steps++;
} while (performance.now() - t0 < minSeconds * 1000);
const seconds = (performance.now() - t0) / 1000;
const runMs = onnx ? (engine.runSeconds - runBefore) * 1000 : null;
// the training's peak memory, before the profiled engine below adds its own
const peakRssMB = process.resourceUsage().maxRSS / 1024;

// where onnxruntime's time goes, by part of the graph: a profile of a few more steps on an engine
// of its own (profiling slows every node a little; its shares are applied to the measured time)
let parts = null;
let gflop = null;
if (onnx) {
  const profiled = OnnxEngine.create(
    createStudent(cfg.student, { seed: 0, channels: 1, inputSize: 28, width: cfg.width ?? 1 }),
    {
      method: cfg.method ?? 'momentum',
      optim: { lr: 0.01, momentum: 0.9, weightDecay: 1e-4 },
      seed: 0,
      loss: { ...paperLoss, queueSize: 8192 },
      batchSize: batch,
      teacherDim: online.dim,
      trainSize: 60000,
      numClasses: 10,
      warn: () => {},
      threads: cfg.threads,
      profile: `${tmpdir()}/compress-step-profile-${process.pid}`,
    },
  );
  const pixels = new Float32Array(batch * 784);
  for (let i = 0; i < batch; i++) {
    const { image } = dataset.get(i);
    for (let p = 0; p < 784; p++) pixels[i * 784 + p] = image.data[p] / 255;
  }
  const b = {
    images: pixels,
    shape: [batch, 28, 28, 1],
    indices: Int32Array.from({ length: batch }, (_, i) => i),
  };
  const f = await online.embed(b);
  for (let i = 0; i < 5; i++) profiled.step(b, f, 0.01);
  const file = profiled.endProfiling();
  ({ parts, gflop } = summarize(JSON.parse(readFileSync(file, 'utf8'))));
  rmSync(file, { force: true });
  profiled.dispose();
}
await trainer.close();
trainer.student.dispose();
await timed.dispose();
const ms = (x) => (x === null ? null : x / steps);
const out = {
  engine: engine.name,
  steps,
  stepMs: (seconds * 1000) / steps,
  imagesPerSec: (steps * batch) / seconds,
  teacherMs: ms(teacherMs),
  engineMs: ms(engineMs),
  graphMs: ms(runMs),
  otherMs: ms(seconds * 1000 - teacherMs - engineMs),
  peakRssMB,
  /** Shares of the step graph's node time by part (input, key, forward, objective, backward, update). */
  parts,
  /** Floating-point operations of one step graph run (convolutions and matrix products), in GFLOP. */
  graphGflop: gflop,
};
process.stdout.write(`${JSON.stringify(out)}\n`);
