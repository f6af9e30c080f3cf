import { join } from 'node:path';
import { CompressError, type Teacher, writeFileAtomic } from '@compress/core';
import { barChartPng, type EvaluationReport, lineChartPng, trainingCurvesPng } from '@compress/eval';
import { openRun, RunDir } from '@compress/train';
import type { Config, Method } from './config.js';
import { readCurves } from './curves.js';
import { type EvalSource, evaluateSource } from './evaluate.js';
import type { Reporter } from './progress.js';
import { openSplits, openTeacher, type Splits } from './resources.js';
import { clusterPseudoLabels, type TrainResult, train } from './train.js';

/** A row of the paper's Table 1, in percent. */
export interface TableRow {
  method: 'raw-pixels' | 'teacher' | 'random-init' | Method;
  linear: number | null;
  nn: number | null;
  /** Cluster alignment: the mean over the evaluation's k-means seeds, and their standard deviation. */
  ca: number | null;
  caSd?: number | null;
  /** Training steps of the row's student (null: nothing trained). */
  steps?: number | null;
}

export interface ReproduceResult {
  rows: TableRow[];
  preset: string;
  budget: string;
  seed: number;
  /** Wall time of the run, summed over its sittings when it was resumed. */
  wallSeconds: number;
  /** Present with --ablations: 1-NN accuracy (%) of the momentum variant against T and K. */
  ablations?: {
    temperature: { value: number; nn: number | null }[];
    queueSize: { value: number; nn: number | null }[];
  };
}

/** Table 1's rows in the paper's order. */
export const tableOrder: TableRow['method'][] = [
  'raw-pixels',
  'teacher',
  'random-init',
  'supervised',
  'cc',
  'reg',
  'reg-bn',
  'no-momentum',
  'momentum',
  'one-queue',
];

const labels: Record<TableRow['method'], string> = {
  'raw-pixels': 'Raw pixels',
  teacher: 'Teacher',
  'random-init': 'Random init (student)',
  supervised: 'Supervised (student)',
  cc: 'CC',
  reg: 'Reg',
  'reg-bn': 'Reg-BN',
  'no-momentum': 'CompRess, no momentum (2q)',
  momentum: 'CompRess, momentum (Ours-2q)',
  'one-queue': 'CompRess, one queue (Ours-1q)',
};

export interface ReproduceOptions {
  /** The base config (preset, budget, seed and overrides); `method` is set per row. */
  config: Config;
  out: string;
  ablations?: boolean;
  reporter: Reporter;
  signal?: AbortSignal;
}

/** The training methods of the reproduction, in table order. */
const trained: Method[] = ['supervised', 'cc', 'reg', 'reg-bn', 'no-momentum', 'momentum', 'one-queue'];

const baselines: Method[] = ['supervised', 'cc', 'reg', 'reg-bn'];

/** A row's config: the baselines stop at `optim.baselineMaxSteps` where the budget sets it. */
function methodConfig(config: Config, method: Method): Config {
  const { baselineMaxSteps, ...optim } = config.optim;
  const maxSteps =
    baselines.includes(method) && baselineMaxSteps !== undefined ? baselineMaxSteps : optim.maxSteps;
  return { ...config, method, optim: maxSteps === undefined ? optim : { ...optim, maxSteps } };
}

/** The temperatures of the ablation (the paper's Figure: T = 0.04 near best). */
export const ABLATION_TEMPERATURES = [0.02, 0.04, 0.07, 0.1, 1.0];

/** Queue sizes of the ablation: powers of 4 from 256 and the largest power of two below `n`. */
export function ablationQueueSizes(n: number): number[] {
  const sizes: number[] = [];
  for (let k = 256; k < n; k *= 4) sizes.push(k);
  const largest = 2 ** Math.floor(Math.log2(n - 1));
  if (largest >= 256 && !sizes.includes(largest)) sizes.push(largest);
  return sizes.sort((a, b) => a - b);
}

/**
 * The reduced budget of every ablation point: the momentum variant at the quick budget's training
 * settings (batches of 128 from a 20000-image subset, 500 steps), whatever the table's budget, so
 * that the 5 temperatures and the queue sizes (9–10 students) take well under an hour on two
 * cores; their 1-NN is measured on the budget's evaluation splits.
 */
