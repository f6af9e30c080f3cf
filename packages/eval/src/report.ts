import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { type Dataset, type FeatureMatrix, type ProgressListener, writeFileAtomic } from '@compress/core';
import { type ClusterAlignmentResult, clusterAlignment } from './alignment.js';
import { type KnnResult, knnAccuracy } from './knn.js';
import { type LinearProbeOptions, type LinearProbeResult, linearProbe } from './linear.js';
import { clusterMontagePng, confusionHeatmapPng, embeddingScatterPng } from './pictures.js';

export type Protocol = 'knn' | 'linear' | 'cluster';

export interface EvaluateOptions {
  /** Name of what is evaluated (a row of the results table). */
  name: string;
  /** Which protocols to run. @default ['knn', 'linear', 'cluster'] */
  protocols?: Protocol[];
  classNames?: readonly string[];
  /** Linear-probe options (the paper's protocol by default). */
  linear?: LinearProbeOptions;
  /** Seed of k-means and pictures. @default 0 */
  seed?: number;
  /**
   * k-means runs of the cluster alignment, seeds `seed`, `seed + 1`, …: the CA column is their
   * mean (with their standard deviation), since one run varies by several points with its seed.
   * The pictures and the mapping are the first run's. @default 5
   */
  clusterSeeds?: number;
  /** Write Markdown, JSON and PNGs here when given. */
  outDir?: string;
  /** The train dataset, for the cluster montage picture. */
  trainDataset?: Dataset;
  /** Draw the UMAP embedding scatter (a few seconds). @default true when outDir is set */
  scatter?: boolean;
  onProgress?: ProgressListener;
}

export interface EvaluationReport {
  name: string;
  /** 1-NN (the paper's NN column). */
  knn1?: KnnResult;
  /** 20-NN weighted vote (τ = 0.07), as other libraries report. */
  knn20?: KnnResult;
  linear?: LinearProbeResult;
  cluster?: ClusterAlignmentResult;
  /** Validation accuracy of every k-means run of the cluster alignment, by seed. */
  clusterRuns?: { seed: number; valAccuracy: number }[];
  /**
   * Percentages for the results table (null where not run): `ca` is the mean over the k-means
   * runs, `caSd` their sample standard deviation (null for one run).
   */
  summary: {
    nn: number | null;
    knn20: number | null;
    linear: number | null;
    ca: number | null;
    caSd: number | null;
  };
  seconds: Record<string, number>;
  files: string[];
}

const pct = (x: number | undefined) => (x === undefined ? null : Math.round(x * 10000) / 100);

/** Runs the paper's evaluations on frozen train/test features and writes a report. */
export async function evaluateFeatures(
  train: FeatureMatrix,
  trainLabels: ArrayLike<number>,
  test: FeatureMatrix,
  testLabels: ArrayLike<number>,
  options: EvaluateOptions,
): Promise<EvaluationReport> {
  const protocols = new Set(options.protocols ?? ['knn', 'linear', 'cluster']);
  const seconds: Record<string, number> = {};
  const timed = async <T>(key: string, f: () => T | Promise<T>): Promise<T> => {
    const t0 = performance.now();
    const r = await f();
    seconds[key] = (performance.now() - t0) / 1000;
    return r;
  };
  const report: EvaluationReport = {
    name: options.name,
    summary: { nn: null, knn20: null, linear: null, ca: null, caSd: null },
    seconds,
    files: [],
  };
  if (protocols.has('knn')) {
    report.knn1 = await timed('knn1', () => knnAccuracy(train, trainLabels, test, testLabels, { k: 1 }));
    report.knn20 = await timed('knn20', () =>
      knnAccuracy(train, trainLabels, test, testLabels, { k: 20, vote: 'weighted', temperature: 0.07 }),
    );
    report.summary.nn = pct(report.knn1.top1);
    report.summary.knn20 = pct(report.knn20.top1);
  }
  if (protocols.has('cluster')) {
    const seed = options.seed ?? 0;
    const runs = options.clusterSeeds ?? 5;
    const results = await timed('cluster', async () => {
      const out: ClusterAlignmentResult[] = [];
      for (let i = 0; i < runs; i++) {
        out.push(await clusterAlignment(train, trainLabels, test, testLabels, { seed: seed + i }));
      }
      return out;
    });
    report.cluster = results[0]!;
    report.clusterRuns = results.map((r, i) => ({ seed: seed + i, valAccuracy: r.valAccuracy }));
    const accs = results.map((r) => r.valAccuracy);
    const mean = accs.reduce((a, b) => a + b, 0) / accs.length;
    report.summary.ca = pct(mean);
    report.summary.caSd =
      accs.length > 1
        ? pct(Math.sqrt(accs.reduce((a, v) => a + (v - mean) ** 2, 0) / (accs.length - 1)))
        : null;
  }
  if (protocols.has('linear')) {
    report.linear = await timed('linear', () =>
      linearProbe(train, trainLabels, test, testLabels, {
        seed: options.seed ?? 0,
        ...(options.onProgress ? { onProgress: options.onProgress } : {}),
        ...options.linear,
      }),
    );
    report.summary.linear = pct(report.linear.top1);
  }
  if (options.outDir) await writeReport(report, train, trainLabels, options);
  return report;
}

