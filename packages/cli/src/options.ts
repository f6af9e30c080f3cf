import { CompressError } from '@compress/core';
import {
  type Budget,
  budgets,
  type Config,
  type Method,
  mergeConfig,
  methods,
  type PresetName,
  presets,
  readConfigFile,
  validateConfig,
} from './config.js';
import { presetConfig } from './presets.js';

/** Command-line flags shared by the commands that build a config. */
export interface ConfigFlags {
  config?: string;
  preset?: string;
  budget?: string;
  method?: string;
  seed?: string;
  dataset?: string;
  dataRoot?: string;
  workers?: string;
  trainSubset?: string;
  teacher?: string;
  teacherLayout?: string;
  teacherNormalize?: string;
  teacherChannels?: string;
  teacherProviders?: string;
  teacherThreads?: string;
  student?: string;
  width?: string;
  epochs?: string;
  maxSteps?: string;
  batchSize?: string;
  lr?: string;
  queueSize?: string;
  temperature?: string;
  skipCorrupt?: boolean;
  teacherFingerprint?: string;
}

/** The config key each flag sets (errors about a flag's value name the flag, not the file). */
const flagOfKey: Record<string, string> = {
  seed: '--seed',
  'data.dataset': '--dataset',
  'data.root': '--data-root',
  'data.workers': '--workers',
  'data.trainSubset': '--train-subset',
  'data.skipCorrupt': '--skip-corrupt',
  'teacher.source': '--teacher',
  'teacher.layout': '--teacher-layout',
  'teacher.normalize': '--teacher-normalize',
  'teacher.channels': '--teacher-channels',
  'teacher.providers': '--teacher-providers',
  'teacher.threads': '--teacher-threads',
  'teacher.fingerprint': '--teacher-fingerprint',
  'student.arch': '--student',
  'student.width': '--width',
  'loss.queueSize': '--queue-size',
  'loss.temperature': '--temperature',
  'optim.epochs': '--epochs',
  'optim.maxSteps': '--max-steps',
  'optim.batchSize': '--batch-size',
  'optim.lr': '--lr',
};

/** The flag that set the value at `path` (or above it) in `fromFlags`, as `--flag value`. */
function flagSource(fromFlags: unknown, path: string): string | undefined {
  const parts = path.split('.');
  for (let n = parts.length; n > 0; n--) {
    const key = parts.slice(0, n).join('.');
    const flag = flagOfKey[key];
    if (!flag) continue;
    const value = parts
      .slice(0, n)
      .reduce<unknown>((v, k) => (v as Record<string, unknown> | undefined)?.[k], fromFlags);
    if (value !== undefined) return `${flag} ${typeof value === 'string' ? value : JSON.stringify(value)}`;
  }
  return undefined;
}

function num(value: string | undefined, flag: string, integer = false): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || (integer && !Number.isInteger(n))) {
    throw new CompressError(
      'CONFIG',
      `--${flag}: expected ${integer ? 'an integer' : 'a number'}, found "${value}"`,
      {
        input: flag,
      },
    );
  }
  return n;
}

function oneOf<T extends string>(
  value: string | undefined,
  allowed: readonly T[],
  flag: string,
): T | undefined {
  if (value === undefined) return undefined;
  if (!allowed.includes(value as T)) {
    throw new CompressError('CONFIG', `--${flag}: expected one of ${allowed.join(', ')}, found "${value}"`, {
      input: flag,
    });
  }
  return value as T;
}

/**
 * `--teacher-normalize`: `imagenet`, `none`, `m,s` (one mean and std for every channel) or
 * `m1,…,mC,s1,…,sC` (C means, then C stds).
 */
