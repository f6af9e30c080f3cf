// One configuration of the loss benchmark on the tfjs wasm backend, in its own process (so peak
// memory is this configuration's): prints one JSON line with per-step times and memory.
// usage: node bench/step.mjs K Dt Ds B reps [engine] [threads]
import '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import { CompressLoss } from '../dist/index.js';

const [K, Dt, Ds, B, reps] = process.argv.slice(2, 7).map(Number);
const engine = process.argv[7] ?? 'auto';
const threads = Number(process.argv[8] ?? 0);
await tf.setBackend('wasm');
await tf.ready();
const loss = new CompressLoss({
  variant: 'no-momentum',
  teacherDim: Dt,
  studentDim: Ds,
  queueSize: K,
  batchSize: B,
  temperature: 0.04,
  engine,
  threads,
});
const teacher = tf.randomNormal([B, Dt]);
const teacherFeats = { rows: B, dim: Dt, data: teacher.dataSync() };
const student = tf.variable(tf.randomNormal([B, Ds]));

function step() {
  const { value, grads } = tf.variableGrads(() => loss.forward(teacherFeats, student), [student]);
  grads[student.name].dataSync();
  loss.update();
  tf.dispose([value, grads[student.name]]);
}

step(); // warm-up (also tiers up the wasm code, and sizes onnxruntime's memory arena)
step();
const ms = [];
const cpuMs = [];
for (let i = 0; i < reps; i++) {
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  step();
  const c = process.cpuUsage(c0);
  ms.push(performance.now() - t0);
  cpuMs.push((c.user + c.system) / 1000);
}
const heap = loss.engineName === 'wasm' ? tf.backend().wasm.HEAPU8.length : 0;
console.log(
  JSON.stringify({
    ms,
    cpuMs,
    engine: loss.engineName,
    wasmHeapBytes: heap,
    maxRssBytes: process.resourceUsage().maxRSS * 1024,
  }),
);