function markdown(report: EvaluationReport, classNames?: readonly string[]): string {
  const f = (x: number | null) => (x === null ? '—' : x.toFixed(2));
  const lines = [
    `# Evaluation: ${report.name}`,
    '',
    '| protocol | top-1 (%) | top-5 (%) | seconds |',
    '|---|---:|---:|---:|',
  ];
  if (report.knn1)
    lines.push(`| 1-NN (cosine) | ${f(report.summary.nn)} | — | ${report.seconds.knn1?.toFixed(1)} |`);
  if (report.knn20) {
    lines.push(
      `| 20-NN weighted (τ 0.07) | ${f(report.summary.knn20)} | ${f(pct(report.knn20.top5))} | ${report.seconds.knn20?.toFixed(1)} |`,
    );
  }
  if (report.linear) {
    lines.push(
      `| linear probe (best of ${report.linear.epochs.length} epochs, epoch ${report.linear.bestEpoch}) | ${f(report.summary.linear)} | ${f(pct(report.linear.top5))} | ${report.seconds.linear?.toFixed(1)} |`,
    );
  }
  if (report.cluster) {
    const runs = report.clusterRuns?.length ?? 1;
    lines.push(
      `| cluster alignment (val${runs > 1 ? `, mean of ${runs} k-means seeds ± ${f(report.summary.caSd)}` : ''}) | ${f(report.summary.ca)} | — | ${report.seconds.cluster?.toFixed(1)} |`,
    );
    lines.push(`| cluster alignment (train) | ${f(pct(report.cluster.trainAccuracy))} | — | |`);
    const c = report.cluster;
    lines.push(
      '',
      '## Cluster → class mapping',
      '',
      '| cluster | class | precision on train |',
      '|---:|---|---:|',
    );
    c.mapping.forEach((l, k) => {
      const name = l < 0 ? '(unmapped)' : (classNames?.[l] ?? `class ${l}`);
      lines.push(`| ${k} | ${name} | ${l < 0 ? '—' : (c.score[k * c.numClasses + l]! * 100).toFixed(1)} |`);
    });
  }
  if (report.files.length)
    lines.push(
      '',
      '## Pictures',
      '',
      ...report.files.filter((x) => x.endsWith('.png')).map((x) => `![${x}](${x})`),
    );
  return `${lines.join('\n')}\n`;
}

/**
 * Writes `report.md` and `report.json` of a report put together elsewhere (e.g. k-NN over a base
 * searched in shards) into `outDir`; no pictures.
 */
export async function writeReportFiles(
  report: EvaluationReport,
  outDir: string,
  classNames?: readonly string[],
): Promise<void> {
  await mkdir(outDir, { recursive: true });
  report.files.push('report.md', 'report.json');
  await writeFileAtomic(join(outDir, 'report.md'), markdown(report, classNames));
  await writeFileAtomic(join(outDir, 'report.json'), `${JSON.stringify(toJson(report), null, 2)}\n`);
}

function toJson(report: EvaluationReport): unknown {
  return {
    name: report.name,
    summary: report.summary,
    seconds: report.seconds,
    knn1: report.knn1 && { top1: report.knn1.top1 },
    knn20: report.knn20 && {
      top1: report.knn20.top1,
      top5: report.knn20.top5,
      vote: 'weighted',
      temperature: 0.07,
    },
    linear: report.linear && {
      top1: report.linear.top1,
      top5: report.linear.top5,
      bestEpoch: report.linear.bestEpoch,
      finalTop1: report.linear.finalTop1,
      epochs: report.linear.epochs,
    },
    cluster: report.cluster && {
      trainAccuracy: report.cluster.trainAccuracy,
      valAccuracy: report.cluster.valAccuracy,
      mapping: Array.from(report.cluster.mapping),
      inertia: report.cluster.inertia,
      confusionRows: Array.from(report.cluster.confusionRows),
      confusion: Array.from(report.cluster.confusion),
      runs: report.clusterRuns,
    },
    files: report.files,
  };
}

async function writeReport(
  report: EvaluationReport,
  train: FeatureMatrix,
  trainLabels: ArrayLike<number>,
  options: EvaluateOptions,
): Promise<void> {
  const dir = options.outDir!;
  await mkdir(dir, { recursive: true });
  const names = options.classNames;
  const c = report.cluster;
  if (c) {
    const rowLabels = Array.from(c.confusionRows, (k) => {
      const l = c.mapping[k]!;
      return `cluster ${k} → ${l < 0 ? '—' : (names?.[l] ?? l)}`;
    });
    const colLabels = Array.from({ length: c.numClasses }, (_, l) => names?.[l] ?? `class ${l}`);
    await writeFileAtomic(
      join(dir, 'confusion.png'),
      await confusionHeatmapPng(c.confusion, rowLabels, colLabels, {
        title: `${report.name}: clusters vs classes (test split)`,
        colTitle: 'true class',
      }),
    );
    report.files.push('confusion.png');
    if (options.trainDataset) {
      await writeFileAtomic(
        join(dir, 'clusters.png'),
        await clusterMontagePng(options.trainDataset, c.trainClusters, {
          seed: options.seed ?? 0,
          rowLabel: (k) =>
            `cluster ${k} → ${c.mapping[k]! < 0 ? '—' : (names?.[c.mapping[k]!] ?? c.mapping[k])}`,
        }),
      );
      report.files.push('clusters.png');
    }
  }
  if (options.scatter ?? true) {
    await writeFileAtomic(
      join(dir, 'embedding.png'),
      await embeddingScatterPng(train, trainLabels, {
        seed: options.seed ?? 0,
        title: `${report.name}: UMAP of train features`,
        ...(names ? { classNames: names } : {}),
      }),
    );
    report.files.push('embedding.png');
  }
  report.files.push('report.md', 'report.json');
  await writeFileAtomic(join(dir, 'report.md'), markdown(report, names));
  await writeFileAtomic(join(dir, 'report.json'), `${JSON.stringify(toJson(report), null, 2)}\n`);
}
