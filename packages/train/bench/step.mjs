#!/usr/bin/env node
// Benchmark of @compress/train: a whole training step of the fashion-mnist preset — loader,
// teacher, student, loss, update — in images/s, on the onnxruntime step engine next to PyTorch's
// official CompRess loop (bench/official_step.py) with the same students, teacher, data pipeline
// and settings, in the same run, at 1 and 2 threads; the student's own step with the teacher's
// features given; where a step's time goes; the step's GFLOP/s against this CPU's matrix-product
// rate. Prints tables and writes bench-results/train.json at the repository root.
// Run it alone on the machine: flock /tmp/compress-bench.lock pnpm --filter @compress/train bench
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { createNativeSession, encodeOnnxModel, requireOnnxRuntimeNative } from '@compress/onnx';

const here = dirname(new URL(import.meta.url).pathname);
const root = join(here, '..', '..', '..');
const python = process.env.COMPRESS_PYTHON ?? '/usr/bin/python3';
const only = process.env.BENCH_ONLY;

function run(cmd, args) {
  try {
    const out = execFileSync(cmd, args, {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      maxBuffer: 1 << 26,
    });
    return JSON.parse(out.trim().split('\n').at(-1));
  } catch (error) {
    const why = String(error.stderr ?? error.message)
      .trim()
      .split('\n')
      .at(-1);
    console.error(`bench: ${cmd} ${args.join(' ')} failed: ${why}`);
    return null;
  }
}
const ours = (cfg, engine, threads, teacher = 'online') =>
  run(process.execPath, [
    join(here, 'step-one.mjs'),
    JSON.stringify({ ...cfg, engine, threads, teacherThreads: threads, teacher }),
  ]);
const torch = (cfg, threads, teacher = 'online') =>
  run(python, [join(here, 'official_step.py'), JSON.stringify({ ...cfg, teacher }), String(threads)]);

/** onnxruntime's float32 matrix-product rate here (2048³), the practical peak of the machine. */
function gemmGflops(threads) {
  const ort = requireOnnxRuntimeNative({ user: 'bench', otherwise: '' });
  const n = 2048;
  const model = encodeOnnxModel({
    name: 'gemm',
    opset: 17,
    nodes: [{ opType: 'MatMul', inputs: ['a', 'b'], outputs: ['c'] }],
    inputs: [
      { name: 'a', shape: [n, n] },
      { name: 'b', shape: [n, n] },
    ],
    outputs: [{ name: 'c', shape: [n, n] }],
  });
  const s = createNativeSession(ort, model, { threads });
  const t = new ort.Tensor('float32', new Float32Array(n * n).fill(0.5), [n, n]);
  s.run({ a: t, b: t }, { c: null }, {});
  const t0 = performance.now();
  let k = 0;
  while (performance.now() - t0 < 3000) {
    s.run({ a: t, b: t }, { c: null }, {});
    k++;
  }
  return (2 * n ** 3 * k) / ((performance.now() - t0) / 1000) / 1e9;
}