export function ablationConfig(config: Config): Config {
  const base = methodConfig(config, 'momentum');
  return {
    ...base,
    data: { ...base.data, trainSubset: Math.min(base.data.trainSubset ?? 20000, 20000) },
    optim: { ...base.optim, batchSize: 128, epochs: 30, milestones: [], maxSteps: 500 },
  };
}

/** Markdown of the results table. */
export function tableMarkdown(result: ReproduceResult, config: Config): string {
  const f = (x: number | null) => (x === null ? '—' : x.toFixed(1));
  const student = `${config.student.arch}${config.student.width !== 1 ? ` ×${config.student.width}` : ''}`;
  const lines = [
    `# CompRess reproduction: ${result.preset} (${result.budget} budget)`,
    '',
    `Student ${student}; teacher ${config.teacher.source}; K = ${config.loss.queueSize}, T = ${config.loss.temperature}; ` +
      `${config.optim.epochs} epoch(s)${config.optim.maxSteps ? `, at most ${config.optim.maxSteps} steps` : ''}${config.optim.baselineMaxSteps ? ` (baselines ${config.optim.baselineMaxSteps})` : ''} of batch ${config.optim.batchSize}` +
      `${config.data.trainSubset ? ` on ${config.data.trainSubset} training images` : ''}; seed ${result.seed}; wall time ${(result.wallSeconds / 60).toFixed(1)} min.`,
    '',
    "Top-1 accuracy (%) on the test split, the columns of the paper's Table 1: Linear = linear probe on frozen features,",
    'NN = 1-nearest-neighbour (cosine), CA = cluster alignment (k-means with k = classes, Hungarian mapping; mean ± sd over k-means seeds).',
    '',
    '| method | Linear | NN | CA | steps |',
    '|---|---:|---:|---:|---:|',
    ...result.rows.map(
      (r) =>
        `| ${labels[r.method]} | ${f(r.linear)} | ${f(r.nn)} | ${f(r.ca)}${r.caSd != null ? ` ± ${f(r.caSd)}` : ''} | ${r.steps ?? '—'} |`,
    ),
  ];
  if (result.ablations) {
    const { optim, data } = ablationConfig(config);
    lines.push(
      '',
      `## Ablations (momentum variant, 1-NN %; each point ${optim.maxSteps} steps of batch ${optim.batchSize} on ${data.trainSubset} training images)`,
      '',
      '| T | NN |',
      '|---:|---:|',
    );
    for (const a of result.ablations.temperature)
      lines.push(`| ${a.value} | ${a.nn === null ? 'diverged' : f(a.nn)} |`);
    lines.push('', '| K | NN |', '|---:|---:|');
    for (const a of result.ablations.queueSize)
      lines.push(`| ${a.value} | ${a.nn === null ? 'diverged' : f(a.nn)} |`);
  }
  if (result.budget === 'quick') {
    lines.push(
      '',
      `_Quick budget: about a minute of training per row on a 2-core CPU (${config.optim.maxSteps} steps per CompRess variant, ${config.optim.baselineMaxSteps ?? config.optim.maxSteps} per ` +
        'baseline), evaluations on subsets — enough for the method to show on cluster alignment, not the converged ' +
        'numbers; `--budget full` is the reproduction._',
    );
  }
  return `${lines.join('\n')}\n`;
}

async function cached<T>(run: RunDir, name: string, compute: () => Promise<T>): Promise<T> {
  const saved = await run.readJson<T>(name);
  if (saved !== null) return saved;
  const value = await compute();
  await run.writeJson(name, value);
  return value;
}

/**
 * The reproduction of the paper's Table 1 on a preset: raw pixels, the teacher, the untrained
 * student, the supervised / CC / Reg / Reg-BN baselines and the three CompRess variants, each
 * evaluated with the linear probe, 1-NN and cluster alignment. Every finished piece is kept in the
 * run directory, so a killed reproduction continues where it stopped.
 */
