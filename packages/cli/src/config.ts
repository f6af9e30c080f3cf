import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { CompressError } from '@compress/core';
import { methods } from '@compress/train';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';

export { type Method, methods } from '@compress/train';
export const presets = ['fashion-mnist', 'imagenet'] as const;
export type PresetName = (typeof presets)[number];
export const budgets = ['quick', 'full'] as const;
export type Budget = (typeof budgets)[number];

const pair = z.tuple([z.number().positive(), z.number().positive()]);
const normalization = z.union([
  z.enum(['imagenet', 'none']),
  z.object({ mean: z.array(z.number()).min(1), std: z.array(z.number().positive()).min(1) }).strict(),
]);

/** The whole configuration of a run. Every key is listed here once; unknown keys are errors. */
export const configSchema = z
  .object({
    preset: z.enum(presets),
    budget: z.enum(budgets),
    /** Seed of everything random: init, queues, shuffling, crops. */
    seed: z.number().int().min(0),
    method: z.enum(methods),
    data: z
      .object({
        dataset: z.enum(['fashion-mnist', 'cifar10', 'image-folder']),
        /** Dataset directory (fashion-mnist: Debian's by default; image-folder: with train/ and val/). */
        root: z.string().optional(),
        /** Train on a seeded random subset of this many images (quick budgets). */
        trainSubset: z.number().int().positive().optional(),
        /** Evaluate on a seeded random subset of this many train/test images. */
        evalTrainSubset: z.number().int().positive().optional(),
        evalTestSubset: z.number().int().positive().optional(),
        /** Decode/augment worker threads (0: on the main thread). */
        workers: z.number().int().min(0),
        /** image-folder: leave out files that do not decode (listed in the log) instead of failing. */
        skipCorrupt: z.boolean().optional(),
      })
      .strict(),
    teacher: z
      .object({
        /** `builtin`, an .onnx file, a feature cache file, or a JS module exporting a Teacher. */
        source: z.string().min(1),
        layout: z.enum(['NCHW', 'NHWC']).optional(),
        normalize: normalization.optional(),
        channels: z.union([z.literal(1), z.literal(3)]).optional(),
        providers: z.enum(['auto', 'cpu', 'cuda']),
        threads: z.number().int().min(0),
        /**
         * The teacher's identity in feature caches, for teachers that have none of their own (a
         * module without `fingerprint`): a stable string naming the model and its settings.
         */
        fingerprint: z.string().min(1).optional(),
      })
      .strict(),
    student: z
      .object({
        arch: z.string().min(1),
        /** Channel width multiplier (1: the architecture as published). */
        width: z.number().positive().max(4),
        /**
         * What runs the training step: the whole step as one onnxruntime graph, TensorFlow.js, or
         * `auto` (onnxruntime where installed). A resume may change it.
         */
        engine: z.enum(['auto', 'onnxruntime', 'tfjs']),
        /** onnxruntime's intra-op threads for the step (0: one per core). A resume may change it. */
        threads: z.number().int().min(0),
      })
      .strict(),
    loss: z
      .object({
        /** T of the paper (0.04). */
        temperature: z.number().positive(),
        /** K, the number of anchors in each queue. */
        queueSize: z.number().int().positive(),
        /** m of the key encoder's EMA (momentum variant). */
        keyMomentum: z.number().min(0).max(1),
        /** Pseudo-label clusters of the CC baseline. */
        ccClusters: z.number().int().min(2),
      })
      .strict(),
    optim: z
      .object({
        batchSize: z.number().int().positive(),
        epochs: z.number().int().positive(),
        lr: z.number().positive(),
        momentum: z.number().min(0).max(1),
        weightDecay: z.number().min(0),
        /** Epochs at which the learning rate is multiplied by `gamma`. */
        milestones: z.array(z.number().int().min(0)),
        gamma: z.number().positive(),
        /** Stop after this many steps in all (budgets); unset: all epochs. */
        maxSteps: z.number().int().positive().optional(),
        /**
         * `reproduce`: the baselines (supervised, CC, Reg, Reg-BN) stop after this many steps
         * (quick budgets, where they converge sooner than the CompRess variants); unset: maxSteps.
         */
        baselineMaxSteps: z.number().int().positive().optional(),
      })
      .strict(),
    augment: z
      .object({
        /** Output side of RandomResizedCrop. */
        size: z.number().int().positive(),
        scale: pair,
        ratio: pair,
        flip: z.boolean(),
      })
      .strict(),
    schedule: z
      .object({
        /** Write a checkpoint every this many steps (and at every epoch end). */
        checkpointEvery: z.number().int().positive(),
        /** Log a metrics line every this many steps. */
        logEvery: z.number().int().positive(),
        /** Run the k-NN monitor every this many steps (0: only at the end of each epoch). */
        monitorEvery: z.number().int().min(0),
        /** Held-out images of the k-NN monitor (train and test each). */
        monitorSize: z.number().int().min(0),
      })
      .strict(),
    eval: z
      .object({
        /** Epochs of the linear probe (the paper: 40, lr ×0.1 at 15, 30). */
        linearEpochs: z.number().int().positive(),
        linearMilestones: z.array(z.number().int().min(0)),
        batchSize: z.number().int().positive(),
      })
      .strict(),
  })
  .strict();

