// One benchmark configuration of @compress/students, in its own process (so peak memory is its
// own): training steps (forward + backward + SGD with momentum and weight decay) on wasm, with the
// kernel engine BENCH_KERNELS (auto, wasm, onnxruntime) on BENCH_THREADS onnxruntime threads.
// Usage: node bench/train_step.mjs '{"student":"resnet18-small","channels":3,"inputSize":32,"batch":256}'
import * as tf from '@tensorflow/tfjs-core';
import { createStudent, SGD, selectBackend, trainStep } from '../dist/index.js';

const cfg = JSON.parse(process.argv[2]);
const minSeconds = Number(process.env.BENCH_MIN_SECONDS ?? 15);
await selectBackend({
  backend: process.env.BENCH_BACKEND ?? 'wasm',
  kernels: process.env.BENCH_KERNELS ?? 'auto',
  threads: Number(process.env.BENCH_THREADS ?? 1),
  log: () => {},
});
const student = createStudent(cfg.student, { channels: cfg.channels, inputSize: cfg.inputSize, seed: 0 });
const optimizer = new SGD({ lr: 0.01, momentum: 0.9, weightDecay: 1e-4 });
const x = tf.randomUniform([cfg.batch, cfg.inputSize, cfg.inputSize, cfg.channels], 0, 1, 'float32', 1);
// the same loss on both sides: mean of squared features
const loss = () => tf.mean(tf.square(student.features(x)));
trainStep(student, loss, { optimizer }); // warm-up: operator caches, allocations
let steps = 0;
const t0 = performance.now();
do {
  trainStep(student, loss, { optimizer });
  steps++;
} while (performance.now() - t0 < minSeconds * 1000);
const seconds = (performance.now() - t0) / 1000;
const out = {
  steps,
  stepMs: (seconds * 1000) / steps,
  imagesPerSec: (steps * cfg.batch) / seconds,
  peakRssMB: process.resourceUsage().maxRSS / 1024,
};
process.stdout.write(`${JSON.stringify(out)}\n`);
