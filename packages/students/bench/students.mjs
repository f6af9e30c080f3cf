#!/usr/bin/env node
// Benchmark of @compress/students: training steps/s of the students on wasm next to the same
// networks in PyTorch CPU, run in the same invocation. Prints a table and writes
// bench-results/students.json at the repository root. Run it alone on the machine:
//   flock /tmp/compress-bench.lock pnpm --filter @compress/students bench
// Each configuration runs in its own process (so peak memory is its own): with the convolutions on
// onnxruntime at 1 and 2 threads, against PyTorch at the same thread count (the faster of default
// malloc and GLIBC_TUNABLES=glibc.malloc.hugetlb=1), and with every kernel on wasm (1 thread).
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { dirname, join } from 'node:path';

const here = dirname(new URL(import.meta.url).pathname);
const root = join(here, '..', '..', '..');
const python = process.env.COMPRESS_PYTHON ?? '/usr/bin/python3';
const configs = [
  { student: 'resnet18-small', channels: 3, inputSize: 32, batch: 256 },
  { student: 'resnet18-small', channels: 1, inputSize: 28, batch: 256 },
  { student: 'alexnet-small', channels: 1, inputSize: 28, batch: 256 },
  { student: 'mobilenetv2-small', channels: 1, inputSize: 28, batch: 256 },
  { student: 'mobilenetv2', channels: 3, inputSize: 64, batch: 64 },
];
const only = process.env.BENCH_ONLY;

function run(cmd, args, env = {}) {
  try {
    const out = execFileSync(cmd, args, {
      encoding: 'utf8',
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return JSON.parse(out.trim().split('\n').at(-1));
  } catch (error) {
    console.error(
      `bench: ${cmd} ${args.join(' ')} failed: ${String(error.stderr ?? error.message)
        .trim()
        .split('\n')
        .at(-1)}`,
    );
    return null;
  }
}

function torch(cfg, threads) {
  const json = JSON.stringify(cfg);
  const plain = run(python, [join(here, 'train_step.py'), json, String(threads)]);
  const huge = run(python, [join(here, 'train_step.py'), json, String(threads)], {
    GLIBC_TUNABLES: 'glibc.malloc.hugetlb=1',
  });
  const all = [plain, huge].filter(Boolean);
  if (all.length === 0) return null;
  return all.reduce((a, b) => (b.imagesPerSec > a.imagesPerSec ? b : a));
}

const rows = [];
const f = (x) => (x === null || x === undefined ? 'missing' : x >= 100 ? x.toFixed(0) : x.toFixed(2));
const ours = (cfg, kernels, threads) =>
  run(process.execPath, [join(here, 'train_step.mjs'), JSON.stringify(cfg)], {
    BENCH_KERNELS: kernels,
    BENCH_THREADS: String(threads),
  });
const ratio = (a, b) => (a && b ? a.imagesPerSec / b.imagesPerSec : null);
console.log(
  'config                          | ort 1t img/s | torch 1t | ratio | ort 2t img/s | torch 2t | ratio | wasm img/s | ours MB | torch MB',
);
for (const cfg of configs) {
  const asked = `${cfg.student} ${cfg.inputSize}×${cfg.inputSize}×${cfg.channels} B${cfg.batch}`;
  if (only && !asked.includes(only)) continue;
  let o1 = ours(cfg, 'onnxruntime', 1);
  let note = '';
  if (o1 === null && cfg.batch > 64) {
    // the wasm heap is 32-bit (at most 4 GiB): say so and measure at half the batch
    note = ` (B${cfg.batch} does not fit the 4 GiB wasm heap; measured at B${cfg.batch / 2})`;
    cfg.batch /= 2;
    o1 = ours(cfg, 'onnxruntime', 1);
  }
  const o2 = ours(cfg, 'onnxruntime', 2);
  const w1 = ours(cfg, 'wasm', 1);
  const t1 = torch(cfg, 1);
  const t2 = torch(cfg, 2);
  const label = `${cfg.student} ${cfg.inputSize}×${cfg.inputSize}×${cfg.channels} B${cfg.batch}${note}`;
  console.log(
    `${label.padEnd(31)} | ${f(o1?.imagesPerSec).padStart(12)} | ${f(t1?.imagesPerSec).padStart(8)} | ${f(ratio(o1, t1)).padStart(5)} | ${f(o2?.imagesPerSec).padStart(12)} | ${f(t2?.imagesPerSec).padStart(8)} | ${f(ratio(o2, t2)).padStart(5)} | ${f(w1?.imagesPerSec).padStart(10)} | ${f(o1?.peakRssMB).padStart(7)} | ${f(t1?.peakRssMB).padStart(8)}`,
  );
  const row = (name, a, b, referenceName) => ({
    name,
    unit: 'images/s',
    ours: a?.imagesPerSec ?? null,
    reference: b?.imagesPerSec ?? null,
    referenceName,
    ratio: ratio(a, b),
    higherIsBetter: true,
  });
  rows.push(
    row(
      `train step ${label}, convolutions on onnxruntime, 1 thread`,
      o1,
      t1,
      'PyTorch CPU, 1 thread (faster of default malloc and hugetlb)',
    ),
    row(
      `train step ${label}, convolutions on onnxruntime, 2 threads`,
      o2,
      t2,
      'PyTorch CPU, 2 threads (faster of default malloc and hugetlb)',
    ),
    row(
      `train step ${label}, every kernel on wasm, 1 thread`,
      w1,
      t1,
      'PyTorch CPU, 1 thread (faster of default malloc and hugetlb)',
    ),
    {
      name: `peak memory ${label} (onnxruntime, 1 thread)`,
      unit: 'MB (max RSS)',
      ours: o1?.peakRssMB ?? null,
      reference: t1?.peakRssMB ?? null,
      referenceName: 'PyTorch CPU, 1 thread',
      ratio: o1 && t1 ? t1.peakRssMB / o1.peakRssMB : null,
      higherIsBetter: false,
    },
  );
}
const dir = join(root, 'bench-results');
mkdirSync(dir, { recursive: true });
writeFileSync(
  join(dir, 'students.json'),
  `${JSON.stringify(
    {
      package: '@compress/students',
      rows,
      machine: {
        cpu: cpus()[0]?.model ?? 'unknown',
        cores: cpus().length,
        memoryGiB: Math.round(totalmem() / 2 ** 30),
        node: process.version,
        backend: 'wasm (SIMD), convolutions on onnxruntime',
        onnxruntime: JSON.parse(
          execFileSync(
            process.execPath,
            ['-e', "process.stdout.write(JSON.stringify(require('onnxruntime-node/package.json').version))"],
            { cwd: here, encoding: 'utf8' },
          ),
        ),
        loadAverage: (await import('node:os')).loadavg()[0].toFixed(2),
      },
    },
    null,
    2,
  )}\n`,
);
console.log(`bench: wrote ${join(dir, 'students.json')}`);