export async function reproduce(options: ReproduceOptions): Promise<ReproduceResult> {
  const { config, reporter } = options;
  const started = performance.now();
  // A directory that holds a reproduction made with other settings (another budget, another
  // schedule) is refused before anything is written: its finished pieces would enter this table.
  const { dir: run } = await openRun(options.out, {
    resume: true,
    settings: config,
    mayChange: ['student.engine', 'student.threads'],
    names: { resume: '--out', runDir: '--out' },
  });
  // wall time over all the sittings of a resumed run: the earlier ones counted to their last
  // finished piece (wall.json), this one to now
  const earlier = (await run.readJson<{ seconds: number }>('wall.json'))?.seconds ?? 0;
  const wall = () => earlier + (performance.now() - started) / 1000;
  const pieceDone = () => run.writeJson('wall.json', { seconds: wall() });
  await run.writeJson('config.json', config);
  const splits: Splits = await openSplits(config);
  const teacher: Teacher = await openTeacher(config, splits.train, reporter.info, { takesTurns: true });
  const rows: TableRow[] = [];
  const summary = (method: TableRow['method'], r: { summary: EvaluationReport['summary'] }): TableRow => ({
    method,
    linear: r.summary.linear,
    nn: r.summary.nn,
    ca: r.summary.ca,
    caSd: r.summary.caSd ?? null,
  });
  const evaluate = (name: string, source: EvalSource, protocols?: ('knn' | 'linear' | 'cluster')[]) =>
    cached(run, join('eval', name, 'summary.json'), async () => {
      // A stop that came during the previous piece ends the run before the next one starts.
      if (options.signal?.aborted) throw new StoppedError();
      reporter.info(`evaluating ${name}`);
      const r = await evaluateSource({
        config,
        splits,
        source,
        name,
        outDir: run.file('eval', name),
        reporter,
        ...(protocols ? { protocols } : {}),
      });
      await pieceDone();
      return { summary: r.summary, seconds: r.seconds };
    });
  try {
    rows.push(summary('raw-pixels', await evaluate('raw-pixels', { kind: 'raw-pixels' })));
    rows.push(summary('teacher', await evaluate('teacher', { kind: 'teacher', teacher })));
    rows.push(summary('random-init', await evaluate('random-init', { kind: 'random-init' })));
    let pseudoLabels: Int32Array | undefined;
    const trainRun = async (name: string, cfg: Config): Promise<TrainResult | null> => {
      const done = await run.readJson<TrainResult>(join('runs', name, 'train-result.json'));
      if (done) return done;
      if (options.signal?.aborted) throw new StoppedError();
      if (cfg.method === 'cc' && !pseudoLabels)
        pseudoLabels = await clusterPseudoLabels(cfg, splits, teacher, reporter);
      reporter.info(`training ${name}`);
      const out = run.file('runs', name);
      const existing = await (await RunDir.open(out)).latestCheckpoint();
      const result = await train({
        config: cfg,
        out,
        resume: existing !== null,
        reporter,
        splits,
        teacher,
        ...(pseudoLabels ? { pseudoLabels } : {}),
        ...(options.signal ? { signal: options.signal } : {}),
      });
      if (result.stopped) return null;
      await run.writeJson(join('runs', name, 'train-result.json'), result);
      await pieceDone();
      return result;
    };
    for (const method of trained) {
      const result = await trainRun(method, methodConfig(config, method));
      if (!result) throw new StoppedError();
      rows.push({
        ...summary(method, await evaluate(method, { kind: 'student', checkpoint: result.checkpoint })),
        steps: result.steps,
      });
    }
    const result: ReproduceResult = {
      rows,
      preset: config.preset,
      budget: config.budget,
      seed: config.seed,
      wallSeconds: 0,
    };
    if (options.ablations) {
      // a point whose training diverges (a temperature too small) is a result, not a failure
      const nnOf = async (name: string, cfg: Config): Promise<number | null> => {
        let r: TrainResult | null;
        try {
          r = await trainRun(name, cfg);
        } catch (error) {
          if (!(error instanceof CompressError && error.code === 'NON_FINITE')) throw error;
          reporter.info(`${name}: ${error.message}; its point is left empty`);
          return null;
        }
        if (!r) throw new StoppedError();
        return (await evaluate(name, { kind: 'student', checkpoint: r.checkpoint }, ['knn'])).summary.nn;
      };
      // every ablation point trains at the reduced budget (the table's momentum row may not)
      const base = ablationConfig(config);
      const temperature = [];
      for (const t of ABLATION_TEMPERATURES) {
        temperature.push({
          value: t,
          nn: await nnOf(`ablation-T${t}`, { ...base, loss: { ...base.loss, temperature: t } }),
        });
      }
      const n = base.data.trainSubset ?? splits.train.length;
      const queueSize = [];
      for (const k of ablationQueueSizes(n)) {
        queueSize.push({
          value: k,
          nn: await nnOf(`ablation-K${k}`, { ...base, loss: { ...base.loss, queueSize: k } }),
        });
      }
      result.ablations = { temperature, queueSize };
    }
    result.wallSeconds = wall();
    await pieceDone();
    await writeResults(run, result, config);
    return result;
  } finally {
    reporter.done();
    await teacher.dispose();
  }
}

