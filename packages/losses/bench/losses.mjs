#!/usr/bin/env node
// Benchmark of one CompRess loss step (forward + backward + queue update, B = 256) on the tfjs
// wasm backend (1 thread), next to the same step in PyTorch CPU run in the same invocation with
// 1 thread (and 2, reported apart), each with and without GLIBC_TUNABLES=glibc.malloc.hugetlb=1
// (the faster is the reference). Writes <repo>/bench-results/losses.json.
// Runs under `flock /tmp/compress-bench.lock` where flock exists. Figures on a shared machine vary.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..', '..');
const LOCK = '/tmp/compress-bench.lock';
if (!process.env.COMPRESS_BENCH_LOCKED && spawnSync('flock', ['--version']).status === 0) {
  const r = spawnSync('flock', [LOCK, process.execPath, ...process.argv.slice(1)], {
    stdio: 'inherit',
    env: { ...process.env, COMPRESS_BENCH_LOCKED: '1' },
  });
  process.exit(r.status ?? 1);
}

const python = process.env.COMPRESS_PYTHON ?? '/usr/bin/python3';
const B = 256;
const quick = process.argv.includes('--quick');
const configs = [
  { K: 16384, Dt: 128, Ds: 128, reps: 10 },
  { K: 16384, Dt: 2048, Ds: 512, reps: 5 },
  { K: 128000, Dt: 128, Ds: 128, reps: 5 },
  { K: 128000, Dt: 2048, Ds: 512, reps: 3 },
].slice(0, quick ? 1 : 4);

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const gib = (b) => (b / 2 ** 30).toFixed(2);

function ours(c, engine = 'wasm', threads = 1) {
  const out = execFileSync(
    process.execPath,
    [join(here, 'step.mjs'), c.K, c.Dt, c.Ds, B, c.reps, engine, threads].map(String),
    {
      encoding: 'utf8',
      maxBuffer: 1 << 20,
    },
  );
  return JSON.parse(out.trim().split('\n').at(-1));
}

function torch(c, threads, hugetlb) {
  const env = { ...process.env };
  if (hugetlb) env.GLIBC_TUNABLES = 'glibc.malloc.hugetlb=1';
  else delete env.GLIBC_TUNABLES;
  try {
    const out = execFileSync(
      python,
      [join(here, 'reference.py'), c.K, c.Dt, c.Ds, B, threads, c.reps].map(String),
      { encoding: 'utf8', env, maxBuffer: 1 << 20 },
    );
    return JSON.parse(out.trim().split('\n').at(-1));
  } catch (e) {
    console.error(`PyTorch reference failed (${python}): ${String(e.message).split('\n')[0]}`);
    return null;
  }
}

/** One row: our step time (engine/threads in `what`) against PyTorch's at `threads` threads. */
function stepRow(name, what, ms, refs, threads) {
  const ref = refs[threads];
  const t = `${threads} thread${threads > 1 ? 's' : ''}`;
  return {
    name: `${name} (${what}) vs PyTorch ${t}`,
    unit: 'ms/step',
    ours: Number(ms.toFixed(2)),
    reference: ref ? Number(ref.ms.toFixed(2)) : null,
    referenceName: ref
      ? `PyTorch ${torchVersion} CPU, ${t}${ref.hugetlb ? ', hugetlb malloc' : ''}`
      : 'missing',
    ratio: ref ? Number((ref.ms / ms).toFixed(3)) : null,
    higherIsBetter: false,
  };
}

