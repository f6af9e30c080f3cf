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
import { configFromFlags, flagSource } from './flags.js';
import { presetConfig } from './presets.js';

/** Command-line flags shared by the commands that build a config (see `configFlags`). */
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
  const fromFlags = defined(configFromFlags(flags as unknown as Record<string, unknown>));
  const { preset: _p, budget: _b, method: _m, ...fileRest } = file;
  const merged = mergeConfig(presetConfig(preset, budget, method), fileRest, fromFlags);
  return validateConfig(merged, flags.config ?? 'config', (path) => flagSource(fromFlags, path));
}