export function parseNormalize(value: string): Config['teacher']['normalize'] {
  if (value === 'imagenet' || value === 'none') return value;
  const parts = value.split(',').map(Number);
  if (parts.length < 2 || parts.length % 2 !== 0 || parts.some((x) => !Number.isFinite(x))) {
    throw new CompressError(
      'CONFIG',
      `--teacher-normalize: expected imagenet, none, "mean,std" or "m1,…,mC,s1,…,sC", found "${value}"`,
      { input: 'teacher-normalize' },
    );
  }
  const half = parts.length / 2;
  return { mean: parts.slice(0, half), std: parts.slice(half) };
}

/** Drops undefined leaves so that merging keeps the lower layers' values. */
function defined(value: unknown): unknown {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    const d = defined(v);
    if (
      d !== undefined &&
      !(typeof d === 'object' && d !== null && !Array.isArray(d) && Object.keys(d).length === 0)
    )
      out[k] = d;
  }
  return out;
}

/**
 * The resolved config of a command: the preset's (with its budget and the method), then the
 * config file, then the flags — validated, every key known.
 */
export async function resolveConfig(flags: ConfigFlags, defaults: { method?: Method } = {}): Promise<Config> {
  const file = flags.config ? ((await readConfigFile(flags.config)) as Record<string, unknown>) : {};
  const preset =
    oneOf(flags.preset, presets, 'preset') ?? (file.preset as PresetName | undefined) ?? 'fashion-mnist';
  const budget = oneOf(flags.budget, budgets, 'budget') ?? (file.budget as Budget | undefined) ?? 'full';
  const method =
    oneOf(flags.method, methods, 'method') ??
    (file.method as Method | undefined) ??
    defaults.method ??
    'momentum';
  if (!presets.includes(preset)) {
    throw new CompressError(
      'CONFIG',
      `${flags.config}: preset must be one of ${presets.join(', ')}, found "${preset}"`,
      {
        input: 'preset',
      },
    );
  }
  if (!budgets.includes(budget)) {
    throw new CompressError(
      'CONFIG',
      `${flags.config}: budget must be one of ${budgets.join(', ')}, found "${budget}"`,
      {
        input: 'budget',
      },
    );
  }
  const channels = num(flags.teacherChannels, 'teacher-channels', true);
  if (channels !== undefined && channels !== 1 && channels !== 3) {
    throw new CompressError('CONFIG', `--teacher-channels: expected 1 or 3, found ${channels}`, {
      input: 'teacher-channels',
    });
  }
  const fromFlags = defined({
    seed: num(flags.seed, 'seed', true),
    data: {
      dataset: oneOf(flags.dataset, ['fashion-mnist', 'cifar10', 'image-folder'] as const, 'dataset'),
      root: flags.dataRoot,
      workers: num(flags.workers, 'workers', true),
      trainSubset: num(flags.trainSubset, 'train-subset', true),
      skipCorrupt: flags.skipCorrupt,
    },
    teacher: {
      source: flags.teacher,
      layout: oneOf(flags.teacherLayout, ['NCHW', 'NHWC'] as const, 'teacher-layout'),
      normalize: flags.teacherNormalize === undefined ? undefined : parseNormalize(flags.teacherNormalize),
      channels,
      providers: oneOf(flags.teacherProviders, ['auto', 'cpu', 'cuda'] as const, 'teacher-providers'),
      threads: num(flags.teacherThreads, 'teacher-threads', true),
      fingerprint: flags.teacherFingerprint,
    },
    student: { arch: flags.student, width: num(flags.width, 'width') },
    loss: {
      queueSize: num(flags.queueSize, 'queue-size', true),
      temperature: num(flags.temperature, 'temperature'),
    },
    optim: {
      epochs: num(flags.epochs, 'epochs', true),
      maxSteps: num(flags.maxSteps, 'max-steps', true),
      batchSize: num(flags.batchSize, 'batch-size', true),
      lr: num(flags.lr, 'lr'),
    },
  });
  const { preset: _p, budget: _b, method: _m, ...fileRest } = file;
  const merged = mergeConfig(presetConfig(preset, budget, method), fileRest, fromFlags);
  return validateConfig(merged, flags.config ?? 'config', (path) => flagSource(fromFlags, path));
}