/** Thrown when a stop signal interrupted the reproduction (its checkpoints are saved). */
export class StoppedError extends Error {
  constructor() {
    super('stopped by a signal; rerun the same command to continue');
    this.name = 'StoppedError';
  }
}

async function writeResults(run: RunDir, result: ReproduceResult, config: Config): Promise<void> {
  await run.writeJson(join('results', 'table.json'), result);
  // every trained row's curves: the CompRess losses (one scale) and every k-NN monitor
  const curves = await Promise.all(
    trained.map(async (m) => ({ ...(await readCurves(await RunDir.open(run.file('runs', m)))), method: m })),
  );
  const png = await trainingCurvesPng(
    [
      {
        title: 'CompRess loss (KL)',
        yLabel: 'loss',
        curves: curves
          .filter((c) => !baselines.includes(c.method))
          .map((c) => ({ name: labels[c.method], points: c.loss })),
      },
      {
        title: 'k-NN monitor (held-out images)',
        yLabel: '1-NN top-1 (%)',
        curves: curves.map((c) => ({ name: labels[c.method], points: c.knn })),
        markers: true,
      },
    ],
    { title: `training curves on ${result.preset} (${result.budget})`, xLabel: 'step' },
  );
  if (png) await writeFileAtomic(run.file('results', 'training-curves.png'), png);
  await writeFileAtomic(run.file('results', 'table.md'), tableMarkdown(result, config));
  const cats = result.rows.map((r) => labels[r.method].replace(/ \(.*\)$/, ''));
  await writeFileAtomic(
    run.file('results', 'table.png'),
    await barChartPng(
      cats,
      [
        { name: 'Linear', values: result.rows.map((r) => r.linear) },
        { name: 'NN', values: result.rows.map((r) => r.nn) },
        { name: 'CA', values: result.rows.map((r) => r.ca) },
      ],
      {
        title: `CompRess on ${result.preset} (${result.budget}): top-1 %`,
        yLabel: 'top-1 accuracy (%)',
        yRange: [0, 100],
      },
    ),
  );
  if (result.ablations) {
    const t = result.ablations.temperature;
    await writeFileAtomic(
      run.file('results', 'ablation-temperature.png'),
      await lineChartPng(
        t.map((a) => a.value),
        [{ name: 'NN', values: t.map((a) => a.nn) }],
        {
          title: 'k-NN accuracy against the temperature T',
          xLabel: 'T',
          yLabel: '1-NN top-1 (%)',
          logX: true,
        },
      ),
    );
    const k = result.ablations.queueSize;
    await writeFileAtomic(
      run.file('results', 'ablation-queue-size.png'),
      await lineChartPng(
        k.map((a) => a.value),
        [{ name: 'NN', values: k.map((a) => a.nn) }],
        {
          title: 'k-NN accuracy against the queue size K',
          xLabel: 'K',
          yLabel: '1-NN top-1 (%)',
          logX: true,
        },
      ),
    );
  }
}
