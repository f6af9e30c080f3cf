#!/usr/bin/env node
// Collects every package's benchmark rows (bench-results/<package>.json, written by `pnpm bench`)
// into docs/benchmarks.md: the project's figure, the reference's figure, the ratio, and the
// machine they were measured on. Missing references are reported as missing.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';

const root = new URL('../..', import.meta.url).pathname;
const dir = join(root, 'bench-results');
if (!existsSync(dir)) {
  console.error('bench report: no bench-results/ directory; run `pnpm bench` first');
  process.exit(1);
}
const files = readdirSync(dir)
  .filter((f) => f.endsWith('.json'))
  .sort();

function fmt(x) {
  if (x === null || x === undefined || Number.isNaN(x)) return 'missing';
  if (typeof x !== 'number') return String(x);
  const a = Math.abs(x);
  return a >= 100 ? x.toFixed(0) : a >= 10 ? x.toFixed(1) : a >= 1 ? x.toFixed(2) : x.toPrecision(3);
}

function pythonVersions() {
  const py = process.env.COMPRESS_PYTHON ?? '/usr/bin/python3';
  try {
    return execFileSync(
      py,
      [
        '-c',
        'import torch,sys;v=["python "+sys.version.split()[0],"torch "+torch.__version__]\ntry:\n import faiss;v.append("faiss "+faiss.__version__)\nexcept Exception: pass\nprint(", ".join(v))',
      ],
      { encoding: 'utf8' },
    ).trim();
  } catch {
    return 'python reference side not available';
  }
}

const lines = [
  '# Benchmarks',
  '',
  "Written by `pnpm bench` (tooling/bench/report.mjs) from each package's benchmark. Every row is",
  "the project's figure next to the reference computed in the same run on the same machine and",
  'thread count; the ratio is ours / reference for rates (higher is better) and reference / ours for',
  'times, so a ratio ≥ 1 always means compress is at least as fast.',
  '',
  '## Machine',
  '',
  `- CPU: ${cpus()[0]?.model ?? 'unknown'}, ${cpus().length} cores; memory ${(totalmem() / 2 ** 30).toFixed(0)} GiB`,
  `- Node.js ${process.version}; ${pythonVersions()}`,
  `- Written ${new Date().toISOString().slice(0, 10)}`,
  '',
];
for (const f of files) {
  const r = JSON.parse(readFileSync(join(dir, f), 'utf8'));
  lines.push(`## ${r.package ?? f.replace(/\.json$/, '')}`, '');
  if (r.machine) {
    const m = Object.entries(r.machine)
      .map(([k, v]) => `${k}: ${v}`)
      .join('; ');
    lines.push(`_${m}_`, '');
  }
  lines.push(
    '| benchmark | unit | compress | reference | ref. figure | ratio |',
    '|---|---|---:|---|---:|---:|',
  );
  for (const row of r.rows ?? []) {
    let ratio = row.ratio;
    if (
      (ratio === undefined || ratio === null) &&
      typeof row.ours === 'number' &&
      typeof row.reference === 'number'
    ) {
      ratio = row.higherIsBetter === false ? row.reference / row.ours : row.ours / row.reference;
    }
    lines.push(
      `| ${row.name} | ${row.unit ?? ''} | ${fmt(row.ours)} | ${row.referenceName ?? 'missing'} | ${fmt(row.reference)} | ${ratio === undefined || ratio === null ? 'missing' : `${fmt(ratio)}×`} |`,
    );
  }
  if (r.notes) lines.push('', ...[].concat(r.notes).map((n) => `- ${n}`));
  // tables and paragraphs as the benchmark wrote them
  if (r.markdown) lines.push('', ...[].concat(r.markdown));
  lines.push('');
}
writeFileSync(join(root, 'docs', 'benchmarks.md'), lines.join('\n'));
console.log(`bench report: ${files.length} package(s) → docs/benchmarks.md`);