const rows = [];
const notes = [];
let torchVersion = 'missing';
const table = [];
for (const c of configs) {
  const name = `loss step B=${B} K=${c.K} Dt=${c.Dt} Ds=${c.Ds}`;
  const o = ours(c);
  const refs = {};
  for (const threads of [1, 2]) {
    const runs = [false, true].map((h) => ({ h, r: torch(c, threads, h) })).filter((x) => x.r !== null);
    if (runs.length === 0) continue;
    torchVersion = runs[0].r.torch;
    const best = runs.reduce((a, b) => (median(a.r.ms) <= median(b.r.ms) ? a : b));
    refs[threads] = {
      ms: median(best.r.ms),
      hugetlb: best.h,
      cpuMs: median(best.r.cpuMs),
      all: runs
        .map(
          (x) =>
            `${x.h ? 'hugetlb' : 'default malloc'} ${median(x.r.ms).toFixed(1)} ms (CPU ${median(x.r.cpuMs).toFixed(1)})`,
        )
        .join(', '),
      rss: best.r.maxRssBytes,
    };
  }
  const oursMs = median(o.ms);
  // The onnxruntime engine (the default where onnxruntime-node is installed) at 1 and 2 threads,
  // each against PyTorch at the same thread count.
  const native = {};
  for (const threads of [1, 2]) {
    try {
      native[threads] = ours(c, 'onnxruntime', threads);
    } catch (e) {
      console.error(`onnxruntime engine failed: ${String(e.message).split('\n')[0]}`);
      continue;
    }
    rows.push(
      stepRow(
        name,
        `onnxruntime, ${threads} thread${threads > 1 ? 's' : ''}`,
        median(native[threads].ms),
        refs,
        threads,
      ),
    );
  }
  for (const threads of [1, 2]) rows.push(stepRow(name, 'wasm, 1 thread', oursMs, refs, threads));
  if (refs[1]) {
    const oursCpu = median(o.cpuMs);
    rows.push({
      name: `${name} (wasm, 1 thread) vs PyTorch 1 thread, CPU time`,
      unit: 'CPU ms/step',
      ours: Number(oursCpu.toFixed(2)),
      reference: Number(refs[1].cpuMs.toFixed(2)),
      referenceName: `PyTorch ${torchVersion} CPU, 1 thread${refs[1].hugetlb ? ', hugetlb malloc' : ''}`,
      ratio: Number((refs[1].cpuMs / oursCpu).toFixed(3)),
      higherIsBetter: false,
    });
  }
  table.push({
    config: name,
    ours: oursMs,
    oursCpu: median(o.cpuMs),
    torch1Cpu: refs[1]?.cpuMs,
    torch1: refs[1]?.ms,
    torch2: refs[2]?.ms,
    oursMem: `heap ${gib(o.wasmHeapBytes)} GiB, RSS ${gib(o.maxRssBytes)} GiB`,
    torchMem: refs[1] ? `RSS ${gib(refs[1].rss)} GiB` : 'missing',
  });
  notes.push(
    `${name}: ours ${o.ms.map((x) => x.toFixed(0)).join('/')} ms (CPU time median ${median(o.cpuMs).toFixed(1)} ms) (${o.engine} engine; wasm heap ${gib(o.wasmHeapBytes)} GiB, peak RSS ${gib(o.maxRssBytes)} GiB); PyTorch 1 thread: ${refs[1]?.all ?? 'missing'} (peak RSS ${refs[1] ? gib(refs[1].rss) : '?'} GiB); 2 threads: ${refs[2]?.all ?? 'missing'}`,
  );
  for (const [t, r] of Object.entries(native)) {
    notes.push(
      `${name}: onnxruntime engine, ${t} thread(s): ${r.ms.map((x) => x.toFixed(0)).join('/')} ms (peak RSS ${gib(r.maxRssBytes)} GiB)`,
    );
  }
  console.log(notes.slice(-1 - Object.keys(native).length).join('\n'));
}

console.log(
  '\n| configuration | compress wasm (ms) | PyTorch 1 thr (ms) | ratio (PyTorch/ours) | CPU-time ratio | PyTorch 2 thr (ms) | ratio | memory (ours / PyTorch) |',
);
console.log('|---|---:|---:|---:|---:|---:|---:|---|');
for (const t of table) {
  const r = (x) => (x === undefined ? 'missing' : `${(x / t.ours).toFixed(2)}×`);
  const f = (x) => (x === undefined ? 'missing' : x.toFixed(1));
  console.log(
    `| ${t.config} | ${t.ours.toFixed(1)} | ${f(t.torch1)} | ${r(t.torch1)} | ${t.torch1Cpu === undefined ? 'missing' : `${(t.torch1Cpu / t.oursCpu).toFixed(2)}×`} | ${f(t.torch2)} | ${r(t.torch2)} | ${t.oursMem} / ${t.torchMem} |`,
  );
}

mkdirSync(join(root, 'bench-results'), { recursive: true });
writeFileSync(
  join(root, 'bench-results', 'losses.json'),
  `${JSON.stringify(
    {
      package: '@compress/losses',
      rows,
      notes: [
        'ratio = PyTorch time / ours (≥ 1: compress at least as fast); ours is tfjs wasm, single-threaded.',
        'Measured on a shared 2-core machine while other work may run: figures vary between runs.',
        ...notes,
      ],
      machine: {
        cpu: cpus()[0]?.model ?? 'unknown',
        cores: cpus().length,
        memoryGiB: Math.round(totalmem() / 2 ** 30),
        node: process.version,
        torch: torchVersion,
      },
    },
    null,
    2,
  )}\n`,
);
console.log(`\nwrote ${join('bench-results', 'losses.json')}`);
