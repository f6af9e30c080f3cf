#!/usr/bin/env node
// Benchmark: OnnxTeacher (NHWC [0, 1] batch → layout conversion + ImageNet normalisation + onnxruntime) on a
// ResNet-50 at 224 × 224, batch 32, 1 and 2 threads, next to onnxruntime-node called directly on ready NCHW
// tensors and to PyTorch on the CPU, all in this run. The ResNet-50 (random weights) is exported by
// tooling/teacher-export into a temporary directory. Writes bench-results/teacher.json at the workspace root.
// Run it through `pnpm --filter @compress/teacher bench` (serialised with other benchmarks by a lock file).
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ort from 'onnxruntime-node';
import { OnnxTeacher } from '../dist/index.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const root = join(here, '..', '..', '..');
const python = process.env.COMPRESS_PYTHON ?? '/usr/bin/python3';
const BATCH = 32;
const SIZE = 224;
const ROUNDS = Number(process.env.COMPRESS_BENCH_ROUNDS ?? 7);
const THREADS = [1, 2];

const dir = mkdtempSync(join(tmpdir(), 'compress-teacher-bench-'));
const model = join(dir, 'resnet50.onnx');
try {
  console.log('exporting a ResNet-50 with random weights (tooling/teacher-export)…');
  execFileSync(
    python,
    [
      join(root, 'tooling', 'teacher-export', 'export_teacher.py'),
      '--format',
      'torchvision',
      '--arch',
      'resnet50',
      '--normalize',
      'outside',
      '--skip-verify',
      '--out',
      model,
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );

  // One NHWC batch in [0, 1] for OnnxTeacher, and the same batch already transposed and normalised for the
  // direct call (the work OnnxTeacher does is exactly what the direct call is spared).
  const nhwc = new Float32Array(BATCH * SIZE * SIZE * 3);
  let s = 12345;
  for (let i = 0; i < nhwc.length; i++)
    nhwc[i] = ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) >>> 8) / 2 ** 24;
  const mean = [0.485, 0.456, 0.406];
  const std = [0.229, 0.224, 0.225];
  const nchw = new Float32Array(nhwc.length);
  const hw = SIZE * SIZE;
  for (let b = 0; b < BATCH; b++)
    for (let c = 0; c < 3; c++)
      for (let p = 0; p < hw; p++)
        nchw[(b * 3 + c) * hw + p] = (nhwc[(b * hw + p) * 3 + c] - mean[c]) / std[c];
  const batch = {
    indices: Int32Array.from({ length: BATCH }, (_, i) => i),
    images: nhwc,
    shape: [BATCH, SIZE, SIZE, 3],
  };

  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const rows = [];
  const machine = {
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    onnxruntime: '1.30.0',
  };

  for (const threads of THREADS) {
    const session = await ort.InferenceSession.create(model, {
      executionProviders: ['cpu'],
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all',
      executionMode: 'sequential',
    });
    const teacher = await OnnxTeacher.create(model, {
      providers: ['cpu'],
      threads,
      normalize: 'imagenet',
      batchSize: BATCH,
      log: false,
    });
    const tensor = new ort.Tensor('float32', nchw, [BATCH, 3, SIZE, SIZE]);
    const direct = async () => {
      const r = await session.run({ images: tensor });
      r.features.dispose();
    };
    const ours = async () => {
      await teacher.embed(batch);
    };
    const time = async (f) => {
      const t0 = performance.now();
      await f();
      return BATCH / ((performance.now() - t0) / 1000);
    };
    await direct();
    await ours(); // warm-up
    const d = [];
    const o = [];
    // Interleaved in alternating order (ABBA…), so that load from other processes falls on both sides
    // alike; the ratio is the median of the per-round ratios.
    const pairRatios = [];
    for (let r = 0; r < ROUNDS; r++) {
      if (r % 2 === 0) {
        d.push(await time(direct));
        o.push(await time(ours));
      } else {
        o.push(await time(ours));
        d.push(await time(direct));
      }
      pairRatios.push(o[r] / d[r]);
    }
    await teacher.dispose();
    await session.release();

    const torch = {};
    for (const [label, env] of [
      ['default malloc', {}],
      ['hugetlb malloc', { GLIBC_TUNABLES: 'glibc.malloc.hugetlb=1' }],
    ]) {
      try {
        const out = execFileSync(
          python,
          [
            join(here, 'torch_resnet50.py'),
            '--threads',
            String(threads),
            '--batch',
            String(BATCH),
            '--size',
            String(SIZE),
            '--runs',
            String(ROUNDS),
          ],
          {
            env: { ...process.env, ...env },
            encoding: 'utf8',
            stdio: ['ignore', 'pipe', 'ignore'],
          },
        );
        torch[label] = JSON.parse(out.trim().split('\n').pop()).images_per_s;
      } catch (error) {
        torch[label] = null;
        console.warn(`PyTorch (${label}) failed: ${error.message}`);
      }
    }
    const torchBest = Object.entries(torch)
      .filter(([, v]) => v !== null)
      .sort((a, b) => b[1] - a[1])[0];
    const oursRate = median(o);
    const directRate = median(d);
    rows.push({
      name: `OnnxTeacher ResNet-50 224px b${BATCH}, ${threads} thread(s) vs direct onnxruntime-node`,
      unit: 'images/s',
      ours: oursRate,
      reference: directRate,
      referenceName: 'onnxruntime-node on ready NCHW tensors',
      ratio: median(pairRatios),
      higherIsBetter: true,
    });
    rows.push({
      name: `OnnxTeacher ResNet-50 224px b${BATCH}, ${threads} thread(s) vs PyTorch`,
      unit: 'images/s',
      ours: oursRate,
      reference: torchBest ? torchBest[1] : null,
      referenceName: torchBest
        ? `PyTorch ${machine.torch ?? ''}CPU (${torchBest[0]}, the faster)`.replace('  ', ' ')
        : 'PyTorch (missing)',
      ratio: torchBest ? oursRate / torchBest[1] : null,
      higherIsBetter: true,
    });
    console.log(
      `threads ${threads}: OnnxTeacher ${oursRate.toFixed(1)} images/s, direct ${directRate.toFixed(1)} (median per-round ratio ${median(pairRatios).toFixed(3)}); PyTorch default ${torch['default malloc']?.toFixed(1) ?? 'missing'}, hugetlb ${torch['hugetlb malloc']?.toFixed(1) ?? 'missing'}`,
    );
    console.log(
      `  per round: OnnxTeacher ${o.map((x) => x.toFixed(1)).join(' ')} | direct ${d.map((x) => x.toFixed(1)).join(' ')}`,
    );
  }

  console.log('');
  console.log('| benchmark | ours | reference | ratio |');
  console.log('|---|---:|---:|---:|');
  for (const r of rows)
    console.log(
      `| ${r.name} | ${r.ours.toFixed(1)} | ${r.reference === null ? 'missing' : r.reference.toFixed(1)} (${r.referenceName}) | ${r.ratio === null ? 'missing' : `${r.ratio.toFixed(3)}×`} |`,
    );
  mkdirSync(join(root, 'bench-results'), { recursive: true });
  writeFileSync(
    join(root, 'bench-results', 'teacher.json'),
    `${JSON.stringify({ package: '@compress/teacher', rows, machine, notes: [`Medians of ${ROUNDS} interleaved rounds (ratio vs direct: median of per-round ratios); other work on the machine may affect the figures.`] }, null, 2)}\n`,
  );
  console.log('wrote bench-results/teacher.json');
} finally {
  rmSync(dir, { recursive: true, force: true });
}