export type Config = z.infer<typeof configSchema>;

/** A partial config as a user writes it (file or flags), deep-partial. */
export type ConfigInput = { [K in keyof Config]?: Config[K] extends object ? Partial<Config[K]> : Config[K] };

/** Levenshtein distance, for "did you mean" on unknown keys. */
function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      d[i]![j] = Math.min(
        d[i - 1]![j]! + 1,
        d[i]![j - 1]! + 1,
        d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
  }
  return d[a.length]![b.length]!;
}

function knownKeys(path: readonly PropertyKey[]): string[] {
  let schema: z.ZodType = configSchema;
  for (const key of path) {
    const shape = (schema as z.ZodObject).shape as Record<string, z.ZodType> | undefined;
    const next = shape?.[String(key)];
    if (!next) return [];
    schema = next instanceof z.ZodOptional ? (next.unwrap() as z.ZodType) : next;
  }
  return Object.keys(((schema as z.ZodObject).shape as Record<string, unknown>) ?? {});
}

/**
 * Validates a resolved config; an unknown key or a bad value is a CONFIG error naming it, prefixed
 * with where the value came from: `sourceOf(path)` (e.g. the flag that set it) or `source`.
 */
export function validateConfig(
  value: unknown,
  source = 'config',
  sourceOf: (path: string) => string | undefined = () => undefined,
): Config {
  const parsed = configSchema.safeParse(value);
  if (parsed.success) return parsed.data;
  const bySource = new Map<string, string[]>();
  for (const issue of parsed.error.issues) {
    const from = sourceOf(issue.path.join('.')) ?? source;
    bySource.set(from, [...(bySource.get(from) ?? []), describeIssue(issue)]);
  }
  const message = [...bySource].map(([from, problems]) => `${from}: ${problems.join('; ')}`).join('; ');
  throw new CompressError('CONFIG', message, { input: [...bySource.keys()][0] ?? source });
}

function describeIssue(issue: z.core.$ZodIssue): string {
  const where = issue.path.join('.');
  if (issue.code === 'unrecognized_keys') {
    const known = knownKeys(issue.path);
    return issue.keys
      .map((k) => {
        const key = where ? `${where}.${k}` : k;
        const best = known.map((c) => [c, distance(k, c)] as const).sort((x, y) => x[1] - y[1])[0];
        const hint =
          best && best[1] <= Math.max(2, k.length / 3)
            ? ` (did you mean "${where ? `${where}.` : ''}${best[0]}"?)`
            : '';
        return `unknown key "${key}"${hint}; known keys${where ? ` of ${where}` : ''}: ${known.join(', ')}`;
      })
      .join('; ');
  }
  return `"${where || '(root)'}": ${issue.message}`;
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/** Deep merge: objects merge key by key, everything else (arrays included) replaces. */
export function mergeConfig<T>(base: T, ...layers: unknown[]): T {
  let out: unknown = structuredClone(base);
  for (const layer of layers) {
    if (layer === undefined) continue;
    out = mergeInto(out, layer);
  }
  return out as T;
}

function mergeInto(base: unknown, layer: unknown): unknown {
  if (!isObject(base) || !isObject(layer)) return structuredClone(layer);
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(layer)) {
    if (v === undefined) continue;
    out[k] = k in base ? mergeInto(base[k], v) : structuredClone(v);
  }
  return out;
}

/** Reads a JSON or YAML config file (by extension; YAML accepts JSON too). */
export async function readConfigFile(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new CompressError('NOT_FOUND', `config file ${path} cannot be read: ${(error as Error).message}`, {
      input: path,
      cause: error,
    });
  }
  try {
    const value = extname(path) === '.json' ? JSON.parse(text) : parseYaml(text);
    if (!isObject(value)) throw new Error('expected a mapping of keys at the top level');
    return value;
  } catch (error) {
    throw new CompressError(
      'CONFIG',
      `config file ${path} is not valid ${extname(path) === '.json' ? 'JSON' : 'YAML'}: ${(error as Error).message}`,
      {
        input: path,
        cause: error,
      },
    );
  }
}