const students = [
  { student: 'alexnet-small', width: 0.25, label: 'preset student alexnet-small ×0.25' },
  { student: 'resnet18-small', width: 1, label: 'resnet18-small' },
  { student: 'mobilenetv2-small', width: 1, label: 'mobilenetv2-small' },
];
const f = (x, d = 1) => (x === null || x === undefined ? 'missing' : x.toFixed(d));
const ratio = (a, b) => (a && b ? a.imagesPerSec / b.imagesPerSec : null);
const rows = [];
const breakdown = [];
const peak = { 1: gemmGflops(1), 2: gemmGflops(2) };
console.log(`onnxruntime MatMul 2048³: ${f(peak[1])} GFLOP/s (1 thread), ${f(peak[2])} (2 threads)`);
console.log(
  'step (B256, momentum)                 | threads | ours img/s | PyTorch img/s | ratio | ours MB | PyTorch MB',
);
const row = (name, a, b, unit = 'images/s') => ({
  name,
  unit,
  ours: a?.imagesPerSec ?? null,
  reference: b?.imagesPerSec ?? null,
  referenceName: 'PyTorch, the official train_student.py loop, same threads',
  ratio: ratio(a, b),
  higherIsBetter: true,
});
for (const cfg of students) {
  if (only && !cfg.label.includes(only)) continue;
  for (const threads of [1, 2]) {
    const a = ours(cfg, 'onnxruntime', threads);
    const b = torch(cfg, threads);
    console.log(
      `${cfg.label.padEnd(37)} | ${String(threads).padStart(7)} | ${f(a?.imagesPerSec).padStart(10)} | ${f(b?.imagesPerSec).padStart(13)} | ${f(ratio(a, b), 2).padStart(5)} | ${f(a?.peakRssMB, 0).padStart(7)} | ${f(b?.peakRssMB, 0).padStart(10)}`,
    );
    rows.push(
      row(`full step, teacher online: ${cfg.label}, ${threads} thread${threads > 1 ? 's' : ''}`, a, b),
      {
        name: `peak memory: ${cfg.label}, ${threads} thread${threads > 1 ? 's' : ''}`,
        unit: 'MB (max RSS)',
        ours: a?.peakRssMB ?? null,
        reference: b?.peakRssMB ?? null,
        referenceName: 'PyTorch',
        ratio: a && b ? b.peakRssMB / a.peakRssMB : null,
        higherIsBetter: false,
      },
    );
    if (a && b) breakdown.push({ label: `${cfg.label}, ${threads}t`, ours: a, torch: b, threads });
    if (cfg.student === 'alexnet-small' && threads === 2) {
      const c = ours(cfg, 'onnxruntime', 2, 'cached');
      const d = torch(cfg, 2, 'cached');
      console.log(
        `${`${cfg.label} (teacher given)`.padEnd(37)} | ${'2'.padStart(7)} | ${f(c?.imagesPerSec).padStart(10)} | ${f(d?.imagesPerSec).padStart(13)} | ${f(ratio(c, d), 2).padStart(5)} |`,
      );
      rows.push(row(`the student's own step (teacher features given): ${cfg.label}, 2 threads`, c, d));
      const t = ours(cfg, 'tfjs', 2);
      rows.push({ ...row(`full step on the tfjs engine: ${cfg.label}, 2 threads`, t, b) });
      console.log(
        `${`${cfg.label} (tfjs engine)`.padEnd(37)} | ${'2'.padStart(7)} | ${f(t?.imagesPerSec).padStart(10)} | ${f(b?.imagesPerSec).padStart(13)} | ${f(ratio(t, b), 2).padStart(5)} |`,
      );
      if (c && d) breakdown.push({ label: `${cfg.label}, teacher given, 2t`, ours: c, torch: d, threads: 2 });
    }
  }
}

// where a step's time goes (ms per step): ours from the engine's timers and a profile of its graph
// (shares applied to the graph's measured time), PyTorch's from timers between the loop's phases
const table = [
  '| step | side | total | loader wait | teacher | key forward | forward | loss | backward | update + queue | GFLOP/s (share of MatMul peak) |',
  '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
];
for (const { label, ours: a, torch: b, threads } of breakdown) {
  const g = a.graphMs;
  const p = a.parts ?? {};
  const part = (k) => (p[k] ?? 0) * g;
  const rate = a.graphGflop ? a.graphGflop / (g / 1000) : null;
  table.push(
    `| ${label} | compress | ${f(a.stepMs)} | ${f(a.otherMs)} | ${f(a.teacherMs)} | ${f(part('key'))} | ${f(part('forward') + part('input'))} | ${f(part('objective'))} | ${f(part('backward'))} | ${f(part('update') + part('other') + (a.engineMs - g))} | ${rate ? `${f(rate)} (${f((100 * rate) / peak[threads], 0)}%)` : ''} |`,
  );
  const q = b.partsMs;
  table.push(
    `| ${label} | PyTorch | ${f(b.stepMs)} | ${f(q.loader)} | ${f(q.teacher)} | ${f(q.key)} | ${f(q.forward)} | ${f(q.loss)} | ${f(q.backward)} | ${f(q.update)} | |`,
  );
}
console.log(table.join('\n'));
const markdown = [
  `Where a step's time goes (ms per step of 256 images; compress's graph parts from an onnxruntime profile, shares applied to the measured graph time; its GFLOP/s counts the step graph's convolutions and matrix products, padded channels included, against onnxruntime's MatMul 2048³ rate here: ${f(peak[1])} GFLOP/s at 1 thread, ${f(peak[2])} at 2):`,
  '',
  ...table,
];
const dir = join(root, 'bench-results');
mkdirSync(dir, { recursive: true });
writeFileSync(
  join(dir, 'train.json'),
  `${JSON.stringify(
    {
      package: '@compress/train',
      rows,
      markdown,
      machine: {
        cpu: cpus()[0]?.model ?? 'unknown',
        cores: cpus().length,
        memoryGiB: Math.round(totalmem() / 2 ** 30),
        node: process.version,
        loadAverage: loadavg()[0].toFixed(2),
      },
    },
    null,
    2,
  )}\n`,
);
console.log(`bench: wrote ${join(dir, 'train.json')}`);
